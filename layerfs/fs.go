package layerfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"
)

// maxSymlinks bounds symlink resolution, as Linux's ELOOP limit does.
const maxSymlinks = 255

// MaxPathLen is Linux's PATH_MAX: a path in the tree (absolute, "/a/b") must be
// shorter, and so must a symlink's target, or it is refused with ENAMETOOLONG, as
// the kernel refuses it. A container could not open a longer path, and Docker's
// unpacker could not create it; a tar can still carry one (PAX records have no
// limit), so a tarball or an archive is checked entry by entry. The limit also bounds
// what a deep path costs: the tree keeps whole paths of changed entries, and a layer
// writes each entry's whole path, so n nested directories cost n times their depth.
const MaxPathLen = 4096

// errPathTooLong explains ENAMETOOLONG.
var errPathTooLong = fmt.Errorf("%w: %d bytes or more (Linux's PATH_MAX)", syscall.ENAMETOOLONG, MaxPathLen)

// CheckPath refuses a path of MaxPathLen bytes or more, as absolute clean path of
// the tree, naming it shortened: the name itself may be megabytes long.
func CheckPath(p string) error {
	if len(p) < MaxPathLen {
		return nil
	}
	return &fs.PathError{Op: "check", Path: Shorten(p), Err: errPathTooLong}
}

// Shorten cuts a path for an error message: its first and last 40 bytes, with the
// number of bytes left out between them.
func Shorten(p string) string {
	if len(p) <= 100 {
		return p
	}
	return fmt.Sprintf("%s...(%d bytes)...%s", p[:40], len(p)-80, p[len(p)-40:])
}

// errWhiteoutName refuses a name that a layer would read as a whiteout: stored in the
// tree, it would delete a lower path instead of being a file.
var errWhiteoutName = errors.New("names starting with " + whiteoutPrefix + " are reserved for layer whiteouts")

// FS is an in-memory filesystem tree that records its changes. Paths given to its
// methods are slash-separated; a leading slash is optional and "." or "" is the root.
type FS struct {
	root    *Node
	changed map[string]struct{} // real paths added or modified since the last Commit
	created map[string]struct{} // of those, the ones that did not exist before it
	removed map[string]Type     // paths removed since the last Commit that existed before it
	// before holds, for each path of changed, a copy of its node as it was before its
	// first change (nil: it did not exist), so that Commit can leave out what ends
	// as it began. A changed path missing from it (a Clone's) counts as changed.
	before map[string]*Node
	links  uint64 // the last hard-link group handed out
}

// NewLinkGroup returns a hard-link group number not used in this tree yet (see
// Node.HardLink).
func (f *FS) NewLinkGroup() uint64 {
	f.links++
	return f.links
}

// New returns an empty tree: a root directory, mode 0755, owned by root.
func New() *FS {
	return &FS{
		root:    &Node{Type: TypeDir, Mode: 0o755, Stamped: true, children: map[string]*Node{}},
		changed: map[string]struct{}{},
		created: map[string]struct{}{},
		removed: map[string]Type{},
		before:  map[string]*Node{},
	}
}

// split turns a path into its components after lexical cleaning from the root, so
// ".." can never climb above it.
func split(p string) []string {
	p = Clean(p)
	if p == "/" {
		return nil
	}
	return strings.Split(p[1:], "/")
}

// parentDir is path.Dir for a clean absolute path, without path.Clean's pass over
// it: deep paths have their parents taken once per level.
func parentDir(p string) string {
	i := strings.LastIndexByte(p, '/')
	if i <= 0 {
		return "/"
	}
	return p[:i]
}

// Clean returns p as an absolute, lexically clean path.
func Clean(p string) string {
	if isClean(p) {
		return p
	}
	return path.Clean("/" + p)
}

// isClean reports whether p is absolute and lexically clean already, so that Clean
// would return it as it is (and a substring of a path can stand for an ancestor
// without a copy of its own).
func isClean(p string) bool {
	if p == "/" {
		return true
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return false
	}
	for i := 1; i < len(p); i++ {
		if p[i-1] != '/' {
			continue
		}
		switch {
		case p[i] == '/':
			return false
		case p[i] == '.' && (i+1 == len(p) || p[i+1] == '/'):
			return false
		case p[i] == '.' && p[i+1] == '.' && (i+2 == len(p) || p[i+2] == '/'):
			return false
		}
	}
	return true
}

