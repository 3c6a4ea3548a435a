// Package inspect reads image archives and layouts and tells how an image is made:
// which history entry made which layer, what each layer adds, changes and removes,
// and how many bytes are wasted on files that a later layer overwrites or deletes.
//
// Open is dfbuild's one image reader: FROM (baseimage), the registry cache
// (OpenLayoutManifest), --append (ReadEntries) and inspect all read through it. It
// reads every shape of image storage that dfbuild meets: the archive dfbuild
// writes (an OCI layout plus manifest.json, also what docker save writes since Engine
// 25), the legacy docker save archive of Engine 20.10 with repeated layers stored as
// symlinks, podman save and skopeo's docker-archive and oci-archive, an OCI image
// layout directory, and the unpacked directory of -o type=dir. manifest.json decides
// when present, index.json otherwise. Analyze takes any Image, so an image that a
// build has just made is analysed the same way without being written first.
//
// Invariants:
//   - Each layer is streamed once per Analyze call (once per archive for layers that
//     several images share), and only its metadata is kept: tar headers, never file
//     contents. Compressed layers (gzip, zstd, bzip2, xz) are detected by their first
//     bytes, as Docker and podman do, not by their media type.
//   - Every layer is hashed while it streams, and the digest must equal the diff_id
//     the config lists: the report never describes bytes other than the image's.
//   - History lines up with the layers as docker history does it: each history entry
//     without empty_layer takes the next layer. A layer without an entry gets a row of
//     its own; an entry without a layer says so.
//   - Changes follow the OCI layer rules (image-spec layer.md): an entry whose path
//     existed in a lower layer is "changed", otherwise "added"; a whiteout .wh.NAME
//     removes NAME, and an opaque marker .wh..wh..opq removes the lower contents of its
//     directory. Whiteouts act on the lower layers only, wherever they stand in the
//     layer's tar. An entry that a later layer overwrites or removes is wasted, except
//     a directory that a later directory entry merely updates.
//   - The JSON form (Report and the types under it) is a stable interface: fields are
//     only ever added. Text output is for people and may change.
//
// Paths in a report are absolute and clean ("/etc/passwd"); the root directory
// entry that some tars carry ("./") is left out. A hard link is reported with size 0:
// its bytes are counted once, with the file it links to.
//
// An Archive holds open files until it is closed. Nothing in the package is safe for
// concurrent use, except that distinct Analyze calls share nothing.
package inspect
