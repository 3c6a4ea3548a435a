package layerfs_test

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
)

// TestCommitLeavesOutUnchanged checks the rule of BuildKit's layer differs: a path
// that ends the layer as it began it is not written, unless as a parent.
func TestCommitLeavesOutUnchanged(t *testing.T) {
	t1 := t0.Add(time.Hour)
	cases := []struct {
		name   string
		change func(t *testing.T, f *layerfs.FS)
		want   []string
	}{
		{"same file again", func(t *testing.T, f *layerfs.FS) {
			mustPut(t, f, "/srv/f", fileNode("abc"))
		}, nil},
		{"same size, other contents", func(t *testing.T, f *layerfs.FS) {
			mustPut(t, f, "/srv/f", fileNode("abd"))
		}, []string{"/srv directory", "/srv/f file"}},
		{"same contents, other mtime", func(t *testing.T, f *layerfs.FS) {
			n := fileNode("abc")
			n.ModTime = t1
			mustPut(t, f, "/srv/f", n)
		}, []string{"/srv directory", "/srv/f file"}},
		{"same contents, other mode", func(t *testing.T, f *layerfs.FS) {
			n := fileNode("abc")
			n.Mode = 0o600
			mustPut(t, f, "/srv/f", n)
		}, []string{"/srv directory", "/srv/f file"}},
		{"same contents, now stamped", func(t *testing.T, f *layerfs.FS) {
			n := fileNode("abc")
			n.Stamped = true
			mustPut(t, f, "/srv/f", n)
		}, []string{"/srv directory", "/srv/f file"}},
		{"contents that cannot be read", func(t *testing.T, f *layerfs.FS) {
			n := fileNode("abc")
			n.Content = func() (io.ReadCloser, error) { return nil, errors.New("gone") }
			mustPut(t, f, "/srv/f", n)
		}, []string{"/srv directory", "/srv/f file"}},
		{"changed and changed back", func(t *testing.T, f *layerfs.FS) {
			f.SetMeta("/srv/f", func(n *layerfs.Node) { n.Mode = 0o600 })
			f.SetMeta("/srv/f", func(n *layerfs.Node) { n.Mode = 0o644 })
		}, nil},
		{"directory mtime only", func(t *testing.T, f *layerfs.FS) {
			f.SetMeta("/srv", func(n *layerfs.Node) { n.ModTime, n.Stamped = t1, false })
			f.SetMeta("/empty", func(n *layerfs.Node) { n.Stamped = true })
		}, nil},
		{"directory mode", func(t *testing.T, f *layerfs.FS) {
			f.SetMeta("/empty", func(n *layerfs.Node) { n.Mode = 0o700 })
		}, []string{"/empty directory"}},
		{"directory mtime, as a parent", func(t *testing.T, f *layerfs.FS) {
			f.SetMeta("/srv", func(n *layerfs.Node) { n.ModTime, n.Stamped = t1, false })
			mustPut(t, f, "/srv/g", fileNode("g"))
		}, []string{"/srv directory", "/srv/g file"}},
		{"same symlink again", func(t *testing.T, f *layerfs.FS) {
			mustPut(t, f, "/srv/l", linkNode("f"))
		}, nil},
		{"symlink target of the same length", func(t *testing.T, f *layerfs.FS) {
			mustPut(t, f, "/srv/l", linkNode("g"))
		}, []string{"/srv directory", "/srv/l symlink"}},
		{"directory removed and made again", func(t *testing.T, f *layerfs.FS) {
			if err := f.Remove("/srv"); err != nil {
				t.Fatal(err)
			}
			mustPut(t, f, "/srv", dirNode(0o755))
			mustPut(t, f, "/srv/f", fileNode("abc"))
		}, []string{"/srv directory", "/srv/.wh..wh..opq wh", "/srv/f file"}},
		{"file removed and made again", func(t *testing.T, f *layerfs.FS) {
			if err := f.Remove("/srv/f"); err != nil {
				t.Fatal(err)
			}
			mustPut(t, f, "/srv/f", fileNode("abc"))
		}, []string{"/srv directory", "/srv/f file"}},
		{"hard-link target of a new link", func(t *testing.T, f *layerfs.FS) {
			g := f.NewLinkGroup()
			for _, p := range []string{"/srv/f", "/srv/h"} {
				n := fileNode("abc")
				n.HardLink = g
				mustPut(t, f, p, n)
			}
		}, []string{"/srv directory", "/srv/f file", "/srv/h file"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := build(t, "d /srv", "f /srv/f abc", "l /srv/l f", "d /empty")
			f.Commit()
			c.change(t, f)
			if got := entries(f.Commit()); !slices.Equal(got, c.want) {
				t.Errorf("entries:\n got %q\nwant %q", got, c.want)
			}
			// The tree itself keeps every change.
			if got := entries(f.Commit()); len(got) != 0 {
				t.Errorf("second commit: %q", got)
			}
		})
	}
}

// TestCommitUnchangedEmptyLayer checks that a layer of nothing but unchanged paths
// is an empty tar, and that the directory a layer left out keeps its old mtime in
// the layers while the tree has the new one.
func TestCommitUnchangedEmptyLayer(t *testing.T) {
	f := build(t, "d /tmp")
	f.Commit()
	t1 := t0.Add(time.Hour)
	f.SetMeta("/tmp", func(n *layerfs.Node) { n.ModTime, n.Stamped = t1, false })
	c := f.Commit()
	if len(c.Entries) != 0 {
		t.Fatalf("entries: %q", entries(c))
	}
	l, err := c.Layer(layerfs.TarOptions{BuildTime: t0})
	if err != nil {
		t.Fatal(err)
	}
	if l.Size() != 1024 {
		t.Errorf("size %d, want an empty tar (1024)", l.Size())
	}
	if n := f.Get("/tmp"); !n.ModTime.Equal(t1) {
		t.Errorf("tree mtime %v, want %v", n.ModTime, t1)
	}
}

func mustPut(t *testing.T, f *layerfs.FS, p string, n *layerfs.Node) {
	t.Helper()
	if err := f.Put(p, n); err != nil {
		t.Fatalf("Put %s: %v", p, err)
	}
}