// Resolve returns the real path of p: every symlink on the way is followed inside the
// tree, absolute targets start again at the root and ".." stops at the root, so the
// result never leaves the tree. The last component is followed only if followLast is
// set. Components that do not exist are kept as they are, so the result also names
// where a new entry would go.
func (f *FS) Resolve(p string, followLast bool) (string, error) {
	return f.resolve(nil, nil, p, followLast)
}

// ResolveIn is Resolve with the directory root standing in for the tree's root, as
// a chroot into root would see the tree: absolute symlink targets start again at
// root and ".." stops there, so the result is root or a path below it. root must be
// the real path of a directory. ADD extracts archives this way.
func (f *FS) ResolveIn(root, p string, followLast bool) (string, error) {
	base := split(root)
	nodes := make([]*Node, len(base))
	n := f.root
	for i, name := range base {
		if n.Type == TypeDir {
			n = n.children[name]
		} else {
			n = nil
		}
		if n == nil || n.Type != TypeDir {
			return "", &fs.PathError{Op: "resolve", Path: root, Err: syscall.ENOTDIR}
		}
		nodes[i] = n
	}
	return f.resolve(base, nodes, p, followLast)
}

// resolve walks p from the directory base (whose nodes are baseNodes), which it
// never leaves.
func (f *FS) resolve(base []string, baseNodes []*Node, p string, followLast bool) (string, error) {
	todo := split(p)
	names := append([]string(nil), base...)
	nodes := append([]*Node(nil), baseNodes...) // nodes[i] is the node at names[:i+1], nil if it does not exist
	links := 0
	for len(todo) > 0 {
		name := todo[0]
		todo = todo[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if len(names) > len(base) {
				names, nodes = names[:len(names)-1], nodes[:len(nodes)-1]
			}
			continue
		}
		parent := f.root
		if len(nodes) > 0 {
			parent = nodes[len(nodes)-1]
		}
		var child *Node
		if parent != nil && parent.Type == TypeDir {
			child = parent.children[name]
		}
		if child != nil && child.Type == TypeSymlink && (len(todo) > 0 || followLast) {
			links++
			if links > maxSymlinks {
				return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ELOOP}
			}
			if child.Target == "" {
				// Linux refuses to follow an empty symlink; taken as "", it would
				// name the directory holding it.
				return "", &fs.PathError{Op: "resolve", Path: p, Err: syscall.ENOENT}
			}
			if strings.HasPrefix(child.Target, "/") {
				names, nodes = names[:len(base)], nodes[:len(base)]
			}
			todo = append(strings.Split(child.Target, "/"), todo...)
			continue
		}
		names = append(names, name)
		nodes = append(nodes, child)
	}
	real := "/" + strings.Join(names, "/")
	if err := CheckPath(real); err != nil {
		return "", &fs.PathError{Op: "resolve", Path: Shorten(p), Err: errPathTooLong}
	}
	return real, nil
}

// Get returns the node at the real path p without following any symlink, or nil.
func (f *FS) Get(p string) *Node {
	n := f.root
	// Walked with Cut rather than split: Get runs for every entry of every commit,
	// mostly with clean paths, which need no new string.
	if !isClean(p) {
		p = Clean(p)
	}
	rest := p[1:]
	for rest != "" {
		var name string
		name, rest, _ = strings.Cut(rest, "/")
		if n.Type != TypeDir {
			return nil
		}
		if n = n.children[name]; n == nil {
			return nil
		}
	}
	return n
}

// Lstat returns the node at p, following symlinks on the way but not the last one.
func (f *FS) Lstat(p string) (*Node, string, error) {
	real, err := f.Resolve(p, false)
	if err != nil {
		return nil, "", err
	}
	n := f.Get(real)
	if n == nil {
		return nil, real, &fs.PathError{Op: "lstat", Path: p, Err: fs.ErrNotExist}
	}
	return n, real, nil
}

// Stat returns the node at p, following every symlink.
func (f *FS) Stat(p string) (*Node, string, error) {
	real, err := f.Resolve(p, true)
	if err != nil {
		return nil, "", err
	}
	n := f.Get(real)
	if n == nil {
		return nil, real, &fs.PathError{Op: "stat", Path: p, Err: fs.ErrNotExist}
	}
	return n, real, nil
}

