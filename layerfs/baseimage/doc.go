// Package baseimage loads an existing image as the base of a build: FROM an image
// that a `docker save` archive (Docker 20.10's layout with symlinked layers, or
// Docker 25's OCI layout in a tar), podman's or skopeo's docker-archive, an OCI
// layout directory or oci-archive, or dfbuild's own output (archive or type=dir)
// holds. Load picks the image by name, stacks its layers into one in-memory tree
// (layerfs.LayerApplier) and returns the tree, the layers and the config; IsImage
// tells such an archive from a root filesystem tarball, which layerfs.LoadRootfs
// reads instead.
//
// Invariants:
//   - File contents are never held in memory. A file of the tree reads its bytes
//     back by offset from where they are stored: from the archive itself when the
//     layer is an uncompressed tar (a section of the outer tar, or a file of the
//     layout directory), and from a spool file in the caller's spool directory when
//     the layer is compressed (gzip, zstd, bzip2 or xz, detected from its first bytes,
//     never from its media type). A compressed outer archive is decompressed into the
//     spool directory too.
//   - Each layer is hashed while it is applied, and its uncompressed bytes must have
//     the digest that the config lists as its diff_id; a mismatch is an error. The
//     returned layers write exactly those bytes and check the digest again each time
//     they are written.
//   - Layers apply in order with the OCI whiteout rules and refuse the entries
//     layerfs.LoadRootfs refuses (see layerfs.LayerApplier): nothing a layer holds can
//     put a node outside the tree or behind a symlink.
//   - The tree comes back with no pending changes: its first Commit holds only what
//     changed after Load, and its directories keep the times their entries gave them.
//   - Names match as Docker matches them: "app" is "docker.io/library/app:latest",
//     whether the archive spells it "app:latest" or fully qualified. An image ID (or
//     a prefix of at least 12 hex digits) also names an image.
//   - Every error names the archive and the step: the image, the layer (its number
//     and its name in the archive) and the entry. A name the archive lacks gets an
//     error listing the names it has.
//
// The tree and the layers read from the archive and the spool files until Close is
// called; the caller closes the Base when the build is over.
package baseimage
