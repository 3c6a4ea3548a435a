package inspect

import (
	"encoding/json"
	"fmt"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// StoredLayer is what a manifest says of a layer without reading it.
type StoredLayer struct {
	// StoredSize is the blob's length.
	StoredSize int64
	// Compression is "gzip", "zstd"... from the media type, "" for a plain tar.
	Compression string
}

// Describe reports an image from its config and manifest alone, reading no layer:
// the history, the layers' diff_ids and stored sizes, and nothing of their
// contents. The report says so (ImageReport.LayersUnread), and the renderers leave
// out what only the layers tell. dfbuild inspect uses it for a registry image
// unless --files asks for the layers.
func Describe(config []byte, layers []StoredLayer) (*ImageReport, error) {
	var cf image.ConfigFile
	if err := json.Unmarshal(config, &cf); err != nil {
		return nil, fmt.Errorf("parsing the config: %w", err)
	}
	if n := len(cf.RootFS.DiffIDs); n != len(layers) {
		return nil, fmt.Errorf("the config lists %d diff_ids for %d layers", n, len(layers))
	}
	r := &ImageReport{ID: string(layerfs.DigestOf(config)), Tags: []string{}, Config: config, Created: cf.Created,
		Platform: platform(cf), LayersUnread: true}
	for i, l := range layers {
		r.Layers = append(r.Layers, &LayerReport{Index: i + 1, DiffID: string(cf.RootFS.DiffIDs[i]),
			StoredSize: l.StoredSize, Compression: l.Compression})
	}
	r.History = lineUp(cf.History, r.Layers)
	return r, nil
}
