package inspect

import (
	"archive/tar"
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// Layer is what Analyze reads of a layer: its blob, streamed into w. The blob may be
// a plain tar or a compressed one. *layerfs.Layer is a Layer.
type Layer interface {
	WriteTo(w io.Writer) (int64, error)
}

// Image is what Analyze reads of an image: the config blob and the layers, bottom
// first. ArchiveImage is one; FromImage adapts an *image.Image.
type Image interface {
	ConfigJSON() ([]byte, error)
	Layers() []Layer
}

// diffIDKnower is implemented by layers whose diff_id is known before they are read
// (*layerfs.Layer once hashed, layers of an archive). Analyze uses it to read a layer
// that several images share only once.
type diffIDKnower interface {
	KnownDiffID() (layerfs.Digest, bool)
}

var _ Layer = (*layerfs.Layer)(nil)

// FromImage returns img as an Image, for analysing an image that has not been
// written anywhere.
func FromImage(img *image.Image) Image { return memImage{img} }

type memImage struct{ img *image.Image }

func (m memImage) ConfigJSON() ([]byte, error) { return m.img.ConfigJSON() }

func (m memImage) Layers() []Layer {
	out := make([]Layer, len(m.img.Layers))
	for i, l := range m.img.Layers {
		out[i] = l
	}
	return out
}

// Analyze reads each layer of img once and reports its history, layers, changes and
// wasted bytes. The report's Tags are left empty for the caller to fill in.
func Analyze(ctx context.Context, img Image) (*ImageReport, error) {
	return newAnalyzer().image(ctx, img)
}

// AnalyzeArchive analyses every image of a; a layer that several images share is
// read once.
func AnalyzeArchive(ctx context.Context, a *Archive) (*Report, error) {
	r := &Report{Source: a.Path, Format: a.Format, Storage: a.Storage, Compression: string(a.Compression),
		Images: []*ImageReport{}}
	an := newAnalyzer()
	for i, img := range a.Images {
		ir, err := an.image(ctx, img)
		if err != nil {
			return nil, fmt.Errorf("image %d: %w", i+1, err)
		}
		ir.Tags = append([]string{}, img.Tags...)
		r.Images = append(r.Images, ir)
	}
	return r, nil
}

type analyzer struct {
	scans map[layerfs.Digest]*layerScan
}

func newAnalyzer() *analyzer { return &analyzer{scans: map[layerfs.Digest]*layerScan{}} }

// layerScan is what one pass over a layer yields; it does not depend on the layers
// below, so images that share the layer share it.
type layerScan struct {
	diffID      layerfs.Digest
	size        int64 // uncompressed tar bytes
	stored      int64 // blob bytes
	compression layerfs.Compression
	entries     []Entry // Change and the waste fields unset
}

func (an *analyzer) image(ctx context.Context, img Image) (*ImageReport, error) {
	layers := img.Layers()
	scans := make([]*layerScan, len(layers))
	for i, l := range layers {
		s, err := an.scan(ctx, l)
		if err != nil {
			return nil, fmt.Errorf("reading layer %d: %w", i+1, err)
		}
		scans[i] = s
	}
	// The config comes after the layers: an image just built learns its diff_ids
	// while its layers stream, and would otherwise stream each of them twice.
	raw, err := img.ConfigJSON()
	if err != nil {
		return nil, fmt.Errorf("reading the config: %w", err)
	}
	var cf image.ConfigFile
	if err := json.Unmarshal(raw, &cf); err != nil {
		return nil, fmt.Errorf("parsing the config: %w", err)
	}
	if n := len(cf.RootFS.DiffIDs); n != len(scans) {
		return nil, fmt.Errorf("the config lists %d diff_ids for %d layers", n, len(scans))
	}
	for i, s := range scans {
		if want := cf.RootFS.DiffIDs[i]; s.diffID != want {
			return nil, fmt.Errorf("layer %d has digest %s, but the config lists %s", i+1, s.diffID, want)
		}
	}

	r := &ImageReport{ID: string(layerfs.DigestOf(raw)), Tags: []string{}, Config: raw, Created: cf.Created,
		Platform: platform(cf)}
	r.Layers = classify(scans)
	r.History = lineUp(cf.History, r.Layers)
	for _, l := range r.Layers {
		r.Size += l.Size
		r.ContentSize += l.ContentSize
		r.WastedBytes += l.WastedBytes
		r.WastedFiles += l.WastedFiles
	}
	return r, nil
}

func platform(cf image.ConfigFile) string {
	p := cf.OS + "/" + cf.Architecture
	if cf.Variant != "" {
		p += "/" + cf.Variant
	}
	return p
}

// scan reads a layer once, or returns the earlier pass over the same diff_id.
func (an *analyzer) scan(ctx context.Context, l Layer) (*layerScan, error) {
	var known layerfs.Digest
	if k, ok := l.(diffIDKnower); ok {
		if d, ok := k.KnownDiffID(); ok {
			known = d
		}
	}
	if s := an.scans[known]; known != "" && s != nil {
		return s, nil
	}
	s, err := streamLayer(ctx, l)
	if err != nil {
		return nil, err
	}
	if known != "" && s.diffID != known {
		return nil, fmt.Errorf("the layer's digest is %s, but the image lists %s", s.diffID, known)
	}
	an.scans[s.diffID] = s
	return s, nil
}

// errStopped tells a layer's writer that its reader has gone.
var errStopped = errors.New("the layer is no longer being read")

// streamLayer runs the layer's WriteTo into a pipe and reads the tar on the other
// end, so no more than a buffer of it is ever in memory.
func streamLayer(ctx context.Context, l Layer) (*layerScan, error) {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		_, err := l.WriteTo(pw)
		pw.CloseWithError(err)
		done <- err
	}()
	s, err := readLayer(ctx, pr)
	pr.CloseWithError(errStopped)
	werr := <-done
	if err == nil && werr != nil {
		err = werr
	}
	return s, err
}

