package baseimage

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

// Base is an image loaded from an archive or layout.
type Base struct {
	// FS is the flattened filesystem: every layer applied in order. It has no pending
	// changes, so its first Commit holds only what changed after Load.
	FS *layerfs.FS
	// Layers are the image's layers, bottom first, as uncompressed tars whose diff_ids
	// (the config's) are known. Writing one checks its size and digest again.
	Layers []*layerfs.Layer
	// Config is the parsed config: history, config, author, platform...
	Config image.ConfigFile
	// ID is the image ID, the digest of the config blob as stored.
	ID layerfs.Digest
	// Tags are the names the archive gives the image, as it spells them.
	Tags []string
	// Close releases the spool files and open handles. FS and Layers cannot be read
	// afterwards. It may be called more than once.
	Close func() error
}

// Load reads the image that ref names (a tag like "app:1" matched as Docker matches
// names, or "" when the archive holds exactly one image) from the archive or layout
// at path, and returns its filesystem, its layers and its config. Compressed layers
// (and a compressed outer archive) are decompressed into files in spoolDir, which
// Close removes.
func Load(path, ref, spoolDir string) (*Base, error) {
	return LoadMatching(path, ref, spoolDir, nil)
}

// LoadMatching is Load for an archive that gives one name to several images, as an
// OCI layout of a multi-platform image does: of the images ref names (all of them
// when ref is ""), it loads the one whose config keep accepts. keep is only asked
// when more than one image fits ref; nil accepts every image. It is an error unless
// exactly one image is left.
func LoadMatching(path, ref, spoolDir string, keep func(*image.ConfigFile) bool) (*Base, error) {
	a, err := inspect.OpenScratch(path, spoolDir)
	if err != nil {
		if errors.Is(err, inspect.ErrNotImage) {
			return nil, fmt.Errorf("%w (a root filesystem tarball loads as one, with layerfs.LoadRootfs)", err)
		}
		return nil, err
	}
	l := &loader{path: path, spoolDir: spoolDir, archive: a, spooled: map[layerfs.Digest]string{}}
	b, err := l.load(ref, keep)
	if err != nil {
		l.close()
		return nil, err
	}
	return b, nil
}

// LoadManifest loads the image whose manifest has the given digest from the OCI
// image layout directory layout, as a registry pull leaves it in the blob cache.
func LoadManifest(layout string, manifest layerfs.Digest, spoolDir string) (*Base, error) {
	a, err := inspect.OpenLayoutManifest(layout, manifest, spoolDir)
	if err != nil {
		return nil, err
	}
	l := &loader{path: layout, spoolDir: spoolDir, archive: a, spooled: map[layerfs.Digest]string{}}
	b, err := l.load("", nil)
	if err != nil {
		l.close()
		return nil, err
	}
	return b, nil
}

type loader struct {
	path     string
	spoolDir string
	archive  *inspect.Archive
	spools   []string                  // files to remove on Close
	spooled  map[layerfs.Digest]string // the spool file of each decompressed layer
	closed   bool
}

