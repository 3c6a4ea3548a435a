package layerfs

import (
	"bytes"
	"io"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"
)

// Whiteout names, from the OCI image spec ("Whiteouts", image-layout layer.md): a file
// named .wh.NAME hides NAME in the layers below; .wh..wh..opq in a directory hides all
// the directory's lower contents.
const (
	whiteoutPrefix = ".wh."
	opaqueWhiteout = ".wh..wh..opq"
)

// Entry is one path of a committed layer, with a snapshot of its node.
type Entry struct {
	Path     string // absolute, clean
	Node     Node
	Whiteout bool // a whiteout marker (Path's base starts with .wh.)
}

// Changes is what one commit captured: the entries of one layer, sorted parents first.
type Changes struct {
	Entries []Entry
}

// Commit captures what changed since the previous commit as a layer's entries and
// starts a new, empty change set. Entries are snapshots: later changes to the tree do
// not alter them.
//
// A path that ends as it was before the layer is left out, as BuildKit's layer
// differs (overlay sameDirent, continuity's sameFile) leave it out: see unchanged.
// It is still written as the parent of an entry that stays, and a file stays when
// another entry of the layer is in its hard-link group, since the layer writes that
// entry as a link to the first of the group.
func (f *FS) Commit() *Changes {
	out := map[string]Entry{}
	add := func(p string, n *Node) {
		if _, ok := out[p]; !ok {
			out[p] = Entry{Path: p, Node: n.header()}
		}
	}
	// Every path in out has its parents in out too, so the climb stops at the first
	// parent already there: n nested changes cost n steps, not n squared.
	addParents := func(p string) {
		for d := parentDir(p); d != "/"; d = parentDir(d) {
			if _, ok := out[d]; ok {
				return
			}
			if n := f.Get(d); n != nil {
				add(d, n)
			}
		}
	}
	var removedDirs pathSet // removed directories, for unchanged
	for p, t := range f.removed {
		if t == TypeDir {
			removedDirs.add(p)
		}
	}
	var same []string // changed paths that end as they began
	for p := range f.changed {
		if p == "/" {
			continue
		}
		if n := f.Get(p); n != nil {
			if f.unchanged(p, n, &removedDirs) {
				same = append(same, p)
				continue
			}
			add(p, n)
			addParents(p)
		}
	}
	var removed pathSet
	for p := range f.removed {
		removed.add(p)
	}
	for p, oldType := range f.removed {
		if removed.under(p) {
			continue
		}
		n := f.Get(p)
		dir, name := path.Split(p)
		switch {
		case n == nil:
			if parent := f.Get(dir); parent != nil && parent.Type == TypeDir {
				wh := path.Join(dir, whiteoutPrefix+name)
				out[wh] = Entry{Path: wh, Node: Node{Type: TypeReg}, Whiteout: true}
				addParents(wh)
			}
		case n.Type == TypeDir && oldType == TypeDir:
			// A directory replaced by a new one: the old contents must not show through.
			wh := path.Join(p, opaqueWhiteout)
			out[wh] = Entry{Path: wh, Node: Node{Type: TypeReg}, Whiteout: true}
		}
	}
	groups := map[uint64]bool{}
	for _, e := range out {
		if e.Node.Type == TypeReg && e.Node.HardLink != 0 {
			groups[e.Node.HardLink] = true
		}
	}
	for _, p := range same {
		if n := f.Get(p); n.Type == TypeReg && n.HardLink != 0 && groups[n.HardLink] {
			add(p, n)
			addParents(p)
		}
	}
	c := &Changes{Entries: make([]Entry, 0, len(out))}
	for _, e := range out {
		c.Entries = append(c.Entries, e)
	}
	slices.SortFunc(c.Entries, func(a, b Entry) int { return comparePaths(a.Path, b.Path) })
	f.changed = map[string]struct{}{}
	f.created = map[string]struct{}{}
	f.removed = map[string]Type{}
	f.before = map[string]*Node{}
	return c
}

// unchanged reports whether the changed path p, now n, is what it was before the
// layer. A directory that replaced a directory, and whatever is below one, always
// stays: the layer hides the old contents with an opaque whiteout in it.
func (f *FS) unchanged(p string, n *Node, removedDirs *pathSet) bool {
	b := f.before[p]
	if b == nil {
		return false
	}
	if removedDirs.has(p) || removedDirs.under(p) {
		return false
	}
	return sameEntry(b, n)
}