// readLayer reads a layer blob to its very end, so its digest covers every byte.
func readLayer(ctx context.Context, r io.Reader) (*layerScan, error) {
	raw := &layerfs.CountingReader{R: r}
	br := bufio.NewReaderSize(raw, 1<<16)
	s := &layerScan{compression: layerfs.DetectCompression(br)}
	dr, err := layerfs.Decompress(br, s.compression)
	if err != nil {
		return nil, fmt.Errorf("decompressing (%s): %w", s.compression, err)
	}
	defer dr.Close()
	h := sha256.New()
	plain := &layerfs.CountingReader{R: io.TeeReader(dr, h)}
	tr := tar.NewReader(plain)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the layer tar: %w", err)
		}
		if e, ok := entryOf(hdr); ok {
			s.entries = append(s.entries, e)
		}
	}
	// The end-of-archive blocks, and any padding after them, are part of the diff_id.
	if _, err := io.Copy(io.Discard, plain); err != nil {
		return nil, fmt.Errorf("reading the layer tar: %w", err)
	}
	if _, err := io.Copy(io.Discard, br); err != nil {
		return nil, fmt.Errorf("reading the layer: %w", err)
	}
	s.diffID = layerfs.Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
	s.size = plain.N
	s.stored = raw.N
	return s, nil
}

// Whiteout names (OCI image-spec layer.md, "Whiteouts"). AUFS's own metadata names
// also start with .wh..wh. and are not whiteouts of anything.
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
	aufsMetaPrefix = ".wh..wh."
)

// entryOf turns a tar header into an entry; false for entries that describe no
// path of the image: the root directory, AUFS metadata, PAX global headers.
func entryOf(h *tar.Header) (Entry, bool) {
	p := path.Clean("/" + h.Name)
	if p == "/" || h.Typeflag == tar.TypeXGlobalHeader {
		return Entry{}, false
	}
	e := Entry{Path: p, Mode: fmt.Sprintf("%04o", h.Mode&0o7777), UID: h.Uid, GID: h.Gid}
	dir, base := path.Split(p)
	switch {
	case base == opaqueWhiteout:
		e.Path, e.Type = path.Clean(dir), TypeOpaque
		return e, true
	case strings.HasPrefix(base, aufsMetaPrefix):
		return Entry{}, false
	case strings.HasPrefix(base, whiteoutPrefix):
		e.Path, e.Type = path.Join(dir, strings.TrimPrefix(base, whiteoutPrefix)), TypeWhiteout
		return e, true
	}
	switch h.Typeflag {
	case tar.TypeReg, tar.TypeGNUSparse: // tar.Reader reports the legacy TypeRegA as TypeReg or TypeDir
		e.Type, e.Size = TypeFile, h.Size
	case tar.TypeDir:
		e.Type = TypeDir
	case tar.TypeSymlink:
		e.Type, e.Link = TypeSymlink, h.Linkname
	case tar.TypeLink:
		e.Type, e.Link = TypeHardlink, path.Clean("/"+h.Linkname)
	case tar.TypeChar, tar.TypeBlock:
		e.Type, e.Device = TypeChar, fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor)
		if h.Typeflag == tar.TypeBlock {
			e.Type = TypeBlock
		}
	case tar.TypeFifo:
		e.Type = TypeFIFO
	default:
		e.Type = TypeOther
	}
	return e, true
}

// node is a path of the image as the layers so far make it.
type node struct {
	children map[string]*node
	dir      bool
	layer    int // index into the layers of the entry that put it there; -1 for a parent no entry named
	entry    int
}

