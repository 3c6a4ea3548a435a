package interp

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"
	"syscall"

	"github.com/dfbuild/dfbuild/layerfs"
)

// sourceTree is where COPY and ADD read their sources from: the build context
// (contextSource) or the filesystem of an earlier stage or image (imageSource). Paths
// are in io/fs form ("." is the root) and never leave the tree: symlinks are resolved
// inside its root.
type sourceTree interface {
	// resolve returns the real path of p, following symlinks on the way, and the
	// last one too if followLast; missing components are kept.
	resolve(p string, followLast bool) (string, error)
	// lstat describes the entry at the real path p without following it.
	lstat(p string) (fs.FileInfo, error)
	// readDir lists the directory at the real path p in name order.
	readDir(p string) ([]fs.DirEntry, error)
	// node turns the entry at the real path p, described by fi, into a tree node
	// that refers to its contents rather than holding them.
	node(p string, fi fs.FileInfo) (*layerfs.Node, error)
	// linkID identifies a regular file that has other hard links in the tree.
	linkID(fi fs.FileInfo) (fileID, bool)
	// excluded says why p is missing when the tree hides it on purpose, or "".
	excluded(p string) string
	// where names the tree in messages: "the build context".
	where() string
}

var (
	_ sourceTree = contextSource{}
	_ sourceTree = imageSource{}
)

// contextSource reads the build context. Every path is resolved inside the context
// root, symlinks included, so nothing outside it is ever read. Paths the build must
// not see (its own output, what .dockerignore excludes) are missing from every read:
// lstat, readDir and so resolve, and through them COPY sources, wildcards, directory
// walks, symlinks and FROM tarballs.
type contextSource struct {
	fsys fs.ReadLinkFS
	// hidden names context paths the build must not see, such as its own output
	// file when it is written inside the context; hiddenPrefix hides the temporary
	// files written next to it.
	hidden       map[string]bool
	hiddenPrefix string
	ignore       *ignoreFilter // nil without a .dockerignore
	// osDir is the directory behind fsys when Build made it with os.DirFS: xattrs
	// are read from the OS there. "" otherwise.
	osDir string
}

// capabilityFS is a context filesystem that serves its files' security.capability
// xattr itself: Capability returns "" for a file without one. A context that is
// neither this nor os.DirFS has no xattrs.
type capabilityFS interface {
	Capability(name string) (string, error)
}

// capability returns the security.capability xattr of the regular file at the real
// path p, "" when it has none (BuildKit's context transfer sends the file's xattrs;
// its layer writer, containerd's archive.ChangeWriter, keeps only that one).
func (s contextSource) capability(p string) (string, error) {
	if c, ok := s.fsys.(capabilityFS); ok {
		return c.Capability(p)
	}
	if s.osDir == "" {
		return "", nil
	}
	// os.DirFS names its files this way.
	return getCapability(s.osDir + "/" + p)
}

func (s contextSource) isHidden(p string) bool {
	return s.hidden[p] || (s.hiddenPrefix != "" && strings.HasPrefix(p, s.hiddenPrefix))
}

// filters tells whether any path is kept out at all.
func (s contextSource) filters() bool {
	return len(s.hidden) > 0 || s.hiddenPrefix != "" || s.ignore != nil
}

// visible tells whether the build sees the context path p (io/fs form). The root
// is always there. An excluded directory is there, with its own metadata, when
// something under it is kept, as BuildKit's context transfer (fsutil's filter.go)
// sends the parents of what it keeps.
func (s contextSource) visible(p string) bool {
	if p == "." {
		return true
	}
	if s.isHidden(p) {
		return false
	}
	f := s.ignore
	if f == nil {
		return true
	}
	st := f.state(p)
	switch {
	case st.unseen:
		return false
	case !st.excluded:
		return true
	case st.pruned:
		return false
	}
	if kept, ok := f.kept[p]; ok {
		return kept
	}
	kept := false
	// The walk never follows symlinks, so only a real directory can hold kept paths.
	if fi, err := s.fsys.Lstat(p); err == nil && fi.IsDir() {
		entries, _ := fs.ReadDir(s.fsys, p)
		for _, e := range entries {
			if s.visible(path.Join(p, e.Name())) {
				kept = true
				break
			}
		}
	}
	f.kept[p] = kept
	return kept
}

