package layerfs

import "maps"

// Clone returns an independent copy of the tree, pending changes included. File
// contents are shared: they are openers, never changed in place. A stage built FROM
// an earlier stage works on a clone, so the earlier stage's tree stays as it ended
// for COPY --from.
func (f *FS) Clone() *FS {
	return &FS{
		root:    f.root.clone(),
		changed: maps.Clone(f.changed),
		created: maps.Clone(f.created),
		removed: maps.Clone(f.removed),
		links:   f.links,
	}
}

func (n *Node) clone() *Node {
	c := *n
	if n.children != nil {
		c.children = make(map[string]*Node, len(n.children))
		for name, child := range n.children {
			c.children[name] = child.clone()
		}
	}
	return &c
}