func (l *loader) close() error {
	if l.closed {
		return nil
	}
	l.closed = true
	errs := []error{l.archive.Close()}
	for _, s := range l.spools {
		if err := os.Remove(s); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// candidate is an image of the archive with what choosing among them needs.
type candidate struct {
	img    *inspect.ArchiveImage
	id     layerfs.Digest
	config image.ConfigFile
}

func (l *loader) load(ref string, keep func(*image.ConfigFile) bool) (*Base, error) {
	var all []*candidate
	for i, img := range l.archive.Images {
		raw, err := img.ConfigJSON()
		if err != nil {
			return nil, fmt.Errorf("%s: image %d: reading the config: %w", l.path, i+1, err)
		}
		c := &candidate{img: img, id: layerfs.DigestOf(raw)}
		if err := json.Unmarshal(raw, &c.config); err != nil {
			return nil, fmt.Errorf("%s: image %d (%s): parsing the config: %w", l.path, i+1, describe(c), err)
		}
		all = append(all, c)
	}
	c, err := l.choose(all, ref, keep)
	if err != nil {
		return nil, err
	}
	label := describe(c)
	b := &Base{Config: c.config, ID: c.id, Tags: append([]string{}, c.img.Tags...), Close: l.close}
	ids := c.config.RootFS.DiffIDs // Open has checked that each layer has one
	app := layerfs.NewLayerApplier()
	for i := range c.img.Layers() {
		layer, err := l.layer(app, c.img, i, ids[i])
		if err != nil {
			return nil, fmt.Errorf("%s: image %s: layer %d of %d (%s): %w", l.path, label, i+1, len(ids), c.img.LayerName(i), err)
		}
		b.Layers = append(b.Layers, layer)
	}
	b.FS = app.FS()
	return b, nil
}

// choose finds the image ref names.
func (l *loader) choose(all []*candidate, ref string, keep func(*image.ConfigFile) bool) (*candidate, error) {
	if len(all) == 0 {
		return nil, fmt.Errorf("%s holds no image", l.path)
	}
	if ref == "" {
		found := all
		if len(all) > 1 && keep != nil {
			found = nil
			for _, c := range all {
				if keep(&c.config) {
					found = append(found, c)
				}
			}
		}
		if len(found) == 1 {
			return found[0], nil
		}
		return nil, fmt.Errorf("%s holds %d images; name one of them: %s", l.path, len(all), list(all))
	}
	var found []*candidate
	for _, c := range all {
		for _, t := range c.img.Tags {
			if sameName(ref, t) {
				found = append(found, c)
				break
			}
		}
	}
	if len(found) == 0 {
		if prefix, ok := idPrefix(ref); ok {
			for _, c := range all {
				if strings.HasPrefix(c.id.Hex(), prefix) {
					found = append(found, c)
				}
			}
		}
	}
	if len(found) == 0 {
		return nil, fmt.Errorf("%s holds no image named %q; it holds %s", l.path, ref, countList(all))
	}
	if len(found) > 1 && keep != nil {
		var kept []*candidate
		for _, c := range found {
			if keep(&c.config) {
				kept = append(kept, c)
			}
		}
		if len(kept) == 0 {
			return nil, fmt.Errorf("%s: none of the %d images named %q is for the platform wanted: %s", l.path, len(found), ref, list(found))
		}
		found = kept
	}
	if len(found) > 1 {
		return nil, fmt.Errorf("%s: %q names %d images: %s", l.path, ref, len(found), list(found))
	}
	return found[0], nil
}

// sameName reports whether two image names are the same once normalised as Docker
// normalises them ("app" is "docker.io/library/app:latest"). A name that does not
// parse matches only itself.
func sameName(a, b string) bool {
	if a == b {
		return true
	}
	ta, err := image.ParseTag(a)
	if err != nil {
		return false
	}
	tb, err := image.ParseTag(b)
	return err == nil && ta.Full == tb.Full
}

// idPrefix returns the hex digits of an image ID or ID prefix ("sha256:" optional,
// 12 digits at least, as docker shows them).
func idPrefix(ref string) (string, bool) {
	h := strings.TrimPrefix(ref, "sha256:")
	if len(h) < 12 || len(h) > 64 || strings.ToLower(h) != h {
		return "", false
	}
	if _, err := hex.DecodeString(h + h[:len(h)%2]); err != nil {
		return "", false
	}
	return h, true
}

// describe names an image in messages: its tags, or its short ID when it has none,
// and its platform when the config gives one.
func describe(c *candidate) string {
	s := strings.Join(c.img.Tags, ", ")
	if s == "" {
		s = "untagged " + c.id.Hex()[:12]
	}
	if p := platform(c.config); p != "" {
		s += " (" + p + ")"
	}
	return s
}

func platform(cf image.ConfigFile) string {
	if cf.OS == "" || cf.Architecture == "" {
		return ""
	}
	p := cf.OS + "/" + cf.Architecture
	if cf.Variant != "" {
		p += "/" + cf.Variant
	}
	return p
}

// countList is list with the number of images first, when there are several.
func countList(cs []*candidate) string {
	if len(cs) <= 1 {
		return list(cs)
	}
	return fmt.Sprintf("%d images: %s", len(cs), list(cs))
}

// listMax is how many images an error names: an archive of thousands would
// otherwise make an error of hundreds of kilobytes.
const listMax = 5

// list names the images for an error: all of them when they are few, else the
// first listMax and how many more there are.
func list(cs []*candidate) string {
	var names []string
	for _, c := range cs[:min(len(cs), listMax)] {
		names = append(names, describe(c))
	}
	s := strings.Join(names, "; ")
	if len(cs) > listMax {
		s += fmt.Sprintf("; and %d more (%d in all)", len(cs)-listMax, len(cs))
	}
	return s
}

// readerAtCloser is a stored blob or a spool file, opened for reading by offset.
type readerAtCloser interface {
	io.ReaderAt
	io.Closer
}

// layer applies layer i of img and returns it as a layerfs.Layer.
func (l *loader) layer(app *layerfs.LayerApplier, img *inspect.ArchiveImage, i int, want layerfs.Digest) (*layerfs.Layer, error) {
	open := func() (readerAtCloser, error) { return img.OpenLayer(i) }
	if spool, ok := l.spooled[want]; ok {
		// The image repeats a compressed layer: its bytes are spooled already.
		return l.apply(app, openFile(spool), want, nil)
	}
	blob, err := img.OpenLayer(i)
	if err != nil {
		return nil, fmt.Errorf("opening it: %w", err)
	}
	defer blob.Close()
	br := bufio.NewReaderSize(io.NewSectionReader(blob, 0, blob.Size()), layerfs.BufferSize(blob.Size()))
	comp := layerfs.DetectCompression(br)
	if comp == layerfs.Uncompressed {
		return l.apply(app, open, want, br)
	}

	dr, err := layerfs.Decompress(br, comp)
	if err != nil {
		return nil, fmt.Errorf("reading its %s data: %w", comp, err)
	}
	defer dr.Close()
	spool, err := os.CreateTemp(l.spoolDir, "base-layer-*.tar")
	if err != nil {
		return nil, fmt.Errorf("spooling its decompressed bytes: %w", err)
	}
	l.spools = append(l.spools, spool.Name())
	defer spool.Close()
	sw := bufio.NewWriterSize(spool, layerfs.BufferSize(4*blob.Size()))
	layer, err := l.apply(app, openFile(spool.Name()), want, io.TeeReader(dr, sw))
	if err != nil {
		return nil, fmt.Errorf("decompressed from %s: %w", comp, err)
	}
	if err := sw.Flush(); err != nil {
		return nil, fmt.Errorf("spooling its decompressed bytes: %w", err)
	}
	if err := spool.Close(); err != nil {
		return nil, fmt.Errorf("spooling its decompressed bytes: %w", err)
	}
	l.spooled[want] = spool.Name()
	return layer, nil
}

// apply applies the uncompressed layer tar that r delivers, or that open gives when
// r is nil, and checks its digest. open gives the same bytes afterwards, for the
// file bodies and the returned layer.
func (l *loader) apply(app *layerfs.LayerApplier, open func() (readerAtCloser, error), want layerfs.Digest, r io.Reader) (*layerfs.Layer, error) {
	if r == nil {
		f, err := open()
		if err != nil {
			return nil, err
		}
		defer f.Close()
		size := int64(1 << 20)
		if s, ok := f.(interface{ Stat() (os.FileInfo, error) }); ok {
			if fi, err := s.Stat(); err == nil {
				size = fi.Size()
			}
		}
		r = bufio.NewReaderSize(io.NewSectionReader(f, 0, 1<<62), layerfs.BufferSize(size))
	}
	size, got, err := app.Apply(r, func(off, size int64) layerfs.Opener { return section(open, off, size) })
	if err != nil {
		return nil, err
	}
	if got != want {
		return nil, fmt.Errorf("its tar has digest %s, but the config lists %s as its diff_id", got, want)
	}
	return layerfs.NewLayer(size, want, func(w io.Writer) error {
		f, err := open()
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, io.NewSectionReader(f, 0, size))
		return err
	}), nil
}

func openFile(name string) func() (readerAtCloser, error) {
	return func() (readerAtCloser, error) { return os.Open(name) }
}

// section returns an opener of size bytes at offset off of what open opens.
func section(open func() (readerAtCloser, error), off, size int64) layerfs.Opener {
	return func() (io.ReadCloser, error) {
		f, err := open()
		if err != nil {
			return nil, err
		}
		return sectionReader{io.NewSectionReader(f, off, size), f}, nil
	}
}

type sectionReader struct {
	*io.SectionReader
	c io.Closer
}

func (s sectionReader) Close() error { return s.c.Close() }