// lstat is fs.ReadLinkFS's Lstat, minus the paths the build must not see.
func (s contextSource) lstat(p string) (fs.FileInfo, error) {
	if !s.visible(p) {
		return nil, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return s.fsys.Lstat(p)
}

// readDir lists a directory in name order, minus the paths the build must not see.
func (s contextSource) readDir(p string) ([]fs.DirEntry, error) {
	if !s.filters() {
		return fs.ReadDir(s.fsys, p)
	}
	if !s.visible(p) {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: fs.ErrNotExist}
	}
	entries, err := fs.ReadDir(s.fsys, p)
	if err != nil {
		return entries, err
	}
	out := entries[:0]
	for _, e := range entries {
		if s.visible(path.Join(p, e.Name())) {
			out = append(out, e)
		}
	}
	return out, nil
}

// newContextSource reads the context through fsys; osDir, when not empty, is the
// directory fsys serves, where xattrs are read by path.
func newContextSource(fsys fs.ReadLinkFS, osDir string, hide []string, ignore *IgnoreFile) (contextSource, error) {
	s := contextSource{fsys: fsys, osDir: osDir, hidden: map[string]bool{}}
	for _, h := range hide {
		h = strings.TrimPrefix(path.Clean("/"+h), "/")
		s.hidden[h] = true
		dir, base := path.Split(h)
		s.hiddenPrefix = dir + "." + base + ".tmp-"
	}
	f, err := newIgnoreFilter(ignore)
	if err != nil {
		return contextSource{}, err
	}
	s.ignore = f
	return s, nil
}

// excluded explains why the context path p is missing when .dockerignore is the
// reason: the pattern that excludes p, a parent of p, or the path a symlink on the
// way leads to. It returns "" when p is simply not there.
func (s contextSource) excluded(p string) string {
	if s.ignore == nil {
		return ""
	}
	real, err := s.resolve(p, true)
	if err != nil {
		return ""
	}
	// The first component that exists but cannot be seen is the excluded one.
	names := strings.Split(real, "/")
	for i := range names {
		q := strings.Join(names[:i+1], "/")
		if _, err := s.fsys.Lstat(q); err != nil {
			return ""
		}
		if s.visible(q) {
			continue
		}
		if s.isHidden(q) {
			return ""
		}
		why := s.ignore.explain(q)
		if why != "" && q != p && !strings.HasPrefix(p, q+"/") {
			why = fmt.Sprintf("it leads to %q, %s", q, why)
		}
		return why
	}
	return ""
}

// resolve returns the real path of p inside the context, in io/fs form ("." for the
// root): symlinks are followed inside the root (absolute targets restart at the root,
// ".." stops there), the last one only if followLast. Missing components are kept.
func (s contextSource) resolve(p string, followLast bool) (string, error) {
	todo := strings.Split(strings.TrimPrefix(path.Clean("/"+p), "/"), "/")
	var names []string
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(names) > 0 {
				names = names[:len(names)-1]
			}
			continue
		}
		cur := strings.Join(append(names, name), "/")
		if len(todo) > 0 || followLast {
			fi, err := s.lstat(cur)
			if err == nil && fi.Mode()&fs.ModeSymlink != 0 {
				links++
				if links > 255 {
					return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
				}
				target, err := s.fsys.ReadLink(cur)
				if err != nil {
					return "", err
				}
				if strings.HasPrefix(target, "/") {
					names = nil
				}
				todo = append(strings.Split(target, "/"), todo...)
				continue
			}
		}
		names = append(names, name)
	}
	if len(names) == 0 {
		return ".", nil
	}
	return strings.Join(names, "/"), nil
}

func (s contextSource) where() string { return "the build context" }

func (s contextSource) linkID(fi fs.FileInfo) (fileID, bool) { return linkedID(fi) }

// opener returns an Opener that reads the context file at the real path p, which
// must still be the file fi describes when the layer is written (openPlanned).
func (s contextSource) opener(p string, fi fs.FileInfo) layerfs.Opener {
	return func() (io.ReadCloser, error) { return openPlanned(s.fsys, p, fi) }
}

