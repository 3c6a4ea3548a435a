package dockerarchive

import (
	"slices"

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
