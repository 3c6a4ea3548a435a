package layerfs

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
)

// Rootfs is a base filesystem read from a tarball: its tree and the layer that
// reproduces it byte for byte.
type Rootfs struct {
	FS          *FS
	Layer       *Layer
	Compression Compression
}

// LoadRootfs reads the root filesystem tarball at file, compressed or not (detected
// from its content), checks every entry and fills a new tree with them. The returned
// layer is the tarball itself when it is uncompressed, and its decompressed bytes
// otherwise; those are kept in a file under spoolDir, which the caller removes when
// the build ends. File bodies stay on disk: the tree refers to them by offset. The
// tree has no pending changes, and its directories keep the times their entries give
// them; only the parents the tarball leaves out take the build time.
//
// Entries with an absolute name, a ".." component, a whiteout name, a hard link
// outside the tarball or a symlink that climbs out of the root are refused, as are
// sparse files and duplicate paths, so the layer loads the same way everywhere.
func LoadRootfs(file, spoolDir string) (*Rootfs, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	br := bufio.NewReaderSize(f, BufferSize(fi.Size()))
	comp := DetectCompression(br)

	backing := file // the file whose bytes are the layer
	var src io.Reader = br
	var spool *os.File
	var spoolBuf *bufio.Writer
	if comp != Uncompressed {
		dr, err := Decompress(br, comp)
		if err != nil {
			return nil, fmt.Errorf("reading %s data: %w", comp, err)
		}
		defer dr.Close()
		spool, err = os.CreateTemp(spoolDir, "base-*.tar")
		if err != nil {
			return nil, fmt.Errorf("spooling the decompressed tarball: %w", err)
		}
		defer spool.Close()
		backing = spool.Name()
		spoolBuf = bufio.NewWriterSize(spool, BufferSize(4*fi.Size()))
		src = io.TeeReader(dr, spoolBuf)
	}

	l := &tarApplier{fsys: New(), rootfs: true}
	size, diffID, err := l.apply(src, func(off, size int64) Opener { return sectionOpener(backing, off, size) })
	if err != nil {
		return nil, err
	}
	if spoolBuf != nil {
		if err := spoolBuf.Flush(); err != nil {
			return nil, fmt.Errorf("spooling the decompressed tarball: %w", err)
		}
		if err := spool.Close(); err != nil {
			return nil, fmt.Errorf("spooling the decompressed tarball: %w", err)
		}
	}
	fsys := l.done()
	layer := NewLayer(size, diffID, func(w io.Writer) error {
		f, err := os.Open(backing)
		if err != nil {
			return err
		}
		defer f.Close()
		_, err = io.Copy(w, io.NewSectionReader(f, 0, size))
		return err
	})
	return &Rootfs{FS: fsys, Layer: layer, Compression: comp}, nil
}

// LayerApplier stacks the layer tars of an image onto one tree, bottom first, the way
// an image store unpacks them (OCI image-spec layer.md). Each layer is checked as
// LoadRootfs checks a tarball: absolute names, ".." components, hard links to
// anything but a file earlier in the same layer, symlinks that climb out of the root,
// sparse files and a path named twice in one layer are refused. On top of that:
//
//   - A whiteout .wh.NAME removes NAME, and everything below it, as the lower layers
//     left it; one for a path that does not exist is ignored. A layer that both
//     whites out a path and writes it (or something below it) is refused, as Docker
//     and podman refuse it.
//   - An opaque marker DIR/.wh..wh..opq removes the lower layers' contents of DIR;
//     what the same layer puts there stays, wherever the marker stands in the tar.
//   - An entry whose path a lower layer holds replaces it, except that a directory
//     meeting a directory takes the new metadata and keeps its contents. A parent
//     that the layer does not list is implied (mode 0755, root, the build time) when
//     missing, and also when a lower layer has a non-directory there, which then
//     goes, as overlay stores show it; a lower directory there is kept as it is.
//     Nothing is ever written through a symlink.
//   - Entries under a top-level .wh..wh.* directory (aufs metadata) are skipped, as
//     Docker skips them.
//
// File bodies stay where the layer's bytes are: the tree refers to them through the
// openers that Apply's caller supplies. Of the extended attributes only
// security.capability is kept in the tree (Node.Capability), as the layer writers
// keep only that one; the others, like user and group names, are not (the layer's
// own bytes still carry them).
type LayerApplier struct {
	t tarApplier
}

