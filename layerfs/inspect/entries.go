package inspect

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// Entries returns the archive's images as the archive writers take them, for
// --append: each image's config blob unchanged (so its ID stays), its layers read
// back from the archive whenever they are written, and its tags. This is the one
// reader every image goes through (Open), so --append reads whatever inspect and
// FROM read. Layers are carried over as they are stored, so they must be plain
// tars, as every archive dfbuild writes and docker save's are. The archive must stay
// open until the entries have been written.
func (a *Archive) Entries() ([]dockerarchive.Entry, error) {
	var out []dockerarchive.Entry
	for i, ai := range a.Images {
		img := &image.Image{Raw: ai.config}
		if err := json.Unmarshal(ai.config, &img.Config); err != nil {
			return nil, fmt.Errorf("image %d: parsing its config: %w", i+1, err)
		}
		for j, l := range ai.layers {
			sl := l.(*storedLayer)
			size, err := plainLayerSize(ai, j)
			if err != nil {
				return nil, fmt.Errorf("image %d, layer %d (%s): %w", i+1, j+1, sl.name, err)
			}
			img.Layers = append(img.Layers, layerfs.NewLayer(size, sl.diffID, func(w io.Writer) error {
				b, err := ai.OpenLayer(j)
				if err != nil {
					return err
				}
				defer b.Close()
				_, err = io.Copy(w, io.NewSectionReader(b, 0, b.Size()))
				return err
			}))
		}
		e := dockerarchive.Entry{Image: img}
		for _, s := range ai.Tags {
			t, err := image.ParseTag(s)
			if err != nil {
				return nil, fmt.Errorf("image %d: %w", i+1, err)
			}
			e.Tags = append(e.Tags, t)
		}
		out = append(out, e)
	}
	return out, nil
}

// plainLayerSize returns the stored size of a layer that is a plain tar, and refuses
// a compressed one, whose bytes are not its diff_id's.
func plainLayerSize(ai *ArchiveImage, j int) (int64, error) {
	b, err := ai.OpenLayer(j)
	if err != nil {
		return 0, err
	}
	defer b.Close()
	c := layerfs.DetectCompression(bufio.NewReader(io.NewSectionReader(b, 0, min(b.Size(), 16))))
	if c != layerfs.Uncompressed {
		return 0, fmt.Errorf("it is %s-compressed; dfbuild carries over uncompressed layers only", c)
	}
	return b.Size(), nil
}

// ReadEntries opens the archive or directory at p and returns its images as
// Entries does; close releases the archive once the entries have been written.
func ReadEntries(p string) (entries []dockerarchive.Entry, close func() error, err error) {
	a, err := Open(p)
	if err != nil {
		return nil, nil, err
	}
	entries, err = a.Entries()
	if err != nil {
		a.Close()
		return nil, nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return entries, a.Close, nil
}