// classify lines the scans up bottom first and works out, entry by entry, what each
// changes and which are wasted. Only the tree of paths is kept while it runs.
func classify(scans []*layerScan) []*LayerReport {
	out := make([]*LayerReport, len(scans))
	for i, s := range scans {
		out[i] = &LayerReport{Index: i + 1, DiffID: string(s.diffID), Size: s.size, Compression: string(s.compression),
			Entries: slices.Clone(s.entries)}
		if s.compression != layerfs.Uncompressed {
			out[i].StoredSize = s.stored
		}
	}
	root := &node{dir: true, layer: -1, children: map[string]*node{}}
	for k, l := range out {
		// Whether a path existed is decided against the layers below, before this
		// layer's whiteouts apply.
		for i := range l.Entries {
			e := &l.Entries[i]
			switch {
			case e.Type == TypeWhiteout || e.Type == TypeOpaque:
				e.Change = Removed
				l.Removed++
			case lookup(root, e.Path) != nil:
				e.Change = Changed
				l.Changed++
			default:
				e.Change = Added
				l.Added++
			}
			l.ContentSize += e.Size
		}
		for i := range l.Entries {
			e := &l.Entries[i]
			switch e.Type {
			case TypeWhiteout:
				if n := detach(root, e.Path); n != nil {
					waste(out, n, k, Removed, &e.HiddenBytes)
				}
			case TypeOpaque:
				if n := lookup(root, e.Path); n != nil && n.dir {
					for _, c := range n.children {
						waste(out, c, k, Removed, &e.HiddenBytes)
					}
					n.children = map[string]*node{}
				}
			}
		}
		for i := range l.Entries {
			e := &l.Entries[i]
			if e.Type == TypeWhiteout || e.Type == TypeOpaque {
				continue
			}
			put(out, root, e, k, i)
		}
	}
	return out
}

// put places an entry in the tree. A directory over a directory only updates it;
// anything else replaces what was there, with everything under it.
func put(out []*LayerReport, root *node, e *Entry, k, i int) {
	parent := root
	parts := strings.Split(strings.TrimPrefix(e.Path, "/"), "/")
	for _, name := range parts[:len(parts)-1] {
		c := parent.children[name]
		if c == nil || !c.dir {
			// A parent the tar does not list exists implicitly, as a directory.
			if c != nil {
				waste(out, c, k, Changed, &e.HiddenBytes)
			}
			c = &node{dir: true, layer: -1, children: map[string]*node{}}
			parent.children[name] = c
		}
		parent = c
	}
	name := parts[len(parts)-1]
	old := parent.children[name]
	isDir := e.Type == TypeDir
	if old != nil && old.dir && isDir {
		old.layer, old.entry = k, i
		return
	}
	if old != nil {
		waste(out, old, k, Changed, &e.HiddenBytes)
	}
	n := &node{dir: isDir, layer: k, entry: i}
	if isDir {
		n.children = map[string]*node{}
	}
	parent.children[name] = n
}

// waste marks n and everything under it as hidden by layer k.
func waste(out []*LayerReport, n *node, k int, how string, hidden *int64) {
	if n.layer >= 0 {
		l := out[n.layer]
		e := &l.Entries[n.entry]
		e.Wasted, e.WastedBy = "overwritten", k+1
		if how == Removed {
			e.Wasted = "removed"
		}
		l.WastedBytes += e.Size
		*hidden += e.Size
		if e.Type != TypeDir {
			l.WastedFiles++
		}
	}
	for _, c := range n.children {
		waste(out, c, k, how, hidden)
	}
}

func lookup(root *node, p string) *node {
	n := root
	for _, name := range strings.Split(strings.TrimPrefix(p, "/"), "/") {
		if n = n.children[name]; n == nil {
			return nil
		}
	}
	return n
}

func detach(root *node, p string) *node {
	dir, name := path.Split(p)
	parent := root
	if dir != "/" {
		if parent = lookup(root, path.Clean(dir)); parent == nil {
			return nil
		}
	}
	n := parent.children[name]
	delete(parent.children, name)
	return n
}

// lineUp pairs history entries with layers as docker history does: each entry
// without empty_layer takes the next layer.
func lineUp(hist []image.History, layers []*LayerReport) []HistoryRow {
	rows := make([]HistoryRow, 0, len(hist))
	next := 0
	for i, h := range hist {
		row := HistoryRow{Index: i + 1, Created: h.Created, CreatedBy: h.CreatedBy, Author: h.Author,
			Comment: h.Comment, EmptyLayer: h.EmptyLayer}
		if !h.EmptyLayer {
			if next < len(layers) {
				row.Layer = next + 1
				layers[next].History, layers[next].CreatedBy = row.Index, h.CreatedBy
			}
			next++
		}
		rows = append(rows, row)
	}
	for ; next < len(layers); next++ {
		rows = append(rows, HistoryRow{Index: len(rows) + 1, Layer: next + 1, NoHistory: true})
		layers[next].History = len(rows)
	}
	return rows
}