// NewLayerApplier returns an applier onto a new, empty tree.
func NewLayerApplier() *LayerApplier {
	return &LayerApplier{t: tarApplier{fsys: New()}}
}

// Apply reads the uncompressed layer tar that r delivers, to its very end, and
// applies it to the tree. bodyAt(off, size) must return an opener of the size bytes
// found at offset off of that stream: the caller keeps the stream where the opener
// can find it again (the blob itself, or a spool file that a tee fills while Apply
// reads). Apply returns the stream's length and sha256, the layer's diff_id. After an
// error the tree is partly applied and must not be used.
func (a *LayerApplier) Apply(r io.Reader, bodyAt func(off, size int64) Opener) (int64, Digest, error) {
	return a.t.apply(r, bodyAt)
}

// FS returns the tree, with everything applied so far as its base content: it has no
// pending changes, so its next Commit holds only what changed after this call, and
// its directories keep the times their entries gave them. Call it once, after the
// last Apply.
func (a *LayerApplier) FS() *FS { return a.t.done() }

// tarApplier applies tar streams onto a tree: a root filesystem tarball, or the
// layers of an image one after the other.
type tarApplier struct {
	fsys   *FS
	rootfs bool // a root filesystem tarball: a single layer without whiteouts

	// Of the layer being applied:
	seen    map[string]bool // the paths its entries name, whiteouts included
	touched map[string]bool // seen (whiteouts excepted) and every directory above
	hidden  *pathSet        // the paths its whiteouts name
	nHidden int
}

// what names the stream in errors.
func (l *tarApplier) what() string {
	if l.rootfs {
		return "tarball"
	}
	return "layer"
}

func (l *tarApplier) apply(r io.Reader, bodyAt func(off, size int64) Opener) (int64, Digest, error) {
	l.seen, l.touched, l.hidden, l.nHidden = map[string]bool{}, map[string]bool{}, &pathSet{}, 0
	defer func() { l.seen, l.touched, l.hidden = nil, nil, nil }()
	h := sha256.New()
	pr := &CountingReader{R: io.TeeReader(r, h)}
	tr := tar.NewReader(pr)
	prev := "" // the last entry read, to place an error in a damaged tarball
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if i == 0 && l.rootfs {
				return 0, "", errors.New("not a tar archive: no entries")
			}
			break
		}
		if err != nil {
			if i == 0 {
				return 0, "", fmt.Errorf("not a tar archive: %w", err)
			}
			return 0, "", fmt.Errorf("reading entry %d, after %q: %w", i+1, prev, err)
		}
		if err := l.add(hdr, pr.N, bodyAt); err != nil {
			return 0, "", fmt.Errorf("entry %q: %w", Shorten(hdr.Name), err)
		}
		prev = hdr.Name
	}
	// The layer is the whole stream, trailing padding included.
	if _, err := io.Copy(io.Discard, pr); err != nil {
		return 0, "", fmt.Errorf("reading to the end: %w", err)
	}
	return pr.N, Digest("sha256:" + hex.EncodeToString(h.Sum(nil))), nil
}

// done makes the tree's contents its base: no pending changes.
func (l *tarApplier) done() *FS {
	l.fsys.changed, l.fsys.created, l.fsys.removed = map[string]struct{}{}, map[string]struct{}{}, map[string]Type{}
	return l.fsys
}

// cleanName checks an entry or hard link name and returns it as an absolute path.
func (l *tarApplier) cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		if l.rootfs {
			return "", errors.New("absolute path: a rootfs tarball must use relative names")
		}
		return "", errors.New("absolute path: a layer must use relative names")
	}
	for c := range strings.SplitSeq(name, "/") {
		if c == ".." {
			return "", errors.New(`".." in the path would leave the root`)
		}
	}
	p := Clean(name)
	if len(p) >= MaxPathLen {
		return "", fmt.Errorf("a path of %d bytes: %w", len(p), errPathTooLong)
	}
	return p, nil
}

