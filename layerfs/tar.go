package layerfs

import (
	"archive/tar"
	"fmt"
	"io"
	"strings"
	"time"
)

// TarOptions decide the times written into a layer.
type TarOptions struct {
	// BuildTime is the mtime of entries the build itself created or changed
	// (Node.Stamped): new parent directories, directories whose contents changed.
	BuildTime time.Time
	// Clamp, when set (SOURCE_DATE_EPOCH), is the latest mtime any entry may have;
	// later ones are lowered to it.
	Clamp *time.Time
}

func (o TarOptions) mtime(n *Node) time.Time {
	t := n.ModTime
	if n.Stamped {
		t = o.BuildTime
	}
	if o.Clamp != nil && t.After(*o.Clamp) {
		t = *o.Clamp
	}
	return t.Truncate(time.Second)
}

// Header returns the tar header for an entry, the way containerd's and moby's layer
// writers shape it: relative name, directories ending in "/", numeric ids with empty
// names, whole-second mtime, no access or change time, and the security.capability
// xattr as a PAX record when the entry has one.
func (e *Entry) Header(opts TarOptions) *tar.Header {
	n := &e.Node
	name := strings.TrimPrefix(e.Path, "/")
	h := &tar.Header{
		Name:   name,
		Mode:   int64(n.Mode & 0o7777),
		Uid:    n.UID,
		Gid:    n.GID,
		Format: tar.FormatPAX,
	}
	if e.Whiteout {
		h.Typeflag, h.Mode, h.ModTime = tar.TypeReg, 0, time.Unix(0, 0)
		return h
	}
	h.ModTime = opts.mtime(n)
	switch n.Type {
	case TypeDir:
		h.Typeflag, h.Name = tar.TypeDir, name+"/"
	case TypeReg:
		h.Typeflag, h.Size = tar.TypeReg, n.Size
	case TypeSymlink:
		h.Typeflag, h.Linkname = tar.TypeSymlink, n.Target
	case TypeChar, TypeBlock:
		h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, n.Major, n.Minor
		if n.Type == TypeBlock {
			h.Typeflag = tar.TypeBlock
		}
	case TypeFIFO:
		h.Typeflag = tar.TypeFifo
	}
	if n.Capability != "" {
		// containerd's and moby's writers add this record to any entry that has
		// the xattr, hard links included; no other xattr reaches a layer.
		h.PAXRecords = map[string]string{PAXCapability: n.Capability}
	}
	return h
}

// Layer turns the changes into a layer whose size is computed now and whose bytes are
// produced, file bodies streamed from their openers, each time it is written. The
// headers are made again for each pass rather than kept: a layer of many small files
// would otherwise hold one per file for as long as the image lives.
func (c *Changes) Layer(opts TarOptions) (*Layer, error) {
	size := int64(2 * blockSize) // the end-of-archive marker
	err := c.headers(opts, func(_ *Entry, h *tar.Header) error {
		n, err := headerLen(h)
		size += n + padded(h.Size)
		return err
	})
	if err != nil {
		return nil, err
	}
	l := NewLayer(size, "", nil)
	l.write = func(w io.Writer) error {
		tw := tar.NewWriter(w)
		var largest int64
		for i := range c.Entries {
			largest = max(largest, c.Entries[i].Node.Size)
		}
		buf := make([]byte, BufferSize(largest))
		err := c.headers(opts, func(e *Entry, h *tar.Header) error {
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
			if h.Typeflag != tar.TypeDir && l.onEntry != nil {
				l.onEntry()
			}
			if h.Typeflag == tar.TypeReg && h.Size > 0 {
				return copyBody(tw, e, buf)
			}
			return nil
		})
		if err != nil {
			return err
		}
		return tw.Close()
	}
	return l, nil
}

// headers calls fn with each entry and its tar header, in order. Within a hard-link
// group the first file in that order is written whole and the later ones as links to it.
func (c *Changes) headers(opts TarOptions, fn func(*Entry, *tar.Header) error) error {
	firstOfLink := map[uint64]*tar.Header{}
	for i := range c.Entries {
		e := &c.Entries[i]
		h := e.Header(opts)
		if id := e.Node.HardLink; id != 0 && h.Typeflag == tar.TypeReg {
			if first, ok := firstOfLink[id]; !ok {
				firstOfLink[id] = h
			} else if sameInode(first, h) {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first.Name, 0
			}
			// A member whose metadata differs is written as a file of its own:
			// unpackers disagree on whose metadata a link entry would keep.
		}
		if err := fn(e, h); err != nil {
			return fmt.Errorf("writing %q: %w", e.Path, err)
		}
	}
	return nil
}

// copyBody streams a file's contents and makes sure they still have the size the
// header promised: a file that changed while the build ran is an error, not a
// corrupt layer.
func copyBody(w io.Writer, e *Entry, buf []byte) error {
	if e.Node.Content == nil {
		return fmt.Errorf("reading %q: no contents recorded", e.Path)
	}
	rc, err := e.Node.Content()
	if err != nil {
		return fmt.Errorf("reading %q: %w", e.Path, err)
	}
	defer rc.Close()
	n, err := io.CopyBuffer(w, io.LimitReader(rc, e.Node.Size), buf)
	if err != nil {
		return fmt.Errorf("reading %q: %w", e.Path, err)
	}
	if n < e.Node.Size {
		return fmt.Errorf("reading %q: file shrank to %d bytes while the build ran (expected %d)", e.Path, n, e.Node.Size)
	}
	// A reader may return 0 bytes without an error; ReadAtLeast keeps asking.
	var one [1]byte
	if m, _ := io.ReadAtLeast(rc, one[:], 1); m > 0 {
		return fmt.Errorf("reading %q: file grew while the build ran (expected %d bytes)", e.Path, e.Node.Size)
	}
	return nil
}

// sameInode reports whether two headers describe what one inode would: a hard link
// can only carry metadata identical to its first name's.
func sameInode(a, b *tar.Header) bool {
	return a.Mode == b.Mode && a.Uid == b.Uid && a.Gid == b.Gid && a.Size == b.Size && a.ModTime.Equal(b.ModTime) &&
		a.PAXRecords[PAXCapability] == b.PAXRecords[PAXCapability]
}

const blockSize = 512

func padded(n int64) int64 { return (n + blockSize - 1) / blockSize * blockSize }

// headerLen is the number of bytes archive/tar writes for h before the body:
// the header block plus any PAX extended header (records such as the path, a
// sub-second time or security.capability), found by writing h to a counter.
func headerLen(h *tar.Header) (int64, error) {
	var cw countingWriter
	cw.w, cw.h = io.Discard, io.Discard
	if err := tar.NewWriter(&cw).WriteHeader(h); err != nil {
		return 0, err
	}
	return cw.n, nil
}
