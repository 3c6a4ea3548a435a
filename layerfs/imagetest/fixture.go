package imagetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// Files collects the files of an image archive or layout that a test writes, in the
// order they are added, and writes them as a tar or as a directory.
type Files struct {
	modTime    time.Time
	parentDirs bool
	names      []string
	files      map[string][]byte
	links      map[string]string
}

// NewFiles returns an empty set whose tar entries all have the mtime modTime. With
// parentDirs set, the tar holds each parent directory before its first member, as
// docker save writes them.
func NewFiles(modTime time.Time, parentDirs bool) *Files {
	return &Files{modTime: modTime, parentDirs: parentDirs, files: map[string][]byte{}, links: map[string]string{}}
}

// Add adds the file name with the contents b; a name added again keeps its place.
func (f *Files) Add(name string, b []byte) {
	if _, ok := f.files[name]; !ok {
		f.names = append(f.names, name)
	}
	f.files[name] = b
}

// Link adds name as a symlink to target.
func (f *Files) Link(name, target string) {
	f.names = append(f.names, name)
	f.links[name] = target
}

// Edit replaces the contents of each file, in order, with what edit returns for it.
func (f *Files) Edit(edit func(name string, b []byte) []byte) {
	for _, n := range f.names {
		if _, ok := f.links[n]; !ok {
			f.files[n] = edit(n, f.files[n])
		}
	}
}