// MkdirAll makes sure p is a directory, creating missing ones from tmpl (its type is
// forced to directory). Symlinks on the way are followed inside the tree. It returns
// the real path of the directory.
func (f *FS) MkdirAll(p string, tmpl Node) (string, error) {
	real, err := f.Resolve(p, true)
	if err != nil {
		return "", err
	}
	n := f.root
	// Each ancestor's path is a prefix of real, not a string of its own: a deep
	// path would otherwise cost its depth squared in memory.
	end := 0
	for _, name := range split(real) {
		end += 1 + len(name)
		cur := real[:end]
		child := n.children[name]
		if child == nil {
			if strings.HasPrefix(name, whiteoutPrefix) {
				return "", &fs.PathError{Op: "mkdir", Path: cur, Err: errWhiteoutName}
			}
			d := tmpl.header()
			d.Type, d.Size, d.Target, d.Content = TypeDir, 0, "", nil
			d.children = map[string]*Node{}
			f.attach(n, cur, &d, nil)
			child = &d
		} else if child.Type != TypeDir {
			return "", &fs.PathError{Op: "mkdir", Path: cur, Err: syscall.ENOTDIR}
		}
		n = child
	}
	return real, nil
}

// Put stores a copy of n at the real path p, whose parent must be a directory. An
// existing directory meeting a directory keeps its contents and takes n's metadata;
// anything else is replaced.
func (f *FS) Put(p string, n *Node) error {
	p = Clean(p)
	if err := CheckPath(p); err != nil {
		return err
	}
	if n.Type == TypeSymlink && len(n.Target) >= MaxPathLen {
		return &fs.PathError{Op: "put", Path: Shorten(p), Err: fmt.Errorf("symlink target: %w", errPathTooLong)}
	}
	if p == "/" {
		if n.Type != TypeDir {
			return &fs.PathError{Op: "put", Path: p, Err: errors.New("the root must stay a directory")}
		}
		f.SetMeta(p, func(r *Node) { copyMeta(r, n) })
		return nil
	}
	dir, name := path.Split(p)
	if strings.HasPrefix(name, whiteoutPrefix) {
		return &fs.PathError{Op: "put", Path: p, Err: errWhiteoutName}
	}
	parent := f.Get(dir)
	if parent == nil {
		return &fs.PathError{Op: "put", Path: p, Err: fs.ErrNotExist}
	}
	if parent.Type != TypeDir {
		return &fs.PathError{Op: "put", Path: p, Err: syscall.ENOTDIR}
	}
	old := parent.children[name]
	if old != nil && old.Type == TypeDir && n.Type == TypeDir {
		f.mark(p, old)
		copyMeta(old, n)
		f.changed[p] = struct{}{}
		return nil
	}
	c := n.header()
	if c.Type == TypeDir {
		c.children = map[string]*Node{}
	}
	f.attach(parent, p, &c, old)
	return nil
}

// Apply lays the tree upper over f the way a layer holding all of upper would be
// unpacked onto it: each entry of upper replaces whatever f has at its path, except
// that a directory meeting a directory keeps its contents and takes upper's metadata.
// Symlinks in f are never followed, so a directory of upper replaces a symlink of f.
// Hard-link groups of upper get numbers of f. This is what COPY --link does
// (BuildKit's MergeOp): the copy is made in an empty tree, then merged.
func (f *FS) Apply(upper *FS) error {
	groups := map[uint64]uint64{}
	var dirs []string
	err := upper.Walk(func(p string, n *Node) error {
		c := n.header()
		if c.HardLink != 0 {
			g, ok := groups[c.HardLink]
			if !ok {
				g = f.NewLinkGroup()
				groups[c.HardLink] = g
			}
			c.HardLink = g
		}
		if c.Type == TypeDir {
			dirs = append(dirs, p)
		}
		return f.Put(p, &c)
	})
	if err != nil {
		return err
	}
	// Putting entries into a directory stamped it with the build time; in a layer each
	// directory carries its own metadata, so upper's is put back, deepest first.
	for i := len(dirs) - 1; i >= 0; i-- {
		u := upper.Get(dirs[i])
		f.SetMeta(dirs[i], func(n *Node) { copyMeta(n, u) })
	}
	return nil
}

