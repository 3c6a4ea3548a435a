package layerfs_test

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
)

// capV2 is cap_net_bind_service+ep as setcap writes it (VFS_CAP_REVISION_2).
const capV2 = "\x01\x00\x00\x02\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"

// capV3 is a namespaced capability (VFS_CAP_REVISION_3, with a root uid).
const capV3 = "\x01\x00\x00\x03\x00\x04\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xe8\x03\x00\x00"

func capFile(content, capability string) *layerfs.Node {
	n := fileNode(content)
	n.Capability = capability
	return n
}

// tarRecords lists each entry of a layer tar as name, type and its
// security.capability record, "-" for none.
func tarRecords(t *testing.T, b []byte) map[string]string {
	t.Helper()
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		v, ok := h.PAXRecords[layerfs.PAXCapability]
		if !ok {
			v = "-"
		}
		for k := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") && k != layerfs.PAXCapability {
				t.Errorf("%s: unexpected xattr record %q", h.Name, k)
			}
		}
		out[h.Name+" "+string(h.Typeflag)] = v
	}
}

// TestCapabilityLayer checks that a layer writes the capability as a PAX record,
// with a size known exactly beforehand, and that both tar readers of the package
// bring it back into a tree.
func TestCapabilityLayer(t *testing.T) {
	fsys := layerfs.New()
	put(t, fsys, "/bin", dirNode(0o755))
	put(t, fsys, "/bin/ping", capFile("ping\n", capV2))
	put(t, fsys, "/bin/plain", fileNode("plain\n"))
	// A PAX path record and the capability record in one extended header.
	long := "/bin/" + strings.Repeat("n", 150)
	put(t, fsys, long, capFile("long\n", capV3))
	// Hard links share one inode's xattr: the later name is a link carrying the
	// record too, as containerd writes it. A member whose xattr differs is a file.
	g := fsys.NewLinkGroup()
	for _, p := range []string{"/bin/a", "/bin/b", "/bin/c"} {
		n := capFile("linked\n", capV2)
		n.HardLink = g
		if p == "/bin/c" {
			n.Capability = capV3
		}
		put(t, fsys, p, n)
	}
	l, err := fsys.Commit().Layer(layerfs.TarOptions{BuildTime: t0})
	if err != nil {
		t.Fatal(err)
	}
	b := writeLayer(t, l) // fails unless Size() is exact
	got := tarRecords(t, b)
	want := map[string]string{
		"bin/ 5":        "-",
		"bin/ping 0":    capV2,
		"bin/plain 0":   "-",
		long[1:] + " 0": capV3,
		"bin/a 0":       capV2,
		"bin/b 1":       capV2,
		"bin/c 0":       capV3,
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: record %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("entries %v, want %v", got, want)
	}

	// A layer without any capability stays the same size as before the field.
	plain := layerfs.New()
	put(t, plain, "/bin", dirNode(0o755))
	put(t, plain, "/bin/ping", fileNode("ping\n"))
	pl, err := plain.Commit().Layer(layerfs.TarOptions{BuildTime: t0})
	if err != nil {
		t.Fatal(err)
	}
	// Two header blocks, one body block, the end-of-archive marker: no PAX header.
	if pb := writeLayer(t, pl); len(pb) != 5*512 {
		t.Errorf("plain layer of %d bytes, want %d", len(pb), 5*512)
	}

	check := func(what string, tree *layerfs.FS) {
		t.Helper()
		for p, c := range map[string]string{"/bin/ping": capV2, "/bin/plain": "", long: capV3, "/bin/a": capV2, "/bin/b": capV2, "/bin/c": capV3} {
			n := tree.Get(p)
			if n == nil {
				t.Errorf("%s: %s missing", what, p)
			} else if n.Capability != c {
				t.Errorf("%s: %s has capability %q, want %q", what, p, n.Capability, c)
			}
		}
		if n := tree.Get("/bin"); n == nil || n.Capability != "" {
			t.Errorf("%s: /bin = %+v, want a directory without capability", what, n)
		}
	}

	file := filepath.Join(t.TempDir(), "layer.tar")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := layerfs.LoadRootfs(file, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	check("LoadRootfs", r.FS)

	a := layerfs.NewLayerApplier()
	if _, _, err := a.Apply(bytes.NewReader(b), func(off, size int64) layerfs.Opener {
		return opener(b[off : off+size])
	}); err != nil {
		t.Fatal(err)
	}
	tree := a.FS()
	check("LayerApplier", tree)

	// Written again from the loaded tree, the record comes out the same.
	tree.SetMeta("/bin/ping", func(n *layerfs.Node) { n.Mode = 0o700 })
	l2, err := tree.Commit().Layer(layerfs.TarOptions{BuildTime: t0})
	if err != nil {
		t.Fatal(err)
	}
	if got := tarRecords(t, writeLayer(t, l2)); got["bin/ping 0"] != capV2 {
		t.Errorf("rewritten layer: %v", got)
	}
}

// TestCapabilityHardLinkRecord checks that a tar hard link without a record of its
// own shows its target's capability, and one with a record keeps its own.
func TestCapabilityHardLinkRecord(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range []*tar.Header{
		{Typeflag: tar.TypeReg, Name: "f", Mode: 0o755, Size: 2, PAXRecords: map[string]string{layerfs.PAXCapability: capV2}},
		{Typeflag: tar.TypeLink, Name: "bare", Linkname: "f"},
		{Typeflag: tar.TypeLink, Name: "own", Linkname: "f", PAXRecords: map[string]string{layerfs.PAXCapability: capV3}},
	} {
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("x\n"))
		}
	}
	tw.Close()
	b := buf.Bytes()
	a := layerfs.NewLayerApplier()
	if _, _, err := a.Apply(bytes.NewReader(b), func(off, size int64) layerfs.Opener { return opener(b[off : off+size]) }); err != nil {
		t.Fatal(err)
	}
	tree := a.FS()
	for p, c := range map[string]string{"/f": capV2, "/bare": capV2, "/own": capV3} {
		if n := tree.Get(p); n == nil || n.Capability != c {
			t.Errorf("%s: %+v, want capability %q", p, n, c)
		}
	}
}

func TestSameXattrs(t *testing.T) {
	a, b := capFile("x", capV2), capFile("x", capV2)
	if !layerfs.SameXattrs(a, b) {
		t.Error("equal capabilities differ")
	}
	b.Capability = ""
	if layerfs.SameXattrs(a, b) {
		t.Error("a removed capability is the same")
	}
}
