package dockerarchive

import (
	"context"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// imageManifest returns the descriptor of an image's config, its OCI manifest and
// that manifest's descriptor. Both writers compute it: the archive stores the
// manifest, and the directory output names the image by its digest in the Result.
func imageManifest(cfg []byte, layers []Descriptor) (cfgDesc Descriptor, man []byte, manDesc Descriptor, err error) {
	if layers == nil {
		layers = []Descriptor{}
	}
	cfgDesc = Descriptor{MediaType: MediaTypeConfig, Digest: layerfs.DigestOf(cfg), Size: int64(len(cfg))}
	man, err = marshal(Manifest{SchemaVersion: 2, MediaType: MediaTypeManifest, Config: cfgDesc, Layers: layers})
	if err != nil {
		return Descriptor{}, nil, Descriptor{}, err
	}
	manDesc = Descriptor{MediaType: MediaTypeManifest, Digest: layerfs.DigestOf(man), Size: int64(len(man))}
	return cfgDesc, man, manDesc, nil
}

// imageSet gathers the images an output lists, in the order they were first added.
// Images with the same manifest are one image: their tags are merged, so an output
// never lists an image twice.
type imageSet struct {
	list       []*storedImage
	byManifest map[layerfs.Digest]*storedImage
}

type storedImage struct {
	manifest Descriptor
	config   layerfs.Digest
	layers   []string // the layer paths manifest.json lists
	tags     []image.Tag
}

func newImageSet() *imageSet {
	return &imageSet{byManifest: map[layerfs.Digest]*storedImage{}}
}

// add records an image, or adds the tags it lacks to the same image added before.
func (s *imageSet) add(manifest Descriptor, config layerfs.Digest, layerPaths []string, tags []image.Tag) {
	img := s.byManifest[manifest.Digest]
	if img == nil {
		img = &storedImage{manifest: manifest, config: config, layers: layerPaths}
		s.byManifest[manifest.Digest] = img
		s.list = append(s.list, img)
	}
	for _, t := range tags {
		if !slices.ContainsFunc(img.tags, func(u image.Tag) bool { return u.Full == t.Full }) {
			img.tags = append(img.tags, t)
		}
	}
}

// dockerManifests is manifest.json's content; configPath names a config in the output.
func (s *imageSet) dockerManifests(configPath func(layerfs.Digest) string) []DockerManifest {
	var out []DockerManifest
	for _, img := range s.list {
		repoTags := []string{}
		for _, t := range img.tags {
			repoTags = append(repoTags, t.Full)
		}
		out = append(out, DockerManifest{Config: configPath(img.config), RepoTags: repoTags, Layers: img.layers})
	}
	return out
}

func (s *imageSet) result() *Result {
	res := &Result{}
	for _, img := range s.list {
		res.Images = append(res.Images, ImageResult{ID: img.config, Manifest: img.manifest.Digest, Tags: img.tags})
	}
	return res
}

// sink is where writeImages puts an image's parts: the archive (writer) and the
// directory (dirWriter). Each stores a blob once, however often it is handed over.
type sink interface {
	// layer stores l, hashing it as it streams, and returns its digest; reused says
	// the same bytes were stored already.
	layer(ctx context.Context, l *layerfs.Layer, mtime time.Time) (d layerfs.Digest, reused bool, err error)
	// layerPath is where manifest.json finds a stored layer.
	layerPath(d layerfs.Digest) string
	// image stores an image's config and OCI manifest.
	image(cfg, manifest []byte, cfgDigest layerfs.Digest, mtime time.Time) error
}

// writeImages writes every entry's layers, then its config and manifest, to s, and
// returns the images as stored: identical images merged, tags in order. It reports
// to the context's Trace, and stops with ctx's error between and inside layers.
func writeImages(ctx context.Context, s sink, entries []Entry) (*imageSet, error) {
	trace := traceFrom(ctx)
	if trace.Start != nil {
		trace.Start(totalLayerBytes(entries))
	}
	images := newImageSet()
	for i, e := range entries {
		created := time.Unix(0, 0)
		if e.Image.Config.Created != nil {
			created = *e.Image.Config.Created
		}
		var layers []Descriptor
		var layerPaths []string
		for j, l := range e.Image.Layers {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			d, reused, err := s.layer(ctx, l, created)
			if err != nil {
				return nil, fmt.Errorf("writing layer %d of image %d: %w", j+1, i+1, err)
			}
			if trace.Layer != nil {
				trace.Layer(i, j, d, l.Size(), reused)
			}
			layers = append(layers, Descriptor{MediaType: MediaTypeLayer, Digest: d, Size: l.Size()})
			layerPaths = append(layerPaths, s.layerPath(d))
		}
		cfg, err := e.Image.ConfigJSON()
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i+1, err)
		}
		cfgDesc, man, manDesc, err := imageManifest(cfg, layers)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i+1, err)
		}
		if err := s.image(cfg, man, cfgDesc.Digest, created); err != nil {
			return nil, fmt.Errorf("writing the config of image %d: %w", i+1, err)
		}
		images.add(manDesc, cfgDesc.Digest, layerPaths, e.Tags)
	}
	return images, nil
}

// writeLayer streams l into w for a sink, reporting bytes and files to the trace.
func writeLayer(ctx context.Context, l *layerfs.Layer, w io.Writer) error {
	trace := traceFrom(ctx)
	l.OnEntry(trace.File)
	defer l.OnEntry(nil)
	_, err := l.WriteTo(ctxWriter{ctx: ctx, w: w, wrote: trace.Wrote})
	return err
}