// sameEntry is the rule of BuildKit's layer differs (moby/buildkit util/overlay
// sameDirent, a port of containerd/continuity fs sameFile): the same type, mode and
// owner, and for anything but a directory also the same mtime and size, then the
// same symlink target, device numbers or contents. A directory's mtime does not
// count: one that only got a new mtime is not written (unless as a parent), so the
// image keeps its old one. Contents are compared only when all else matches,
// streamed. Where BuildKit trusts equal nanosecond mtimes, dfbuild still compares
// the contents. Fields of Node not named here are compared too, so that one added
// later counts as a change until this rule says otherwise.
func sameEntry(a, b *Node) bool {
	x, y := a.header(), b.header()
	if x.Type != y.Type || x.Mode != y.Mode || x.UID != y.UID || x.GID != y.GID {
		return false
	}
	if x.Type != TypeDir && (x.Stamped != y.Stamped || !x.Stamped && !x.ModTime.Equal(y.ModTime)) {
		return false
	}
	// What was compared above, and what a layer entry does not carry itself (the
	// link group is the caller's; contents are compared last).
	x.ModTime, y.ModTime, x.Stamped, y.Stamped = time.Time{}, time.Time{}, false, false
	x.Content, y.Content, x.HardLink, y.HardLink = nil, nil, 0, 0
	if !reflect.DeepEqual(x, y) {
		return false
	}
	if x.Type != TypeReg || x.Size == 0 {
		return true
	}
	return sameContent(a.Content, b.Content, x.Size)
}

// sameContent reports whether two openers give the same size bytes, reading both a
// block at a time. A body that cannot be read counts as different: the entry stays,
// and writing the layer reports the error.
func sameContent(a, b Opener, size int64) bool {
	if a == nil || b == nil {
		return false
	}
	ra, err := a()
	if err != nil {
		return false
	}
	defer ra.Close()
	rb, err := b()
	if err != nil {
		return false
	}
	defer rb.Close()
	const block = 32 << 10
	ba, bb := make([]byte, block), make([]byte, block)
	for size > 0 {
		n := int(min(size, block))
		if _, err := io.ReadFull(ra, ba[:n]); err != nil {
			return false
		}
		if _, err := io.ReadFull(rb, bb[:n]); err != nil {
			return false
		}
		if !bytes.Equal(ba[:n], bb[:n]) {
			return false
		}
		size -= int64(n)
	}
	return true
}

// pathSet is a set of absolute paths kept as a tree of their components, so that
// asking whether one of a path's ancestors is in it costs one step per component,
// not the hashing of every ancestor's whole path.
type pathSet struct {
	kids   map[string]*pathSet
	member bool
}

func (s *pathSet) add(p string) {
	for _, name := range split(p) {
		if s.kids == nil {
			s.kids = map[string]*pathSet{}
		}
		k := s.kids[name]
		if k == nil {
			k = &pathSet{}
			s.kids[name] = k
		}
		s = k
	}
	s.member = true
}

// has reports whether p is in the set.
func (s *pathSet) has(p string) bool {
	for rest := p[1:]; rest != "" && s != nil; {
		var name string
		name, rest, _ = strings.Cut(rest, "/")
		s = s.kids[name]
	}
	return s != nil && s.member
}

// under reports whether a proper ancestor of the clean path p is in the set.
func (s *pathSet) under(p string) bool {
	for rest := p[1:]; rest != "" && s != nil; {
		if s.member {
			return true
		}
		var name string
		name, rest, _ = strings.Cut(rest, "/")
		s = s.kids[name]
	}
	return false
}

// comparePaths orders paths component by component, so a directory comes right
// before its contents, the order of a filesystem walk. Within a directory the
// whiteouts come first, as the OCI spec recommends.
func comparePaths(a, b string) int {
	// The components before the one where a and b first differ are equal: skip them
	// with a byte scan, so nested paths, which share long prefixes, compare in time
	// proportional to their length and not to its square.
	i := 0
	for n := min(len(a), len(b)); i < n && a[i] == b[i]; i++ {
	}
	if i == len(a) && i == len(b) {
		return 0
	}
	j := strings.LastIndexByte(a[:i], '/') + 1
	a, b = a[j:], b[j:]
	for a != "" && b != "" {
		var ac, bc string
		ac, a, _ = strings.Cut(a, "/")
		bc, b, _ = strings.Cut(b, "/")
		if ac == bc {
			continue
		}
		aw, bw := strings.HasPrefix(ac, whiteoutPrefix), strings.HasPrefix(bc, whiteoutPrefix)
		if aw != bw {
			if aw {
				return -1
			}
			return 1
		}
		return strings.Compare(ac, bc)
	}
	return len(a) - len(b)
}

func sortedNames(dir *Node) []string {
	names := make([]string, 0, len(dir.children))
	for name := range dir.children {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}
