// Package layerfs owns the filesystem side of an image build: an in-memory tree of
// nodes, the changes made to it since the last commit, and the layer tars those changes
// become. The image model and the output formats built from layers live in its
// sub-packages (image, dockerarchive).
//
// Invariants:
//   - The tree never holds file contents: a regular file's body is an Opener that reads
//     it again from where it came from (a build-context file, a section of a base
//     tarball). Layers stream those bodies when they are written.
//   - Paths in the tree are real paths: a symlink is never traversed when a node is
//     stored, because every path is resolved inside the tree's root first (Resolve).
//     So a layer never writes through a symlink, and nothing resolves outside the root.
//   - A committed layer holds exactly what changed since the previous commit, plus the
//     parent directories of each change with their current metadata, one entry per
//     path, parents before children, in a fixed order. Whiteouts only hide paths that
//     existed before the layer.
//   - Layer tars are deterministic: PAX format, numeric ids with empty names, whole
//     seconds, no atime/ctime, times decided by TarOptions rather than the clock.
//     A layer's size is known before it is written and its digest is computed while it
//     is written.
//
// An FS is not safe for concurrent use. A Layer may be written from one goroutine at a
// time.
package layerfs
