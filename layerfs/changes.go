package layerfs

import (
	"path"
	"slices"
	"strings"
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
func (f *FS) Commit() *Changes {
	out := map[string]Entry{}
	add := func(p string, n *Node) {
		if _, ok := out[p]; !ok {
			out[p] = Entry{Path: p, Node: n.header()}
		}
	}
	addParents := func(p string) {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if n := f.Get(d); n != nil {
				add(d, n)
			}
		}
	}
	for p := range f.changed {
		if p == "/" {
			continue
		}
		if n := f.Get(p); n != nil {
			add(p, n)
			addParents(p)
		}
	}
	for p, oldType := range f.removed {
		if f.hasRemovedAncestor(p) {
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
	c := &Changes{Entries: make([]Entry, 0, len(out))}
	for _, e := range out {
		c.Entries = append(c.Entries, e)
	}
	slices.SortFunc(c.Entries, func(a, b Entry) int { return comparePaths(a.Path, b.Path) })
	f.changed = map[string]struct{}{}
	f.created = map[string]struct{}{}
	f.removed = map[string]Type{}
	return c
}

func (f *FS) hasRemovedAncestor(p string) bool {
	for d := path.Dir(p); d != "/"; d = path.Dir(d) {
		if _, ok := f.removed[d]; ok {
			return true
		}
	}
	return false
}

// comparePaths orders paths component by component, so a directory comes right
// before its contents, the order of a filesystem walk. Within a directory the
// whiteouts come first, as the OCI spec recommends.
func comparePaths(a, b string) int {
	a, b = a[1:], b[1:]
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
