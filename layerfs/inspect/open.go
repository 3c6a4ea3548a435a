package inspect

import (
	"archive/tar"
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// ErrNotImage is wrapped by Open's error when the path can be read but holds no
// image: not a tar, or a tar or directory without manifest.json and index.json.
var ErrNotImage = errors.New("not an image archive or layout")

// maxJSON bounds the JSON files read whole (manifest.json, index.json, configs,
// manifests): they are metadata, never layer-sized.
const maxJSON = 64 << 20

// Archive is an opened image archive or layout. Close it when done.
type Archive struct {
	Path        string
	Format      string // as Report.Format
	Storage     string // "tar" or "directory"
	Compression layerfs.Compression
	Images      []*ArchiveImage
	closers     []func() error
	scratchDir  string // where a compressed tar is decompressed ("" for the default)
}

// ArchiveImage is one image of an archive. It implements Image.
type ArchiveImage struct {
	Tags   []string
	config []byte
	layers []Layer
}

// Blob is a blob of an archive opened for random access.
type Blob interface {
	io.ReaderAt
	io.Closer
	Size() int64
}

// LayerName returns where the blob of layer n (0 is the bottom one) is stored in the
// archive, such as "blobs/sha256/<hex>", for messages.
func (i *ArchiveImage) LayerName(n int) string { return i.layers[n].(*storedLayer).name }

// OpenLayer opens the blob of layer n (0 is the bottom one) as it is stored,
// compressed or not, for random access. The archive must still be open.
func (i *ArchiveImage) OpenLayer(n int) (Blob, error) {
	l := i.layers[n].(*storedLayer)
	rc, err := l.st.open(l.name)
	if err != nil {
		return nil, err
	}
	switch b := rc.(type) {
	case Blob:
		return b, nil
	case *os.File:
		fi, err := b.Stat()
		if err != nil {
			b.Close()
			return nil, err
		}
		return sectionFile{io.NewSectionReader(b, 0, fi.Size()), b}, nil
	}
	rc.Close()
	return nil, fmt.Errorf("%q cannot be read by offset", l.name)
}

// ConfigJSON returns the config blob as stored.
func (i *ArchiveImage) ConfigJSON() ([]byte, error) { return i.config, nil }

// Layers returns the layers, bottom first.
func (i *ArchiveImage) Layers() []Layer { return i.layers }

var _ Image = (*ArchiveImage)(nil)

// Close releases the files the archive holds open and any scratch copy.
func (a *Archive) Close() error {
	var errs []error
	for i := len(a.closers) - 1; i >= 0; i-- {
		errs = append(errs, a.closers[i]())
	}
	a.closers = nil
	return errors.Join(errs...)
}

// Open reads the index of the archive or layout at p (a tar file, possibly
// compressed, or a directory) and returns its images. Layers are read only when they
// are analysed.
func Open(p string) (*Archive, error) { return OpenScratch(p, "") }

// OpenScratch is Open with the scratch copy of a compressed tar made in scratchDir
// rather than the default directory for temporary files. Close removes it.
func OpenScratch(p, scratchDir string) (*Archive, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err // a *PathError, which names p
	}
	a, err := open(p, fi, scratchDir)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return a, nil
}

// OpenLayoutManifest reads one image of the OCI image layout directory dir: the
// image manifest with the given digest, whatever index.json lists. A registry cache
// holds many images in one layout; this reads only the one a build asked for.
func OpenLayoutManifest(dir string, manifest layerfs.Digest, scratchDir string) (*Archive, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	a := &Archive{Path: dir, scratchDir: scratchDir, Storage: "directory", Format: "oci-layout"}
	a.closers = append(a.closers, root.Close)
	idx := dockerarchive.Index{SchemaVersion: 2, Manifests: []dockerarchive.Descriptor{{Digest: manifest}}}
	if err := a.walkIndex(dirStore{root}, idx, nil, map[layerfs.Digest]*ArchiveImage{}, 0); err != nil {
		a.Close()
		return nil, fmt.Errorf("reading %s, manifest %s: %w", dir, manifest, err)
	}
	return a, nil
}

func open(p string, fi os.FileInfo, scratchDir string) (*Archive, error) {
	a := &Archive{Path: p, scratchDir: scratchDir}
	var st store
	if fi.IsDir() {
		root, err := os.OpenRoot(p)
		if err != nil {
			return nil, err
		}
		a.closers = append(a.closers, root.Close)
		a.Storage, st = "directory", dirStore{root}
	} else {
		ts, err := a.indexTar(p)
		if err != nil {
			a.Close()
			return nil, err
		}
		a.Storage, st = "tar", ts
	}
	if err := a.load(st); err != nil {
		a.Close()
		return nil, err
	}
	return a, nil
}

// store is the files of an archive or layout, named by clean relative slash paths.
type store interface {
	// open opens a file, following links inside the store.
	open(name string) (io.ReadCloser, error)
	exists(name string) bool
}

// dirStore reads a directory through os.Root, so no name or symlink in it reaches
// outside: docker save's relative layer symlinks work, a hostile one does not.
type dirStore struct{ root *os.Root }

