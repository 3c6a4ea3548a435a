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
package dockerarchive
