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
	"sync"
)

// rootFS reads a context directory through an os.Root, so that no path it is asked
// for, however its components were swapped for symlinks since the build planned
// its copies, can reach a file outside the directory (issue 11, fault 1: os.DirFS
// followed a directory replaced mid-build by a link to /etc). It never opens a
// file that is not a regular file or a directory: a FIFO, device or socket is
// refused before anything would wait on it (fault 6).
type rootFS struct {
	root *os.Root
	// dirs holds roots opened on directories below root, by their path, so that
	// an operation on "a/b/c/f" is one system call on the handle of "a/b/c" rather
	// than one per component, as os.Root does it from the top: walking a context
	// 1,500 directories deep would otherwise cost time growing with depth squared.
	// A handle keeps reading the directory it was opened on, which was inside the
	// context when it was opened; the identity check of openPlanned catches a
	// file that is no longer the one planned.
	mu   sync.Mutex
	dirs map[string]*os.Root
}

// maxDirHandles bounds the directory handles rootFS keeps open. A depth-first walk
// needs few at a time; when the bound is reached they are all closed and reopened
// as needed.
const maxDirHandles = 64

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
	return &rootFS{root: r, dirs: map[string]*os.Root{}}, nil
}

// Close releases the context's handles; files already open stay readable.
func (r *rootFS) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.dropDirs()
	return r.root.Close()
}

func (r *rootFS) dropDirs() {
	for _, d := range r.dirs {
		d.Close()
	}
	clear(r.dirs)
}

// dir returns the root of the directory at the context path p; r.mu is held.
func (r *rootFS) dir(p string) (*os.Root, error) {
	if p == "." {
		return r.root, nil
	}
	if d, ok := r.dirs[p]; ok {
		return d, nil
	}
	parent, base := ".", p
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		parent, base = p[:i], p[i+1:]
	}
	pd, err := r.dir(parent)
	if err != nil {
		return nil, err
	}
	d, err := pd.OpenRoot(base)
	if err != nil {
		return nil, err
	}
	if len(r.dirs) >= maxDirHandles {
		// The parent chain is dropped too, but pd stays usable until then: only
		// d is used from here on.
		r.dropDirs()
	}
	r.dirs[p] = d
	return d, nil
}

// at runs op on the directory holding the context path name and name's last
// component, after checking name. Errors name the whole path.
func (r *rootFS) at(opName, name string, op func(d *os.Root, base string) error) error {
	if _, err := osName(opName, name); err != nil {
		return err
	}
	parent, base := ".", name
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		parent, base = name[:i], name[i+1:]
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	d, err := r.dir(parent)
	if err == nil {
		err = op(d, base)
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return &fs.PathError{Op: opName, Path: name, Err: pe.Err}
	}
	return err
}

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
	var f *os.File
	err := r.at("open", name, func(d *os.Root, base string) (err error) {
		f, err = d.OpenFile(base, os.O_RDONLY|openNoBlock, 0)
		return err
	})
	return f, err
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
	var fi fs.FileInfo
	err := r.at("lstat", name, func(d *os.Root, base string) (err error) {
		fi, err = d.Lstat(base)
		return err
	})
	return fi, err
}

func (r *rootFS) ReadLink(name string) (string, error) {
	var target string
	err := r.at("readlink", name, func(d *os.Root, base string) (err error) {
		target, err = d.Readlink(base)
		return err
	})
	return target, err
}

// Capability reads the security.capability xattr of the regular file name from the
// file itself, opened through the root (capabilityFS).
func (r *rootFS) Capability(name string) (string, error) {
	f, err := r.openAny(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	c, ok, err := fileCapability(f)
	if !ok && err == nil {
		// No /proc: read it by path below the root's directory, as before.
		return getCapability(r.root.Name() + "/" + name)
	}
	return c, err
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
