package registry

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dfbuild/dfbuild/layerfs"
)

// LayerRecord says which compressed blob of the cache holds a layer, and where it
// came from, so a push can send the base image's own blobs (or mount them) instead
// of compressing the layer again, as BuildKit keeps base layers' blobs unless told
// to force compression.
type LayerRecord struct {
	DiffID     v1.Hash       `json:"diffID"`
	Descriptor v1.Descriptor `json:"descriptor"`
	Repository string        `json:"repository,omitempty"` // "host/repo" pulled from, for cross-repository mounts
}

// recordDir is where the records of one kind live: "pulled" for layers as a
// registry served them, "gzip-6", "zstd-3"... for layers dfbuild compressed.
func (c *Cache) recordDir(kind string) string {
	return filepath.Join(c.Dir, "dfbuild", "layers", kind)
}

// KindPulled is the record kind of layers as a registry served them.
const KindPulled = "pulled"

// RecordLayer remembers which blob holds a layer's bytes in a given kind.
func (c *Cache) RecordLayer(kind string, rec LayerRecord) error {
	dir := c.recordDir(kind)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("writing to the cache: %w", err)
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return layerfs.WriteFileAtomic(filepath.Join(dir, rec.DiffID.Hex), b)
}

// LookupLayer returns the record of a layer in a given kind, if the blob it names is
// still in the cache.
func (c *Cache) LookupLayer(kind string, diffID v1.Hash) (LayerRecord, bool) {
	b, err := os.ReadFile(filepath.Join(c.recordDir(kind), diffID.Hex))
	if err != nil {
		return LayerRecord{}, false
	}
	var rec LayerRecord
	if json.Unmarshal(b, &rec) != nil || rec.DiffID != diffID {
		return LayerRecord{}, false
	}
	fi, err := os.Stat(c.blobPath(rec.Descriptor.Digest))
	if err != nil || fi.Size() != rec.Descriptor.Size {
		return LayerRecord{}, false
	}
	return rec, true
}

// BlobPath is where the cache keeps a blob.
func (c *Cache) BlobPath(d v1.Hash) string { return c.blobPath(d) }
