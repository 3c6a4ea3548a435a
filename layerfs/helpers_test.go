package layerfs_test

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
)

// opener returns an Opener over a copy of b.
func opener(b []byte) layerfs.Opener {
	b = bytes.Clone(b)
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

func fileNode(content string) *layerfs.Node {
	return &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o644, ModTime: t0,
		Size: int64(len(content)), Content: opener([]byte(content))}
}

func dirNode(mode uint32) *layerfs.Node {
	return &layerfs.Node{Type: layerfs.TypeDir, Mode: mode, ModTime: t0}
}

func linkNode(target string) *layerfs.Node {
	return &layerfs.Node{Type: layerfs.TypeSymlink, Mode: 0o777, ModTime: t0, Target: target}
}

// build fills a new tree from a compact description, one entry per element:
// "d PATH", "f PATH CONTENT" or "l PATH TARGET". Parents must come first.
func build(t testing.TB, spec ...string) *layerfs.FS {
	t.Helper()
	fsys := layerfs.New()
	for _, s := range spec {
		kind, rest, _ := strings.Cut(s, " ")
		p, arg, _ := strings.Cut(rest, " ")
		var n *layerfs.Node
		switch kind {
		case "d":
			n = dirNode(0o755)
		case "f":
			n = fileNode(arg)
		case "l":
			n = linkNode(arg)
		default:
			t.Fatalf("bad spec %q", s)
		}
		if err := fsys.Put(p, n); err != nil {
			t.Fatalf("Put %q: %v", s, err)
		}
	}
	return fsys
}

// entries renders a commit's entries as "PATH TYPE" lines ("PATH wh" for whiteouts).
func entries(c *layerfs.Changes) []string {
	var out []string
	for _, e := range c.Entries {
		if e.Whiteout {
			out = append(out, e.Path+" wh")
		} else {
			out = append(out, fmt.Sprintf("%s %s", e.Path, e.Node.Type))
		}
	}
	return out
}

func readAll(t testing.TB, o layerfs.Opener) []byte {
	t.Helper()
	if o == nil {
		return nil
	}
	rc, err := o()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