func (l *tarApplier) add(hdr *tar.Header, offset int64, bodyAt func(off, size int64) Opener) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeGNUSparse:
		return errors.New("sparse files are not supported")
	}
	// archive/tar presents a PAX-format GNU sparse file as a regular file of its
	// logical size whose body is not the bytes stored at this offset.
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return errors.New("sparse files are not supported")
		}
	}
	p, err := l.cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if !l.rootfs && p != "/"+opaqueWhiteout && strings.HasPrefix(p, "/"+whiteoutPrefix+whiteoutPrefix) {
		return nil // aufs metadata (.wh..wh.plnk and the like), which Docker skips
	}
	if l.seen[p] {
		return fmt.Errorf("duplicate path: the %s names it twice", l.what())
	}
	l.seen[p] = true
	if strings.HasPrefix(path.Base(p), whiteoutPrefix) {
		if l.rootfs {
			return errors.New("whiteout entries do not belong in a root filesystem")
		}
		return l.whiteout(p)
	}
	if l.nHidden > 0 && (l.hidden.has(p) || l.hidden.under(p)) {
		q := p
		for !l.hidden.has(q) {
			q = path.Dir(q)
		}
		return fmt.Errorf("the layer also has a whiteout for %q", q)
	}

	n := &Node{
		Mode:    uint32(hdr.Mode) & 0o7777,
		UID:     hdr.Uid,
		GID:     hdr.Gid,
		ModTime: hdr.ModTime,
		// An unpacker sets every SCHILY.xattr record it finds; of them the tree keeps
		// security.capability, the only one a layer written from it would carry.
		Capability: hdr.PAXRecords[PAXCapability],
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		n.Type = TypeDir
	case tar.TypeReg: // tar.Reader reports the legacy TypeRegA as TypeReg or TypeDir
		n.Type, n.Size = TypeReg, hdr.Size
		n.Content = bodyAt(offset, hdr.Size)
	case tar.TypeLink:
		target, err := l.cleanName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		t := l.fsys.Get(target)
		if t == nil || t.Type != TypeReg || !l.seen[target] {
			return fmt.Errorf("hard link to %q, which is not a file earlier in the %s", hdr.Linkname, l.what())
		}
		// Both names share one group: read the same bytes, and a layer holding both
		// writes the second as a link.
		if t.HardLink == 0 {
			t.HardLink = l.fsys.NewLinkGroup()
		}
		n.Type, n.Size, n.Content, n.HardLink = TypeReg, t.Size, t.Content, t.HardLink
		if _, ok := hdr.PAXRecords[PAXCapability]; !ok {
			// Without a record of its own, the link shows the inode's xattr.
			n.Capability = t.Capability
		}
	case tar.TypeSymlink:
		if len(hdr.Linkname) >= MaxPathLen {
			return fmt.Errorf("symlink target of %d bytes: %w", len(hdr.Linkname), errPathTooLong)
		}
		if escapes(p, hdr.Linkname) {
			return fmt.Errorf("symlink to %q points outside the root", hdr.Linkname)
		}
		n.Type, n.Target = TypeSymlink, hdr.Linkname
	case tar.TypeChar:
		n.Type, n.Major, n.Minor = TypeChar, hdr.Devmajor, hdr.Devminor
	case tar.TypeBlock:
		n.Type, n.Major, n.Minor = TypeBlock, hdr.Devmajor, hdr.Devminor
	case tar.TypeFifo:
		n.Type = TypeFIFO
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if p == "/" {
		if n.Type != TypeDir {
			return errors.New("the root entry must be a directory")
		}
		l.touched[p] = true
		return l.fsys.Put(p, n)
	}
	parent, err := l.parentOf(p)
	if err != nil {
		return err
	}
	for q := p; q != "/" && !l.touched[q]; q = parentDir(q) {
		l.touched[q] = true
	}
	// The tree's own change tracking would give the parent the build time; a
	// loaded directory keeps the time its entry gave it.
	stamped := parent.Stamped
	err = l.fsys.Put(p, n)
	parent.Stamped = stamped
	return err
}

