package layerfs

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"time"
)

// IOFS returns a read-only io/fs view of the tree. It implements fs.StatFS,
// fs.ReadDirFS and fs.ReadLinkFS; FileInfo.Sys returns a *Node (a copy, without
// children), so callers can read owners and device numbers. Open follows symlinks
// inside the tree; Lstat and ReadLink do not follow the last one.
func (f *FS) IOFS() fs.FS { return ioFS{f} }

type ioFS struct{ f *FS }

var (
	_ fs.StatFS     = ioFS{}
	_ fs.ReadDirFS  = ioFS{}
	_ fs.ReadLinkFS = ioFS{}
)

func (v ioFS) lookup(op, name string, follow bool) (*Node, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	var n *Node
	var err error
	if follow {
		n, _, err = v.f.Stat(name)
	} else {
		n, _, err = v.f.Lstat(name)
	}
	if err != nil {
		// Keep the cause (ErrNotExist, or ELOOP for a symlink loop) but report the
		// name the caller gave.
		cause := error(fs.ErrNotExist)
		var pe *fs.PathError
		if errors.As(err, &pe) {
			cause = pe.Err
		}
		return nil, &fs.PathError{Op: op, Path: name, Err: cause}
	}
	return n, nil
}

func (v ioFS) Open(name string) (fs.File, error) {
	n, err := v.lookup("open", name, true)
	if err != nil {
		return nil, err
	}
	fi := fileInfo{name: path.Base(name), n: n.header()}
	if name == "." {
		fi.name = "."
	}
	switch n.Type {
	case TypeDir:
		return &openDir{fi: fi, entries: dirEntries(n)}, nil
	case TypeReg:
		var rc io.ReadCloser = io.NopCloser(eofReader{})
		if n.Content != nil && n.Size > 0 {
			if rc, err = n.Content(); err != nil {
				return nil, &fs.PathError{Op: "open", Path: name, Err: err}
			}
		}
		return &openFile{fi: fi, rc: rc}, nil
	}
	return &openFile{fi: fi, rc: io.NopCloser(eofReader{})}, nil
}

func (v ioFS) Stat(name string) (fs.FileInfo, error) {
	n, err := v.lookup("stat", name, true)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), n: n.header()}, nil
}

func (v ioFS) Lstat(name string) (fs.FileInfo, error) {
	n, err := v.lookup("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return fileInfo{name: path.Base(name), n: n.header()}, nil
}

func (v ioFS) ReadLink(name string) (string, error) {
	n, err := v.lookup("readlink", name, false)
	if err != nil {
		return "", err
	}
	if n.Type != TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: fs.ErrInvalid}
	}
	return n.Target, nil
}

func (v ioFS) ReadDir(name string) ([]fs.DirEntry, error) {
	n, err := v.lookup("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if n.Type != TypeDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	return dirEntries(n), nil
}

func dirEntries(n *Node) []fs.DirEntry {
	names := sortedNames(n)
	out := make([]fs.DirEntry, len(names))
	for i, name := range names {
		out[i] = fs.FileInfoToDirEntry(fileInfo{name: name, n: n.children[name].header()})
	}
	return out
}

type fileInfo struct {
	name string
	n    Node
}

func (fi fileInfo) Name() string { return fi.name }
func (fi fileInfo) Size() int64  { return fi.n.Size }
func (fi fileInfo) Mode() fs.FileMode {
	m := fs.FileMode(fi.n.Mode & 0o777)
	if fi.n.Mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if fi.n.Mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if fi.n.Mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	switch fi.n.Type {
	case TypeDir:
		m |= fs.ModeDir
	case TypeSymlink:
		m |= fs.ModeSymlink
	case TypeChar:
		m |= fs.ModeDevice | fs.ModeCharDevice
	case TypeBlock:
		m |= fs.ModeDevice
	case TypeFIFO:
		m |= fs.ModeNamedPipe
	}
	return m
}
func (fi fileInfo) ModTime() time.Time { return fi.n.ModTime }
func (fi fileInfo) IsDir() bool        { return fi.n.Type == TypeDir }
func (fi fileInfo) Sys() any           { n := fi.n; return &n }

type openFile struct {
	fi fileInfo
	rc io.ReadCloser
}

func (o *openFile) Stat() (fs.FileInfo, error) { return o.fi, nil }
func (o *openFile) Read(b []byte) (int, error) { return o.rc.Read(b) }
func (o *openFile) Close() error               { return o.rc.Close() }

type openDir struct {
	fi      fileInfo
	entries []fs.DirEntry
	off     int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.fi, nil }
func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.fi.name, Err: fs.ErrInvalid}
}
func (d *openDir) Close() error { return nil }
func (d *openDir) ReadDir(count int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if count <= 0 {
		d.off = len(d.entries)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if count > len(rest) {
		count = len(rest)
	}
	d.off += count
	return rest[:count], nil
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }
