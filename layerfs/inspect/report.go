package inspect

import (
	"encoding/json"
	"time"
)

// Report describes the images of one archive or layout. Its JSON form is the output
// of dfbuild inspect --json.
type Report struct {
	// Source is the path that was inspected, as it was given.
	Source string `json:"source"`
	// Format says which index was read: "docker-archive" (manifest.json),
	// "oci-layout" (index.json), or "docker-archive+oci-layout" when both are present
	// (dfbuild's own archives, docker save since Engine 25); manifest.json is read then.
	Format string `json:"format"`
	// Storage is "tar" or "directory".
	Storage string `json:"storage"`
	// Compression is the compression of the whole tar ("gzip", ...), if any.
	Compression string `json:"compression,omitempty"`
	// Images are in the order of manifest.json or index.json.
	Images []*ImageReport `json:"images"`
}

// ImageReport describes one image.
type ImageReport struct {
	// ID is the image ID: the sha256 digest of the config blob.
	ID string `json:"id"`
	// Tags are the image's names as the archive stores them (RepoTags, or the
	// index.json annotations); empty for an untagged image.
	Tags []string `json:"tags"`
	// Platform is os/architecture[/variant] from the config.
	Platform string     `json:"platform"`
	Created  *time.Time `json:"created,omitempty"`
	// Config is the config blob, unchanged.
	Config json.RawMessage `json:"config"`
	// History has one row per history entry of the config, in order, then one row
	// for each layer that no entry accounts for.
	History []HistoryRow `json:"history"`
	// Layers are bottom first; Index is the position here, starting at 1.
	Layers []*LayerReport `json:"layers"`

	// Size is the sum of the layers' uncompressed tar sizes.
	Size int64 `json:"size"`
	// ContentSize is the sum of the sizes of the regular files in all layers.
	ContentSize int64 `json:"content_size"`
	// WastedBytes are the bytes of files that a later layer overwrites or removes:
	// they are stored, shipped and unpacked, but no container sees them.
	WastedBytes int64 `json:"wasted_bytes"`
	// WastedFiles counts the entries, other than directories, that a later layer
	// overwrites or removes.
	WastedFiles int `json:"wasted_files"`
	// LayersUnread is set when the report comes from the manifest and config alone
	// (Describe): the layers' sizes are as stored, and their contents, changes and
	// waste are not known.
	LayersUnread bool `json:"layers_unread,omitempty"`
}

// HistoryRow is one history entry with the layer it made.
type HistoryRow struct {
	Index     int        `json:"index"` // 1-based
	Created   *time.Time `json:"created,omitempty"`
	CreatedBy string     `json:"created_by,omitempty"`
	Author    string     `json:"author,omitempty"`
	Comment   string     `json:"comment,omitempty"`
	// EmptyLayer is the entry's empty_layer: the instruction changed only the config.
	EmptyLayer bool `json:"empty_layer,omitempty"`
	// Layer is the 1-based index of the layer this entry made; 0 (absent) for a
	// config-only entry, and for a non-empty entry that has no layer left.
	Layer int `json:"layer,omitempty"`
	// NoHistory marks a row made up for a layer that no history entry accounts for.
	NoHistory bool `json:"no_history,omitempty"`
}

// LayerReport describes one layer.
type LayerReport struct {
	Index int `json:"index"` // 1-based, bottom first
	// DiffID is the digest of the uncompressed tar, checked against the config.
	DiffID string `json:"diff_id"`
	// Size is the length of the uncompressed tar in bytes.
	Size int64 `json:"size"`
	// StoredSize is the blob's length as stored when it is compressed.
	StoredSize int64 `json:"stored_size,omitempty"`
	// Compression is how the blob is stored ("gzip", "zstd", ...); empty when it is a
	// plain tar.
	Compression string `json:"compression,omitempty"`
	// History is the 1-based index of the history row that made this layer, if any.
	History int `json:"history,omitempty"`
	// CreatedBy is that row's created_by.
	CreatedBy string `json:"created_by,omitempty"`

	// ContentSize is the sum of the sizes of the layer's regular files.
	ContentSize int64 `json:"content_size"`
	Added       int   `json:"added"`
	Changed     int   `json:"changed"`
	Removed     int   `json:"removed"`
	// WastedBytes and WastedFiles count this layer's entries that a later layer
	// overwrites or removes (see ImageReport).
	WastedBytes int64 `json:"wasted_bytes"`
	WastedFiles int   `json:"wasted_files"`

	// Entries are the layer's tar entries in tar order. dfbuild inspect --json
	// includes them only with --files.
	Entries []Entry `json:"entries,omitempty"`
}

// Kinds of change an Entry makes.
const (
	Added   = "added"   // the path did not exist in a lower layer
	Changed = "changed" // the path existed in a lower layer
	Removed = "removed" // a whiteout: the path (or a directory's lower contents) goes
)

// Entry types. Whiteout and Opaque are the two whiteout markers; their Path is what
// they remove: the hidden path, or the directory whose lower contents are hidden.
const (
	TypeFile     = "file"
	TypeDir      = "dir"
	TypeSymlink  = "symlink"
	TypeHardlink = "hardlink"
	TypeChar     = "char"
	TypeBlock    = "block"
	TypeFIFO     = "fifo"
	TypeWhiteout = "whiteout"
	TypeOpaque   = "opaque"
	TypeOther    = "other" // a tar entry type that layers do not normally carry
)

// Entry is one entry of a layer: its tar header's metadata and what it does to the
// layers below.
type Entry struct {
	Path string `json:"path"` // absolute and clean
	Type string `json:"type"`
	// Mode is the permission and special bits in octal, as "0755" or "4755".
	Mode string `json:"mode"`
	UID  int    `json:"uid"`
	GID  int    `json:"gid"`
	Size int64  `json:"size"` // contents, for regular files; 0 otherwise
	// Link is a symlink's target, or a hard link's target path.
	Link string `json:"link,omitempty"`
	// Device is "major,minor" for character and block devices.
	Device string `json:"device,omitempty"`
	// Change is Added, Changed or Removed.
	Change string `json:"change"`
	// HiddenBytes are the bytes of lower-layer files this entry hides: the old version
	// of a changed file, or everything a whiteout removes.
	HiddenBytes int64 `json:"hidden_bytes,omitempty"`
	// Wasted is "overwritten" or "removed" when a later layer, WastedBy (1-based),
	// hides this entry.
	Wasted   string `json:"wasted,omitempty"`
	WastedBy int    `json:"wasted_by,omitempty"`
}
