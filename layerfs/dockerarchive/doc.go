// Package dockerarchive writes and reads image archives in the shape `docker save` has
// written since Docker Engine 25: a single tar that is at once an OCI image layout
// (oci-layout, index.json, blobs/sha256/...) and a Docker archive (manifest.json whose
// paths point into blobs/). docker load, podman load, skopeo, containerd and
// go-containerregistry all read it.
//
// Invariants of what Write produces:
//   - every blob is stored once, under its digest, uncompressed (layers are named by
//     their diff_id), and no entry is a symlink;
//   - tags are fully qualified in manifest.json's RepoTags and in index.json's
//     io.containerd.image.name, with the bare tag in org.opencontainers.image.ref.name,
//     so every loader gives the image the same name;
//   - entries come in a fixed order with pinned times, modes and owners, so the same
//     images give the same bytes;
//   - each layer is hashed while it is written and checked against its expected size
//     and digest; the archive is written to a temporary file next to the destination
//     and renamed into place only when complete, so a failure leaves any previous file
//     untouched.
//
// WriteStream writes the same bytes to a writer that cannot seek (standard output, a
// pipe into the Docker Engine's image load). It learns every layer's diff_id before
// the writer reaches that layer, hashing in a goroutine one pass ahead, so no header
// ever needs patching and no duplicate is ever written and cut off again.
//
// WriteDir writes the same images unpacked into a directory instead, in the layout of
// the classic recipe that builds an image by hand: <diff_id hex>/layer.tar for each
// layer, <config hex>.json and manifest.json, with no OCI half. A tar of that
// directory (tar -cf image.tar -C DIR .) is an archive docker load accepts. The same
// invariants hold, adapted to a tree: each layer is hashed while it is written under
// a temporary name, then its directory is renamed to the diff_id; the tree is built in
// a staging directory beside the destination and renamed into place only when
// complete; modes (0755, 0644) and mtimes are pinned; and an existing destination is
// replaced only when it looks like an earlier output, which stays intact until the new
// tree is complete.
//
// The package writes; it does not read. Every image, whatever its storage, is read
// through inspect.Open, and --append takes an archive's images back from
// inspect.ReadEntries; Merge then moves tags the way docker load does.
package dockerarchive