// node turns a context entry into a tree node: mode, mtime, contents and, for a
// regular file, the security.capability xattr come from the file, the owner is root
// (BuildKit resets the ids of every context file to 0).
// ok is false for entries a layer cannot hold.
func (s contextSource) node(p string, fi fs.FileInfo) (*layerfs.Node, error) {
	m := fi.Mode()
	n := &layerfs.Node{Mode: unixMode(m), ModTime: fi.ModTime()}
	switch {
	case m.IsDir():
		n.Type = layerfs.TypeDir
	case m.IsRegular():
		n.Type, n.Size, n.Content = layerfs.TypeReg, fi.Size(), s.opener(p, fi)
		c, err := s.capability(p)
		if err != nil {
			return nil, fmt.Errorf("reading the security.capability xattr: %w", err)
		}
		n.Capability = c
	case m&fs.ModeSymlink != 0:
		target, err := s.fsys.ReadLink(p)
		if err != nil {
			return nil, err
		}
		n.Type, n.Target = layerfs.TypeSymlink, target
	case m&fs.ModeNamedPipe != 0:
		n.Type = layerfs.TypeFIFO
	case m&fs.ModeSocket != 0:
		// BuildKit copies a socket as an empty regular file.
		n.Type = layerfs.TypeReg
	case m&fs.ModeDevice != 0:
		major, minor, ok := deviceNumbers(fi)
		if !ok {
			return nil, errors.New("device without device numbers")
		}
		n.Type, n.Major, n.Minor = layerfs.TypeBlock, major, minor
		if m&fs.ModeCharDevice != 0 {
			n.Type = layerfs.TypeChar
		}
	default:
		return nil, errors.New("unsupported file type " + m.Type().String())
	}
	return n, nil
}

// unixMode converts an fs.FileMode into tar's permission and special bits.
func unixMode(m fs.FileMode) uint32 {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return u
}

// fileID identifies a file with several hard links in its tree: a device and inode
// in the build context, a link group in an image (dev imageDev).
type fileID struct{ dev, ino uint64 }

// imageDev is the device of every fileID taken from a layerfs tree; no real device
// has this number.
const imageDev = ^uint64(0)

// imageSource reads the filesystem of an earlier stage or an image (COPY --from),
// as it is when the COPY runs. Unlike the build context, its entries keep their
// owners, and nothing is hidden: .dockerignore applies to the context only.
type imageSource struct {
	fs   *layerfs.FS
	view fs.ReadLinkFS // fs.IOFS()
	name string        // for messages, such as `the --from source "build"`
}

func newImageSource(f *layerfs.FS, name string) imageSource {
	return imageSource{fs: f, view: f.IOFS().(fs.ReadLinkFS), name: name}
}

func (s imageSource) where() string { return s.name }

func (s imageSource) resolve(p string, followLast bool) (string, error) {
	real, err := s.fs.Resolve(p, followLast)
	if err != nil {
		return "", err
	}
	if real == "/" {
		return ".", nil
	}
	return real[1:], nil
}

func (s imageSource) lstat(p string) (fs.FileInfo, error) { return s.view.Lstat(p) }

func (s imageSource) readDir(p string) ([]fs.DirEntry, error) {
	return fs.ReadDir(s.view, p)
}

// node copies the tree's own node: its owner, mode, time and contents opener come
// along, so the body is read from where the image got it, once, when the layer is
// written. Its hard-link group belongs to the source tree and is dropped here; the
// copy gives the new tree groups of its own (linkID).
func (s imageSource) node(p string, fi fs.FileInfo) (*layerfs.Node, error) {
	n, ok := fi.Sys().(*layerfs.Node)
	if !ok {
		return nil, fmt.Errorf("%s: no tree node behind the file info", p)
	}
	c := *n
	c.HardLink = 0
	return &c, nil
}

func (s imageSource) linkID(fi fs.FileInfo) (fileID, bool) {
	n, ok := fi.Sys().(*layerfs.Node)
	if !ok || n.HardLink == 0 || n.Type != layerfs.TypeReg {
		return fileID{}, false
	}
	return fileID{imageDev, n.HardLink}, true
}

func (s imageSource) excluded(string) string { return "" }

func deviceNumbers(fi fs.FileInfo) (major, minor int64, ok bool) {
	if n, isNode := fi.Sys().(*layerfs.Node); isNode {
		return n.Major, n.Minor, true
	}
	return osDeviceNumbers(fi)
}