// Tar returns the files as a tar.
func (f *Files) Tar() ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, n := range f.names {
		if f.parentDirs {
			for i := range n {
				if n[i] == '/' && !dirs[n[:i]] {
					dirs[n[:i]] = true
					if err := tw.WriteHeader(&tar.Header{Name: n[:i+1], Typeflag: tar.TypeDir, Mode: 0o755, ModTime: f.modTime}); err != nil {
						return nil, err
					}
				}
			}
		}
		h := &tar.Header{Name: n, Mode: 0o644, ModTime: f.modTime, Typeflag: tar.TypeReg}
		if target, ok := f.links[n]; ok {
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, target, 0o777
		} else {
			h.Size = int64(len(f.files[n]))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.files[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// WriteTar writes the files as a tar at p.
func (f *Files) WriteTar(p string) error {
	b, err := f.Tar()
	if err != nil {
		return err
	}
	return os.WriteFile(p, b, 0o644)
}

// WriteDir writes the files below dir, making the directories they need.
func (f *Files) WriteDir(dir string) error {
	for _, n := range f.names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if target, ok := f.links[n]; ok {
			if err := os.Symlink(target, p); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, f.files[n], 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Blob is a layer as an archive or layout stores it.
type Blob struct {
	Data      []byte
	MediaType string
}

// ArchiveImage is an image a test writes: its tags as the archive spells them, its
// raw config and its layers as stored.
type ArchiveImage struct {
	Tags   []string
	Config []byte
	Layers []Blob
}

// LegacyLayout says how AddDockerArchive lays out the layers.
type LegacyLayout int

const (
	// DockerSave is docker save's archive before Engine 25: <v1id>/layer.tar, a
	// layer seen before as a symlink to its first copy.
	DockerSave LegacyLayout = iota
	// TopLayers puts each layer at the top as <sha256 of it>.tar, with no v1
	// directories and repositories naming no parents.
	TopLayers
	// TopLayersV1Links is skopeo's docker-archive: the layers at the top as
	// <sha256 of it>.tar, and <v1id>/layer.tar symlinks to them.
	TopLayersV1Links
)

// AddDockerArchive adds a docker-archive of images laid out as layout says: the
// layers, <config digest>.json, repositories and manifest.json.
func (f *Files) AddDockerArchive(images []ArchiveImage, layout LegacyLayout) {
	first := map[layerfs.Digest]string{}
	var manifest []dockerarchive.DockerManifest
	repos := map[string]map[string]string{}
	for _, img := range images {
		m := dockerarchive.DockerManifest{Config: layerfs.DigestOf(img.Config).Hex() + ".json", RepoTags: img.Tags}
		parent := ""
		for _, l := range img.Layers {
			d := layerfs.DigestOf(l.Data)
			top := d.Hex() + ".tar"
			if layout == TopLayers {
				f.Add(top, l.Data)
				m.Layers = append(m.Layers, top)
				continue
			}
			v1 := layerfs.DigestOf([]byte(parent + " " + string(d))).Hex()
			parent = v1
			f.Add(v1+"/VERSION", []byte("1.0"))
			f.Add(v1+"/json", JSON(map[string]string{"id": v1}))
			n := v1 + "/layer.tar"
			switch {
			case layout == TopLayersV1Links:
				f.Add(top, l.Data)
				f.Link(n, "../"+top)
				m.Layers = append(m.Layers, top)
				continue
			case first[d] == "":
				f.Add(n, l.Data)
				first[d] = n
			case first[d] != n:
				f.Link(n, "../"+first[d])
			}
			m.Layers = append(m.Layers, n)
		}
		f.Add(m.Config, img.Config)
		for _, tg := range img.Tags {
			name, tag, _ := strings.Cut(tg, ":")
			if repos[name] == nil {
				repos[name] = map[string]string{}
			}
			repos[name][tag] = parent
		}
		manifest = append(manifest, m)
	}
	f.Add("repositories", JSON(repos))
	f.Add("manifest.json", JSON(manifest))
}

// AddOCILayout adds an OCI image layout of images: blobs/sha256/, oci-layout and
// index.json, one descriptor a name. With docker25 set, it adds what docker save
// writes since Engine 25: manifest.json pointing into blobs/, and descriptors named
// both by containerd's annotation and by the bare tag.
func (f *Files) AddOCILayout(images []ArchiveImage, docker25 bool) {
	blob := func(b []byte, mt string) dockerarchive.Descriptor {
		d := layerfs.DigestOf(b)
		f.Add("blobs/sha256/"+d.Hex(), b)
		return dockerarchive.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	index := dockerarchive.Index{SchemaVersion: 2, MediaType: dockerarchive.MediaTypeIndex}
	var manifest []dockerarchive.DockerManifest
	for _, img := range images {
		m := dockerarchive.Manifest{SchemaVersion: 2, MediaType: dockerarchive.MediaTypeManifest}
		m.Config = blob(img.Config, dockerarchive.MediaTypeConfig)
		dm := dockerarchive.DockerManifest{Config: "blobs/sha256/" + m.Config.Digest.Hex(), RepoTags: img.Tags}
		for _, l := range img.Layers {
			d := blob(l.Data, l.MediaType)
			m.Layers = append(m.Layers, d)
			dm.Layers = append(dm.Layers, "blobs/sha256/"+d.Digest.Hex())
		}
		md := blob(JSON(m), dockerarchive.MediaTypeManifest)
		if len(img.Tags) == 0 {
			index.Manifests = append(index.Manifests, md)
		}
		for _, tg := range img.Tags {
			d := md
			d.Annotations = map[string]string{"org.opencontainers.image.ref.name": tg}
			if docker25 {
				full, _ := image.ParseTag(tg)
				d.Annotations = map[string]string{"io.containerd.image.name": full.Full, "org.opencontainers.image.ref.name": full.Tag}
			}
			index.Manifests = append(index.Manifests, d)
		}
		manifest = append(manifest, dm)
	}
	f.Add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	f.Add("index.json", JSON(index))
	if docker25 {
		f.Add("manifest.json", JSON(manifest))
	}
}

// Media types of layers, as AddOCILayout's Blobs carry them.
const (
	MediaTypeLayer     = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeLayerZstd = "application/vnd.oci.image.layer.v1.tar+zstd"
)

// Gzip compresses b.
func Gzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// Zstd compresses b.
func Zstd(b []byte) []byte {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		panic(err)
	}
	return zw.EncodeAll(b, nil)
}

// JSON marshals v, which must not fail.
func JSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}
