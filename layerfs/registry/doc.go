// Package registry pulls images from registries into a local blob cache and pushes
// built images to registries, as docker build and buildx do, with
// go-containerregistry's remote package as the transport.
//
// The cache is one OCI image layout (image-spec image-layout.md) under
// $XDG_CACHE_HOME/dfbuild, by default ~/.cache/dfbuild: blobs/sha256/<hex> holds every
// blob pulled or compressed for a push, index.json maps the references pulled by tag
// to the manifest or index they resolved to. A build reads a pulled image straight
// from the layout (baseimage.LoadManifest); nothing is unpacked.
//
// Invariants:
//   - A blob enters the cache only under its own digest: it is written to a temporary
//     file beside its final name, hashed while it is written, checked against the
//     digest and size the manifest gives, synced and renamed. A reader never sees a
//     partial blob, and a blob with other bytes is never kept.
//   - A cached blob is hashed again before it is used; one whose bytes no longer match
//     (a corrupted cache) is removed and fetched again.
//   - index.json is changed only under an exclusive lock on the file "lock" in the
//     cache, and replaced by rename, so concurrent builds never lose an entry and a
//     reader never sees a torn file.
//   - A reference by digest is served from the cache with no network once its blobs
//     are there; a reference by tag is served from the cache until Options.Refresh
//     (--pull) asks the registry again. In "name:tag@sha256:..." the digest wins.
//   - Mirrors serve pulls only, never pushes, and are tried in order before the
//     registry itself (BuildKit's registry.mirrors). Every error names the reference
//     and the registry that failed.
//   - A push writes every blob first and every tag last, so an interrupted push never
//     leaves a tag that names a missing blob. Compression is deterministic: the same
//     layer gives the same compressed bytes and digest on every run.
//
// The package prints nothing; progress goes to Options.Progress.
package registry
