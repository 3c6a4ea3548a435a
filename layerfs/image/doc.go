// Package image is dfbuild's image model: an image config in the exact shape Docker's
// BuildKit writes it, the layers (layerfs.Layer) it is made of, and the names
// (tags) an image can carry.
//
// Invariants:
//   - Config JSON is deterministic: compact, top-level keys in alphabetical order
//     (what BuildKit's exporter produces), the inner config object in Docker's struct
//     order, maps sorted by encoding/json, no trailing newline. The image ID is the
//     sha256 of exactly those bytes.
//   - rootfs.diff_ids is always taken from the layers themselves, never stored twice,
//     so it cannot disagree with them.
//   - A Tag is always fully qualified with a tag ("docker.io/library/hello:latest"):
//     every loader agrees on such names.
package image
