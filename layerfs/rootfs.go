package layerfs

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
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
// the build ends. File bodies stay on disk: the tree refers to them by offset.
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
	br := bufio.NewReaderSize(f, 1<<20)
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
		spoolBuf = bufio.NewWriterSize(spool, 1<<20)
		src = io.TeeReader(dr, spoolBuf)
	}

	h := sha256.New()
	pr := &CountingReader{R: io.TeeReader(src, h)}
	fsys := New()
	l := &rootfsLoader{fsys: fsys, backing: backing, seen: map[string]bool{}}
	tr := tar.NewReader(pr)
	prev := "" // the last entry read, to place an error in a damaged tarball
	for i := 0; ; i++ {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if i == 0 {
				return nil, errors.New("not a tar archive: no entries")
			}
			break
		}
		if err != nil {
			if i == 0 {
				return nil, fmt.Errorf("not a tar archive: %w", err)
			}
			return nil, fmt.Errorf("reading entry %d, after %q: %w", i+1, prev, err)
		}
		if err := l.add(hdr, pr.N); err != nil {
			return nil, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
		prev = hdr.Name
	}
	// The layer is the whole stream, trailing padding included.
	if _, err := io.Copy(io.Discard, pr); err != nil {
		return nil, fmt.Errorf("reading to the end: %w", err)
	}
	if spoolBuf != nil {
		if err := spoolBuf.Flush(); err != nil {
			return nil, fmt.Errorf("spooling the decompressed tarball: %w", err)
		}
		if err := spool.Close(); err != nil {
			return nil, fmt.Errorf("spooling the decompressed tarball: %w", err)
		}
	}
	fsys.changed, fsys.created, fsys.removed = map[string]struct{}{}, map[string]struct{}{}, map[string]Type{}
	diffID := Digest("sha256:" + hex.EncodeToString(h.Sum(nil)))
	size := pr.N
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

type rootfsLoader struct {
	fsys    *FS
	backing string
	seen    map[string]bool
}

// cleanName checks an entry or hard link name and returns it as an absolute path.
func cleanName(name string) (string, error) {
	if strings.HasPrefix(name, "/") {
		return "", errors.New("absolute path: a rootfs tarball must use relative names")
	}
	for _, c := range strings.Split(name, "/") {
		if c == ".." {
			return "", errors.New(`".." in the path would leave the root`)
		}
	}
	return Clean(name), nil
}

func (l *rootfsLoader) add(hdr *tar.Header, offset int64) error {
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
	p, err := cleanName(hdr.Name)
	if err != nil {
		return err
	}
	if strings.HasPrefix(path.Base(p), whiteoutPrefix) {
		return errors.New("whiteout entries do not belong in a root filesystem")
	}
	if l.seen[p] {
		return errors.New("duplicate path: the tarball names it twice")
	}
	l.seen[p] = true

	n := &Node{
		Mode:    uint32(hdr.Mode) & 0o7777,
		UID:     hdr.Uid,
		GID:     hdr.Gid,
		ModTime: hdr.ModTime,
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		n.Type = TypeDir
	case tar.TypeReg, tar.TypeRegA:
		n.Type, n.Size = TypeReg, hdr.Size
		n.Content = sectionOpener(l.backing, offset, hdr.Size)
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return fmt.Errorf("hard link to %q: %w", hdr.Linkname, err)
		}
		t := l.fsys.Get(target)
		if t == nil || t.Type != TypeReg {
			return fmt.Errorf("hard link to %q, which is not a file earlier in the tarball", hdr.Linkname)
		}
		// Both names share one group: read the same bytes, and a layer holding both
		// writes the second as a link.
		if t.HardLink == 0 {
			t.HardLink = l.fsys.NewLinkGroup()
		}
		n.Type, n.Size, n.Content, n.HardLink = TypeReg, t.Size, t.Content, t.HardLink
	case tar.TypeSymlink:
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
		return l.fsys.Put(p, n)
	}
	// Parents the tarball does not list are implied, as tar extraction implies them.
	dir := path.Dir(p)
	parent := l.fsys.Get(dir)
	if parent == nil {
		if _, err := l.fsys.MkdirAll(dir, Node{Mode: 0o755, Stamped: true}); err != nil {
			return err
		}
		parent = l.fsys.Get(dir)
	}
	if parent == nil || parent.Type != TypeDir {
		return fmt.Errorf("its parent %q is not a directory", dir)
	}
	return l.fsys.Put(p, n)
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