// Remove deletes the entry at the real path p and everything below it.
func (f *FS) Remove(p string) error {
	p = Clean(p)
	dir, name := path.Split(p)
	parent := f.Get(dir)
	if p == "/" || parent == nil || parent.Type != TypeDir || parent.children[name] == nil {
		return &fs.PathError{Op: "remove", Path: p, Err: fs.ErrNotExist}
	}
	f.forget(p, parent.children[name])
	delete(parent.children, name)
	f.touch(parent, dir)
	return nil
}

// SetMeta lets fn change the metadata of the node at the real path p, and records
// the change. fn must not change the node's type. A hard-linked file whose mode,
// owner or time fn changes leaves its link group: the members of a group share one
// inode's metadata, and a layer writes all but the first as bare links.
func (f *FS) SetMeta(p string, fn func(*Node)) {
	p = Clean(p)
	n := f.Get(p)
	if n == nil {
		return
	}
	f.mark(p, n)
	t, kids, before := n.Type, n.children, n.header()
	fn(n)
	n.Type, n.children = t, kids
	if n.HardLink != 0 && n.HardLink == before.HardLink && !sameMeta(n, &before) {
		n.HardLink = 0
	}
	f.changed[p] = struct{}{}
}

// sameMeta reports whether a and b have the metadata that hard links share.
func sameMeta(a, b *Node) bool {
	return a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.ModTime.Equal(b.ModTime) && a.Stamped == b.Stamped
}

// attach links child into parent at p, replacing old, and records the change.
func (f *FS) attach(parent *Node, p string, child, old *Node) {
	f.mark(p, old)
	if old != nil {
		// Replacing an entry made in this layer: the path is still new to it, so
		// removing it later must not leave a whiteout.
		_, isNew := f.created[p]
		f.forget(p, old)
		if isNew {
			f.created[p] = struct{}{}
		}
	} else {
		f.created[p] = struct{}{}
	}
	parent.children[p[strings.LastIndexByte(p, '/')+1:]] = child
	f.changed[p] = struct{}{}
	f.touch(parent, parentDir(p))
}

// touch records that a directory's contents changed, which gives it the build time
// as its mtime, as a real filesystem would.
func (f *FS) touch(dir *Node, p string) {
	p = Clean(p)
	f.mark(p, dir)
	dir.Stamped = true
	f.changed[p] = struct{}{}
}

// mark keeps a copy of n, the node at the real path p (nil if there is none), as
// what p was before this layer, unless p changed already since the change set was
// last emptied. Call it before changing p.
func (f *FS) mark(p string, n *Node) {
	if _, ok := f.changed[p]; ok {
		return
	}
	if f.before == nil {
		f.before = map[string]*Node{}
	}
	if n == nil {
		f.before[p] = nil
		return
	}
	h := n.header()
	f.before[p] = &h
}

// forget records that old, at p, is going away.
func (f *FS) forget(p string, old *Node) {
	if _, ok := f.created[p]; ok {
		delete(f.created, p)
	} else if _, ok := f.removed[p]; !ok {
		f.removed[p] = old.Type
	}
	if old.Type == TypeDir {
		prefix := p + "/"
		for q := range f.created {
			if strings.HasPrefix(q, prefix) {
				delete(f.created, q)
			}
		}
	}
}

func copyMeta(dst, src *Node) {
	dst.Mode, dst.UID, dst.GID = src.Mode, src.UID, src.GID
	dst.ModTime, dst.Stamped = src.ModTime, src.Stamped
}

// Walk calls fn for every node below the root (not the root itself), parents before
// children, siblings in byte order of their names.
func (f *FS) Walk(fn func(p string, n *Node) error) error {
	return walk(f.root, "", fn)
}

func walk(dir *Node, prefix string, fn func(string, *Node) error) error {
	for _, name := range sortedNames(dir) {
		child := dir.children[name]
		p := prefix + "/" + name
		if err := fn(p, child); err != nil {
			return err
		}
		if child.Type == TypeDir {
			if err := walk(child, p, fn); err != nil {
				return err
			}
		}
	}
	return nil
}

func (f *FS) String() string {
	var b strings.Builder
	_ = f.Walk(func(p string, n *Node) error {
		fmt.Fprintf(&b, "%s %s %o %d:%d\n", p, n.Type, n.Mode, n.UID, n.GID)
		return nil
	})
	return b.String()
}