// parentOf returns the directory that will hold p, making the directories the
// layer implies. A lower layer's non-directory in the way is replaced; one this
// layer wrote is an error, so nothing lands behind a symlink.
func (l *tarApplier) parentOf(p string) (*Node, error) {
	n := l.fsys.root
	end := 0 // cur is a prefix of p, not a string of its own (see MkdirAll)
	for _, name := range split(parentDir(p)) {
		end += 1 + len(name)
		cur := p[:end]
		child := n.children[name]
		if child == nil || child.Type != TypeDir {
			if child != nil && l.touched[cur] {
				return nil, fmt.Errorf("its parent %q is not a directory", cur)
			}
			if strings.HasPrefix(name, whiteoutPrefix) {
				return nil, &fs.PathError{Op: "mkdir", Path: cur, Err: errWhiteoutName}
			}
			// Parents the tarball does not list are implied, as tar extraction
			// implies them.
			d := &Node{Type: TypeDir, Mode: 0o755, Stamped: true, children: map[string]*Node{}}
			stamped := n.Stamped
			l.fsys.attach(n, cur, d, child)
			n.Stamped = stamped
			child = d
		}
		n = child
	}
	return n, nil
}

// whiteout applies the whiteout entry at p to the lower layers.
func (l *tarApplier) whiteout(p string) error {
	dir, base := path.Dir(p), path.Base(p)
	parent := l.fsys.Get(dir)
	if parent != nil && parent.Type != TypeDir {
		parent = nil // nothing below a non-directory to hide
	}
	if base == opaqueWhiteout {
		if parent != nil {
			l.clearLower(dir, parent)
		}
		return nil
	}
	name := strings.TrimPrefix(base, whiteoutPrefix)
	switch {
	case name == "" || name == "." || name == "..":
		return errors.New("a whiteout that names no entry")
	case strings.HasPrefix(name, whiteoutPrefix):
		return nil // aufs metadata, which Docker skips
	}
	target := path.Join(dir, name)
	if l.touched[target] {
		return fmt.Errorf("a whiteout for %q, which the layer also writes", target)
	}
	l.hidden.add(target)
	l.nHidden++
	if parent == nil || parent.children[name] == nil {
		return nil // nothing to hide: tolerated, as every store tolerates it
	}
	stamped := parent.Stamped
	err := l.fsys.Remove(target)
	parent.Stamped = stamped
	return err
}

// clearLower removes from the directory d, at p, what the lower layers put there and
// the current layer did not write. A directory the layer only implies (an ancestor
// of one of its entries) loses its lower metadata and contents too.
func (l *tarApplier) clearLower(p string, d *Node) {
	for _, name := range sortedNames(d) {
		cp := path.Join(p, name)
		child := d.children[name]
		switch {
		case !l.touched[cp]:
			stamped := d.Stamped
			_ = l.fsys.Remove(cp) // it exists: it was just listed
			d.Stamped = stamped
		case child.Type == TypeDir:
			if !l.seen[cp] {
				child.Mode, child.UID, child.GID, child.Stamped = 0o755, 0, 0, true
			}
			l.clearLower(cp, child)
		}
	}
}

// escapes reports whether a relative symlink at p climbs above the root.
func escapes(p, target string) bool {
	if strings.HasPrefix(target, "/") {
		return false
	}
	depth := strings.Count(path.Dir(p), "/")
	if path.Dir(p) == "/" {
		depth = 0
	}
	for _, c := range strings.Split(target, "/") {
		switch c {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return true
			}
		default:
			depth++
		}
	}
	return false
}

func sectionOpener(file string, off, size int64) Opener {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(file)
		if err != nil {
			return nil, err
		}
		return &sectionFile{SectionReader: io.NewSectionReader(f, off, size), f: f}, nil
	}
}

type sectionFile struct {
	*io.SectionReader
	f *os.File
}

func (s *sectionFile) Close() error { return s.f.Close() }

// CountingReader counts the bytes read through it, so a tar reader's position, and
// with it each body's offset, is known. It deliberately has no Seek: the bytes a
// reader skips must still pass through (and be hashed).
type CountingReader struct {
	R io.Reader
	N int64 // bytes read so far
}

func (c *CountingReader) Read(b []byte) (int, error) {
	n, err := c.R.Read(b)
	c.N += int64(n)
	return n, err
}
