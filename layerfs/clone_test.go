package layerfs_test

import (
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
)

func TestCloneIsIndependent(t *testing.T) {
	f := layerfs.New()
	if _, err := f.MkdirAll("/a/b", layerfs.Node{Type: layerfs.TypeDir, Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if err := f.Put("/a/b/file", &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o644, Size: 3}); err != nil {
		t.Fatal(err)
	}
	f.Commit()
	c := f.Clone()
	if err := c.Put("/a/b/other", &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	c.SetMeta("/a/b/file", func(n *layerfs.Node) { n.Mode = 0o700 })
	if f.Get("/a/b/other") != nil {
		t.Error("a file put in the clone appeared in the original")
	}
	if n := f.Get("/a/b/file"); n == nil || n.Mode != 0o644 {
		t.Errorf("the original's file changed with the clone's: %+v", n)
	}
	if ch := f.Commit(); len(ch.Entries) != 0 {
		t.Errorf("the original has %d pending changes after the clone changed", len(ch.Entries))
	}
	if ch := c.Commit(); len(ch.Entries) == 0 {
		t.Error("the clone's changes were not recorded")
	}
}
