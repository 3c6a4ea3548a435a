package interp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
)

// rootFS reads a context directory through an os.Root, so that no path it is asked
// for, however its components were swapped for symlinks since the build planned
// its copies, can reach a file outside the directory (issue 11, fault 1: os.DirFS
// followed a directory replaced mid-build by a link to /etc). It never opens a
// file that is not a regular file or a directory: a FIFO, device or socket is
// refused before anything would wait on it (fault 6).
type rootFS struct {
	root *os.Root
}

var (
	_ fs.ReadLinkFS = (*rootFS)(nil)
	_ fs.ReadDirFS  = (*rootFS)(nil)
)

// openRootFS opens dir as a context; Close releases it.
func openRootFS(dir string) (*rootFS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("opening the context %q: %w", dir, err)
	}
	return &rootFS{root: r}, nil
}

func (r *rootFS) Close() error { return r.root.Close() }

// osName checks an io/fs path for the root: "." or names joined by "/", none of
// them empty, "." or "..". Unlike fs.ValidPath it takes names that are not UTF-8,
// which Linux allows and docker build copies (issue 11).
func osName(op, name string) (string, error) {
	if name == "." {
		return name, nil
	}
	for elem := range strings.SplitSeq(name, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
		}
	}
	return name, nil
}

// Open opens a regular file or a directory. Anything else is refused after an
// open that cannot block (O_NONBLOCK where the OS has it) and an fstat of what was
// opened, so there is no window between a check and the open.
func (r *rootFS) Open(name string) (fs.File, error) {
	f, err := r.openAny(name)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() && !fi.IsDir() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: notRegular(fi.Mode())}
	}
	return f, nil
}

// openAny opens whatever is at name without waiting: the caller checks what it got.
func (r *rootFS) openAny(name string) (*os.File, error) {
	n, err := osName("open", name)
	if err != nil {
		return nil, err
	}
	return r.root.OpenFile(n, os.O_RDONLY|openNoBlock, 0)
}

// openRegularFile opens the regular file at the OS path name for reading, and
// refuses anything else without waiting on it: a FIFO named .dockerignore must not
// hold the build forever (issue 11, fault 6).
func openRegularFile(name string) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|openNoBlock, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: notRegular(fi.Mode())}
	}
	return f, nil
}

// notRegular is the error for a file that is something other than a regular file
// or a directory.
func notRegular(m fs.FileMode) error {
	return fmt.Errorf("it is a %s, not a regular file: dfbuild does not read the contents of one", fileKind(m))
}

func fileKind(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}

func (r *rootFS) Lstat(name string) (fs.FileInfo, error) {
	n, err := osName("lstat", name)
	if err != nil {
		return nil, err
	}
	return r.root.Lstat(n)
}

func (r *rootFS) ReadLink(name string) (string, error) {
	n, err := osName("readlink", name)
	if err != nil {
		return "", err
	}
	return r.root.Readlink(n)
}

// ReadDir lists a directory in name order, as fs.ReadDir does.
func (r *rootFS) ReadDir(name string) ([]fs.DirEntry, error) {
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	d, ok := f.(fs.ReadDirFile)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	entries, err := d.ReadDir(-1)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

// openPlanned opens the regular file at p of fsys for a layer and checks that it is
// the file the build planned from: the same kind, size and mtime, and where the
// OS says so, the same device and inode. Anything else was changed during the
// build, which is an error naming the file, as GNU tar reports "file changed as we
// read it", rather than a layer with contents nobody planned. The check is one
// fstat of the open file.
func openPlanned(fsys fs.FS, p string, planned fs.FileInfo) (io.ReadCloser, error) {
	var f fs.File
	var err error
	if r, ok := fsys.(*rootFS); ok {
		// Whatever is there now is opened, without waiting, so that a FIFO put in
		// the file's place is reported as the change it is.
		f, err = r.openAny(p)
	} else {
		f, err = fsys.Open(p)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %q from the build context: %w", p, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("reading %q from the build context: %w", p, err)
	}
	if why := changed(planned, fi); why != "" {
		f.Close()
		return nil, fmt.Errorf("%q in the build context changed during the build (%s); nothing was written from it", p, why)
	}
	return f, nil
}

// changed says how the file opened differs from the one planned, or "".
func changed(planned, opened fs.FileInfo) string {
	switch {
	case !opened.Mode().IsRegular():
		return "it is now a " + fileKind(opened.Mode())
	case opened.Size() != planned.Size():
		return fmt.Sprintf("its size went from %d to %d bytes", planned.Size(), opened.Size())
	case !opened.ModTime().Equal(planned.ModTime()):
		return "its modification time changed"
	}
	a, okA := statIdentity(planned)
	b, okB := statIdentity(opened)
	if okA && okB && a != b {
		return "it is another file now"
	}
	return ""
}

// ctxReader stops a long read (an archive ADD extracts, a decompression) once the
// build is interrupted: SIGINT must end every phase promptly (issue 11, fault 6).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