func (d dirStore) open(name string) (io.ReadCloser, error) { return d.root.Open(cleanName(name)) }

func (d dirStore) exists(name string) bool {
	fi, err := d.root.Stat(cleanName(name))
	return err == nil && fi.Mode().IsRegular()
}

// tarStore reads a tar file by offsets found in one pass over it.
type tarStore struct {
	file     string
	sections map[string]section
	links    map[string]string
}

type section struct{ off, size int64 }

// indexTar records where each regular file of the tar at p starts. A compressed tar
// (docker load accepts a gzipped docker save) is first decompressed into a scratch
// file, so that layers can still be read by offset.
func (a *Archive) indexTar(p string) (*tarStore, error) {
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 1<<16)
	file := p
	if c := layerfs.DetectCompression(br); c != layerfs.Uncompressed {
		a.Compression = c
		file, err = a.decompressToScratch(br, c)
		if err != nil {
			return nil, fmt.Errorf("decompressing it (%s): %w", c, err)
		}
		if br, f, err = reopen(file); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	ts := &tarStore{file: file, sections: map[string]section{}, links: map[string]string{}}
	pr := &layerfs.CountingReader{R: br}
	tr := tar.NewReader(pr)
	for first := true; ; first = false {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return ts, nil
		}
		if err != nil {
			if first {
				return nil, fmt.Errorf("%w: not a tar file (%v)", ErrNotImage, err)
			}
			return nil, err
		}
		name := cleanName(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg:
			ts.sections[name] = section{pr.N, hdr.Size}
		case tar.TypeSymlink:
			// docker save before Engine 25, and skopeo, link repeated layers to one copy.
			ts.links[name] = cleanName(path.Join(path.Dir(name), hdr.Linkname))
		case tar.TypeLink:
			ts.links[name] = cleanName(hdr.Linkname)
		}
	}
}

func reopen(file string) (*bufio.Reader, *os.File, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, nil, err
	}
	return bufio.NewReaderSize(f, 1<<16), f, nil
}

func (a *Archive) decompressToScratch(r io.Reader, c layerfs.Compression) (string, error) {
	dr, err := layerfs.Decompress(r, c)
	if err != nil {
		return "", err
	}
	defer dr.Close()
	tmp, err := os.CreateTemp(a.scratchDir, "dfbuild-inspect-*.tar")
	if err != nil {
		return "", err
	}
	a.closers = append(a.closers, func() error { return os.Remove(tmp.Name()) })
	if _, err := io.Copy(tmp, dr); err != nil {
		tmp.Close()
		return "", err
	}
	return tmp.Name(), tmp.Close()
}

// resolve follows links to a regular file, a few hops at most: a longer chain is
// not something any image tool writes.
func (t *tarStore) resolve(name string) (section, bool) {
	name = cleanName(name)
	for range 8 {
		if s, ok := t.sections[name]; ok {
			return s, true
		}
		target, ok := t.links[name]
		if !ok {
			break
		}
		name = target
	}
	return section{}, false
}

func (t *tarStore) exists(name string) bool {
	_, ok := t.resolve(name)
	return ok
}

func (t *tarStore) open(name string) (io.ReadCloser, error) {
	s, ok := t.resolve(name)
	if !ok {
		return nil, fmt.Errorf("%q: %w", name, os.ErrNotExist)
	}
	f, err := os.Open(t.file)
	if err != nil {
		return nil, err
	}
	return sectionFile{io.NewSectionReader(f, s.off, s.size), f}, nil
}

type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s sectionFile) Close() error { return s.f.Close() }

func cleanName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

func readJSON(st store, name string, v any) ([]byte, error) {
	rc, err := st.open(name)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxJSON+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxJSON {
		return nil, fmt.Errorf("larger than %d bytes", maxJSON)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	return b, nil
}

// load reads the index: manifest.json when present, as docker load does; index.json
// otherwise, as an OCI layout.
func (a *Archive) load(st store) error {
	hasManifest, hasIndex := st.exists("manifest.json"), st.exists("index.json")
	switch {
	case hasManifest && hasIndex && st.exists("oci-layout"):
		a.Format = "docker-archive+oci-layout"
		return a.loadDocker(st)
	case hasManifest:
		a.Format = "docker-archive"
		return a.loadDocker(st)
	case hasIndex:
		a.Format = "oci-layout"
		return a.loadOCI(st)
	}
	return fmt.Errorf("%w: it has neither manifest.json nor index.json", ErrNotImage)
}

func (a *Archive) loadDocker(st store) error {
	var manifests []dockerarchive.DockerManifest
	if _, err := readJSON(st, "manifest.json", &manifests); err != nil {
		return fmt.Errorf("reading manifest.json: %w", err)
	}
	for i, m := range manifests {
		img, err := newImage(st, m.Config, m.Layers)
		if err != nil {
			return fmt.Errorf("manifest.json, image %d: %w", i+1, err)
		}
		img.Tags = append([]string{}, m.RepoTags...)
		a.Images = append(a.Images, img)
	}
	return nil
}

// newImage reads a config and pairs each layer file with the diff_id the config
// gives it.
func newImage(st store, configName string, layerNames []string) (*ArchiveImage, error) {
	var cf image.ConfigFile
	raw, err := readJSON(st, configName, &cf)
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	ids := cf.RootFS.DiffIDs
	if len(ids) != len(layerNames) {
		return nil, fmt.Errorf("%d layer%s listed but %d diff_id%s in the config", len(layerNames), plural(len(layerNames)), len(ids), plural(len(ids)))
	}
	img := &ArchiveImage{Tags: []string{}, config: raw}
	for j, name := range layerNames {
		if err := ids[j].Validate(); err != nil {
			return nil, fmt.Errorf("layer %d: %w", j+1, err)
		}
		if !st.exists(name) {
			return nil, fmt.Errorf("layer %d: %q is missing", j+1, name)
		}
		img.layers = append(img.layers, &storedLayer{st: st, name: name, diffID: ids[j]})
	}
	return img, nil
}

// Media types of indexes and manifests, OCI's and Docker's.
const (
	mediaTypeDockerList     = "application/vnd.docker.distribution.manifest.list.v2+json"
	mediaTypeDockerManifest = "application/vnd.docker.distribution.manifest.v2+json"
)

// Annotations that name an image in index.json: containerd's full name wins over
// the OCI ref name, which is often only the tag.
const (
	annotationName = "io.containerd.image.name"
	annotationRef  = "org.opencontainers.image.ref.name"
)

func (a *Archive) loadOCI(st store) error {
	var idx dockerarchive.Index
	if _, err := readJSON(st, "index.json", &idx); err != nil {
		return fmt.Errorf("reading index.json: %w", err)
	}
	byManifest := map[layerfs.Digest]*ArchiveImage{}
	return a.walkIndex(st, idx, nil, byManifest, 0)
}

// walkIndex adds the images an index lists. Descriptors of one manifest make one
// image with all their names; a nested index (several platforms) passes its names
// on to each image in it.
func (a *Archive) walkIndex(st store, idx dockerarchive.Index, names []string, byManifest map[layerfs.Digest]*ArchiveImage, depth int) error {
	if depth > 4 {
		return errors.New("indexes nested too deeply")
	}
	for _, d := range idx.Manifests {
		tags := names
		if n := descriptorName(d); n != "" {
			tags = append(append([]string{}, names...), n)
		}
		blob, err := blobName(d.Digest)
		if err != nil {
			return err
		}
		switch d.MediaType {
		case dockerarchive.MediaTypeIndex, mediaTypeDockerList:
			var sub dockerarchive.Index
			if _, err := readJSON(st, blob, &sub); err != nil {
				return fmt.Errorf("reading the index %s: %w", d.Digest, err)
			}
			if err := a.walkIndex(st, sub, tags, byManifest, depth+1); err != nil {
				return err
			}
			continue
		case dockerarchive.MediaTypeManifest, mediaTypeDockerManifest, "":
		default:
			continue // attestations and other artifacts are not images
		}
		img := byManifest[d.Digest]
		if img == nil {
			var m dockerarchive.Manifest
			if _, err := readJSON(st, blob, &m); err != nil {
				return fmt.Errorf("reading the manifest %s: %w", d.Digest, err)
			}
			configName, err := blobName(m.Config.Digest)
			if err != nil {
				return err
			}
			var layerNames []string
			for _, l := range m.Layers {
				n, err := blobName(l.Digest)
				if err != nil {
					return err
				}
				layerNames = append(layerNames, n)
			}
			if img, err = newImage(st, configName, layerNames); err != nil {
				return fmt.Errorf("manifest %s: %w", d.Digest, err)
			}
			if got := layerfs.DigestOf(img.config); got != m.Config.Digest {
				return fmt.Errorf("manifest %s: the config blob has digest %s", d.Digest, got)
			}
			byManifest[d.Digest] = img
			a.Images = append(a.Images, img)
		}
		for _, t := range tags {
			if !contains(img.Tags, t) {
				img.Tags = append(img.Tags, t)
			}
		}
	}
	return nil
}

func descriptorName(d dockerarchive.Descriptor) string {
	if n := d.Annotations[annotationName]; n != "" {
		return n
	}
	return d.Annotations[annotationRef]
}

// blobName is where a layout stores a blob; the digest is validated first, so a
// hostile descriptor cannot name a path outside blobs/.
func blobName(d layerfs.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", err
	}
	return "blobs/sha256/" + d.Hex(), nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// storedLayer is a layer blob inside an archive, compressed or not.
type storedLayer struct {
	st     store
	name   string
	diffID layerfs.Digest
}

// WriteTo copies the blob as stored; Analyze detects and undoes compression.
func (l *storedLayer) WriteTo(w io.Writer) (int64, error) {
	rc, err := l.st.open(l.name)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	return io.Copy(w, rc)
}

// KnownDiffID is the diff_id the config gives the layer; Analyze checks it.
func (l *storedLayer) KnownDiffID() (layerfs.Digest, bool) { return l.diffID, true }
