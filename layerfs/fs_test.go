package layerfs_test

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
)

// resolveTree is the tree the Resolve and MkdirAll tests walk.
func resolveTree(t *testing.T) *layerfs.FS {
	return build(t,
		"d /a", "d /a/b", "f /a/b/f hello",
		"l /l1 a/b", // relative
		"l /l2 /a",  // absolute
		"l /chain1 chain2", "l /chain2 /chain3", "l /chain3 a/b/f",
		"l /loop1 loop2", "l /loop2 /loop1", "l /self ./self",
		"l /up ../../../a", // climbs above the root, clamped
		"l /a/b/rel ../../l2/b/f",
		"l /dangling /missing/x",
		"f /file data",
		"l /tofile file",
		"l /a/empty ", // an empty target
	)
}

func TestResolve(t *testing.T) {
	fsys := resolveTree(t)
	tests := []struct {
		in     string
		follow bool
		want   string // "ELOOP" for a loop error
	}{
		{"", true, "/"},
		{".", true, "/"},
		{"/", false, "/"},
		{"a/b/f", true, "/a/b/f"},
		{"/a//b/./f", true, "/a/b/f"},
		{"l1/f", true, "/a/b/f"},
		{"l1", false, "/l1"},
		{"l1", true, "/a/b"},
		{"l1/", true, "/a/b"},
		{"l2/b/f", false, "/a/b/f"},
		{"chain1", true, "/a/b/f"},
		{"chain1", false, "/chain1"},
		{"a/b/rel", true, "/a/b/f"},
		{"a/b/rel", false, "/a/b/rel"},
		{"up", true, "/a"},
		{"up/b", true, "/a/b"},
		{"../../a/../a/b", true, "/a/b"},
		// ".." is applied lexically before any symlink is followed.
		{"l1/..", true, "/"},
		{"missing/deeper/x", true, "/missing/deeper/x"},
		{"l1/missing/x", true, "/a/b/missing/x"},
		{"dangling", true, "/missing/x"},
		{"dangling", false, "/dangling"},
		{"dangling/y", false, "/missing/x/y"},
		{"file/x", true, "/file/x"},
		{"tofile", true, "/file"},
		{"loop1", false, "/loop1"},
		{"loop1", true, "ELOOP"},
		{"loop1/x", false, "ELOOP"},
		{"self", true, "ELOOP"},
		{"self/x", false, "ELOOP"},
		{"a/empty", false, "/a/empty"},
		{"a/empty", true, "ENOENT"},
		{"a/empty/x", false, "ENOENT"},
	}
	for _, tt := range tests {
		got, err := fsys.Resolve(tt.in, tt.follow)
		if tt.want == "ENOENT" {
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("Resolve(%q, %v) = %q, %v; want ErrNotExist", tt.in, tt.follow, got, err)
			}
			continue
		}
		if tt.want == "ELOOP" {
			var pe *fs.PathError
			if !errors.Is(err, syscall.ELOOP) || !errors.As(err, &pe) {
				t.Errorf("Resolve(%q, %v) = %q, %v; want an ELOOP *fs.PathError", tt.in, tt.follow, got, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Resolve(%q, %v) = %q, %v; want %q", tt.in, tt.follow, got, err, tt.want)
		}
	}
}

// TestResolveLongChain checks that a long chain of distinct links resolves up to the
// limit and fails past it, like Linux's ELOOP.
func TestResolveLongChain(t *testing.T) {
	for _, n := range []int{255, 256} {
		fsys := layerfs.New()
		if err := fsys.Put("/end", fileNode("x")); err != nil {
			t.Fatal(err)
		}
		for i := range n {
			target := fmt.Sprintf("l%d", i+1)
			if i == n-1 {
				target = "end"
			}
			if err := fsys.Put(fmt.Sprintf("/l%d", i), linkNode(target)); err != nil {
				t.Fatal(err)
			}
		}
		got, err := fsys.Resolve("l0", true)
		if n <= 255 && (err != nil || got != "/end") {
			t.Errorf("%d links: Resolve = %q, %v; want /end", n, got, err)
		}
		if n > 255 && !errors.Is(err, syscall.ELOOP) {
			t.Errorf("%d links: Resolve = %q, %v; want ELOOP", n, got, err)
		}
	}
}

func TestStatLstat(t *testing.T) {
	fsys := resolveTree(t)
	n, real, err := fsys.Stat("chain1")
	if err != nil || real != "/a/b/f" || n.Type != layerfs.TypeReg {
		t.Errorf("Stat(chain1) = %v, %q, %v", n, real, err)
	}
	n, real, err = fsys.Lstat("l2/b/rel")
	if err != nil || real != "/a/b/rel" || n.Type != layerfs.TypeSymlink {
		t.Errorf("Lstat(l2/b/rel) = %v, %q, %v", n, real, err)
	}
	if _, real, err := fsys.Stat("dangling"); !errors.Is(err, fs.ErrNotExist) || real != "/missing/x" {
		t.Errorf("Stat(dangling) = %q, %v; want /missing/x and ErrNotExist", real, err)
	}
	if _, _, err := fsys.Lstat("loop1/x"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("Lstat(loop1/x) = %v; want ELOOP", err)
	}
	if n := fsys.Get("/l1/f"); n != nil {
		t.Errorf("Get followed a symlink: %v", n)
	}
	if n := fsys.Get("/file/x"); n != nil {
		t.Errorf("Get found a child of a file: %v", n)
	}
}

func TestMkdirAll(t *testing.T) {
	fsys := resolveTree(t)
	fsys.Commit()
	tmpl := layerfs.Node{Type: layerfs.TypeReg, Mode: 0o700, UID: 7, GID: 8, Size: 99, Target: "x", Content: opener(nil)}
	real, err := fsys.MkdirAll("l1/new/deeper", tmpl)
	if err != nil || real != "/a/b/new/deeper" {
		t.Fatalf("MkdirAll through l1 = %q, %v", real, err)
	}
	for _, p := range []string{"/a/b/new", "/a/b/new/deeper"} {
		n := fsys.Get(p)
		if n == nil || n.Type != layerfs.TypeDir || n.Mode != 0o700 || n.UID != 7 || n.GID != 8 ||
			n.Size != 0 || n.Target != "" || n.Content != nil {
			t.Errorf("%s = %+v, want a 0700 7:8 directory made from the template", p, n)
		}
	}
	if l := fsys.Get("/l1"); l == nil || l.Type != layerfs.TypeSymlink {
		t.Errorf("the symlink on the way was replaced: %+v", l)
	}
	want := []string{"/a directory", "/a/b directory", "/a/b/new directory", "/a/b/new/deeper directory"}
	if got := entries(fsys.Commit()); !slices.Equal(got, want) {
		t.Errorf("commit after MkdirAll:\n got %q\nwant %q", got, want)
	}

	// Existing directories are left alone and record nothing.
	if real, err := fsys.MkdirAll("/a/b", tmpl); err != nil || real != "/a/b" {
		t.Errorf("MkdirAll(existing) = %q, %v", real, err)
	}
	if n := fsys.Get("/a/b"); n.Mode != 0o755 {
		t.Errorf("MkdirAll changed an existing directory's mode to %o", n.Mode)
	}
	if got := entries(fsys.Commit()); len(got) != 0 {
		t.Errorf("MkdirAll of existing directories recorded %q", got)
	}

	// A dangling symlink's target is created.
	if real, err := fsys.MkdirAll("dangling", tmpl); err != nil || real != "/missing/x" {
		t.Errorf("MkdirAll(dangling) = %q, %v", real, err)
	}

	for _, p := range []string{"file", "file/x", "tofile/x", "a/b/f/g"} {
		_, err := fsys.MkdirAll(p, tmpl)
		var pe *fs.PathError
		if !errors.Is(err, syscall.ENOTDIR) || !errors.As(err, &pe) {
			t.Errorf("MkdirAll(%q) = %v, want an ENOTDIR *fs.PathError", p, err)
		}
	}
	if _, err := fsys.MkdirAll("loop1/x", tmpl); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("MkdirAll(loop1/x) = %v, want ELOOP", err)
	}
}

func TestPut(t *testing.T) {
	fsys := build(t, "d /d", "f /d/keep kept", "f /f old", "d /g", "f /g/child c", "f /h h")
	fsys.Commit()

	// A file replaces a file.
	if err := fsys.Put("/f", fileNode("new")); err != nil {
		t.Fatal(err)
	}
	if got := string(readAll(t, fsys.Get("/f").Content)); got != "new" {
		t.Errorf("/f reads %q after Put", got)
	}

	// A directory onto a directory merges: contents stay, metadata is the new one.
	d := dirNode(0o700)
	d.UID = 5
	if err := fsys.Put("/d", d); err != nil {
		t.Fatal(err)
	}
	if n := fsys.Get("/d"); n.Mode != 0o700 || n.UID != 5 || fsys.Get("/d/keep") == nil {
		t.Errorf("merged /d = %+v, keep = %v", n, fsys.Get("/d/keep"))
	}

	// A file onto a directory replaces it and its contents; so does a directory
	// onto a file.
	if err := fsys.Put("/g", fileNode("now a file")); err != nil {
		t.Fatal(err)
	}
	if fsys.Get("/g/child") != nil || fsys.Get("/g").Type != layerfs.TypeReg {
		t.Errorf("/g was not replaced by a file")
	}
	if err := fsys.Put("/h", dirNode(0o755)); err != nil {
		t.Fatal(err)
	}
	if fsys.Get("/h").Type != layerfs.TypeDir {
		t.Errorf("/h was not replaced by a directory")
	}

	// Put stores a copy: changing the caller's node changes nothing.
	n := fileNode("x")
	if err := fsys.Put("/copy", n); err != nil {
		t.Fatal(err)
	}
	n.Mode = 0o600
	if fsys.Get("/copy").Mode != 0o644 {
		t.Errorf("Put kept a reference to the caller's node")
	}

	want := []string{"/copy file", "/d directory", "/f file", "/g file", "/h directory"}
	if got := entries(fsys.Commit()); !slices.Equal(got, want) {
		t.Errorf("commit after Put:\n got %q\nwant %q", got, want)
	}

	fsys = build(t, "f /file x", "l /link d", "d /d")
	for p, want := range map[string]error{
		"/missing/x": fs.ErrNotExist,
		"/file/x":    syscall.ENOTDIR,
		"/link/x":    syscall.ENOTDIR, // never written through a symlink
		"/":          nil,
	} {
		err := fsys.Put(p, fileNode("x"))
		var pe *fs.PathError
		if err == nil || !errors.As(err, &pe) || (want != nil && !errors.Is(err, want)) {
			t.Errorf("Put(%q) = %v, want a *fs.PathError (%v)", p, err, want)
		}
	}
	if fsys.Get("/d/x") != nil {
		t.Errorf("Put wrote through a symlink")
	}
	root := dirNode(0o700)
	if err := fsys.Put("/", root); err != nil || fsys.Get("/").Mode != 0o700 || fsys.Get("/d") == nil {
		t.Errorf("Put(/, dir) = %v; root %+v", err, fsys.Get("/"))
	}
}

// TestWhiteoutNames checks that the tree refuses names the layer format reserves.
func TestWhiteoutNames(t *testing.T) {
	fsys := build(t, "d /d")
	for _, p := range []string{"/.wh.x", "/d/.wh..wh..opq", "/d/.wh."} {
		if err := fsys.Put(p, fileNode("x")); err == nil {
			t.Errorf("Put(%q) succeeded", p)
		}
		if _, err := fsys.MkdirAll(p+"/sub", layerfs.Node{}); err == nil {
			t.Errorf("MkdirAll(%q) succeeded", p+"/sub")
		}
	}
	if err := fsys.Put("/d/x.wh.y", fileNode("x")); err != nil {
		t.Errorf("Put of a name merely containing .wh.: %v", err)
	}
}

func TestRemove(t *testing.T) {
	fsys := build(t, "d /d", "d /d/e", "f /d/e/f x", "f /g y", "l /l d")
	if err := fsys.Remove("/d"); err != nil {
		t.Fatal(err)
	}
	if fsys.Get("/d") != nil || fsys.Get("/d/e/f") != nil {
		t.Errorf("Remove(/d) left its contents")
	}
	if err := fsys.Remove("/l"); err != nil || fsys.Get("/l") != nil {
		t.Errorf("Remove(/l) = %v; a symlink is removed itself", err)
	}
	for _, p := range []string{"/d", "/missing", "/g/x", "/"} {
		err := fsys.Remove(p)
		if !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Remove(%q) = %v, want ErrNotExist", p, err)
		}
	}
	if fsys.Get("/g") == nil {
		t.Errorf("/g went away")
	}
}

// checkOrder checks that entries are unique, sorted as a walk would meet them, and
// that each one's parent directory, if not the root, comes before it.
func checkOrder(t *testing.T, c *layerfs.Changes) {
	t.Helper()
	seen := map[string]bool{}
	for i, e := range c.Entries {
		if seen[e.Path] {
			t.Errorf("entry %q twice", e.Path)
		}
		seen[e.Path] = true
		if d := path.Dir(e.Path); d != "/" && !seen[d] {
			t.Errorf("entry %q comes before its parent", e.Path)
		}
		if e.Whiteout != strings.HasPrefix(path.Base(e.Path), ".wh.") {
			t.Errorf("entry %q: Whiteout = %v", e.Path, e.Whiteout)
		}
		if i > 0 && c.Entries[i-1].Path == e.Path {
			t.Errorf("entries %d and %d are both %q", i-1, i, e.Path)
		}
	}
}

func TestCommit(t *testing.T) {
	fsys := build(t, "d /usr", "d /usr/bin", "f /usr/bin/sh sh", "f /etc-file e", "d /x", "f /x/a a",
		"d /gone", "f /gone/inner i", "d /opq", "f /opq/old o", "f /replaced r")
	first := fsys.Commit()
	checkOrder(t, first)
	want := []string{"/etc-file file", "/gone directory", "/gone/inner file", "/opq directory", "/opq/old file",
		"/replaced file", "/usr directory", "/usr/bin directory", "/usr/bin/sh file", "/x directory", "/x/a file"}
	if got := entries(first); !slices.Equal(got, want) {
		t.Errorf("first commit:\n got %q\nwant %q", got, want)
	}
	if got := entries(fsys.Commit()); len(got) != 0 {
		t.Errorf("commit without changes: %q", got)
	}

	// Parents are included, with their current metadata.
	if err := fsys.Put("/usr/bin/new", fileNode("n")); err != nil {
		t.Fatal(err)
	}
	fsys.SetMeta("/usr", func(n *layerfs.Node) { n.Mode = 0o750 })
	c := fsys.Commit()
	checkOrder(t, c)
	want = []string{"/usr directory", "/usr/bin directory", "/usr/bin/new file"}
	if got := entries(c); !slices.Equal(got, want) {
		t.Errorf("commit with a new file:\n got %q\nwant %q", got, want)
	}
	if c.Entries[0].Node.Mode != 0o750 {
		t.Errorf("/usr entry has mode %o, want 0750", c.Entries[0].Node.Mode)
	}
	if !c.Entries[1].Node.Stamped {
		t.Errorf("/usr/bin, whose contents changed, is not Stamped")
	}

	// Entries are snapshots.
	fsys.SetMeta("/usr", func(n *layerfs.Node) { n.Mode = 0o700; n.UID = 3 })
	if err := fsys.Put("/usr/bin/new", fileNode("other")); err != nil {
		t.Fatal(err)
	}
	if c.Entries[0].Node.Mode != 0o750 || c.Entries[0].Node.UID != 0 || c.Entries[2].Node.Size != 1 {
		t.Errorf("a committed entry changed with the tree: %+v %+v", c.Entries[0].Node, c.Entries[2].Node)
	}
	fsys.Commit()

	// Whiteouts only for paths that existed before the layer.
	mustRemove := func(p string) {
		t.Helper()
		if err := fsys.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
	// Existed: a whiteout each, one for a whole directory.
	mustRemove("/etc-file")
	mustRemove("/gone")
	// New, then removed: nothing.
	put(t, fsys, "/tmp", fileNode("t"))
	mustRemove("/tmp")
	// New, replaced, removed: still nothing.
	put(t, fsys, "/tmp2", fileNode("1"))
	put(t, fsys, "/tmp2", fileNode("2"))
	mustRemove("/tmp2")
	// A new directory tree, removed: nothing.
	if _, err := fsys.MkdirAll("/newdir/sub", layerfs.Node{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	mustRemove("/newdir/sub")
	mustRemove("/newdir")
	// Existed, in a directory that stays.
	mustRemove("/x/a")
	// Existed, replaced, removed: a whiteout.
	put(t, fsys, "/replaced", fileNode("again"))
	mustRemove("/replaced")

	// A directory removed and made again hides its old contents with an opaque marker.
	mustRemove("/opq")
	if _, err := fsys.MkdirAll("/opq", layerfs.Node{Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Put("/opq/new", fileNode("n")); err != nil {
		t.Fatal(err)
	}
	c = fsys.Commit()
	checkOrder(t, c)
	want = []string{
		"/.wh.etc-file wh", "/.wh.gone wh", "/.wh.replaced wh",
		"/opq directory", "/opq/.wh..wh..opq wh", "/opq/new file",
		"/x directory", "/x/.wh.a wh",
	}
	if got := entries(c); !slices.Equal(got, want) {
		t.Errorf("commit with removals:\n got %q\nwant %q", got, want)
	}
	for _, e := range c.Entries {
		if e.Whiteout && (e.Node.Type != layerfs.TypeReg || e.Node.Size != 0 || e.Node.Mode != 0) {
			t.Errorf("whiteout %s is %+v, want an empty regular file", e.Path, e.Node)
		}
	}

	// A directory replaced by a file and back: still an opaque directory, since the
	// old directory's contents are in a lower layer.
	if err := fsys.Put("/usr/bin", fileNode("f")); err != nil {
		t.Fatal(err)
	}
	if err := fsys.Put("/usr/bin", dirNode(0o755)); err != nil {
		t.Fatal(err)
	}
	// A file replaced by a directory needs no marker.
	if err := fsys.Put("/opq/new", dirNode(0o755)); err != nil {
		t.Fatal(err)
	}
	c = fsys.Commit()
	checkOrder(t, c)
	want = []string{"/opq directory", "/opq/new directory", "/usr directory", "/usr/bin directory", "/usr/bin/.wh..wh..opq wh"}
	if got := entries(c); !slices.Equal(got, want) {
		t.Errorf("commit with replaced directories:\n got %q\nwant %q", got, want)
	}
}

// TestCommitOrder checks the order within a directory: whiteouts first, then names in
// byte order, each directory right before its contents.
func TestCommitOrder(t *testing.T) {
	fsys := build(t, "f /b b", "f /z z")
	fsys.Commit()
	for _, s := range []string{"d /a", "f /a/x x", "d /a-b", "f /a-b/y y", "f /a.c c", "f /B B"} {
		kind, rest, _ := strings.Cut(s, " ")
		p, content, _ := strings.Cut(rest, " ")
		n := fileNode(content)
		if kind == "d" {
			n = dirNode(0o755)
		}
		if err := fsys.Put(p, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := fsys.Remove("/z"); err != nil {
		t.Fatal(err)
	}
	c := fsys.Commit()
	checkOrder(t, c)
	want := []string{"/.wh.z wh", "/B file", "/a directory", "/a/x file", "/a-b directory", "/a-b/y file", "/a.c file"}
	if got := entries(c); !slices.Equal(got, want) {
		t.Errorf("order:\n got %q\nwant %q", got, want)
	}
}

// TestHardLinkMeta checks that a hard-linked file leaves its group when its own
// metadata is changed, and stays in it otherwise.
func TestHardLinkMeta(t *testing.T) {
	fsys := layerfs.New()
	id := fsys.NewLinkGroup()
	if id == 0 || fsys.NewLinkGroup() == id {
		t.Fatalf("NewLinkGroup gave %d and then the same again", id)
	}
	for _, p := range []string{"/a", "/b", "/c"} {
		n := fileNode("shared")
		n.HardLink = id
		put(t, fsys, p, n)
	}
	fsys.SetMeta("/a", func(n *layerfs.Node) {}) // a change of nothing
	fsys.SetMeta("/b", func(n *layerfs.Node) { n.Mode = 0o600 })
	fsys.SetMeta("/c", func(n *layerfs.Node) { n.HardLink = 99 })
	for p, want := range map[string]uint64{"/a": id, "/b": 0, "/c": 99} {
		if got := fsys.Get(p).HardLink; got != want {
			t.Errorf("%s: HardLink %d, want %d", p, got, want)
		}
	}
}

// ResolveIn resolves as a chroot into a directory would: absolute targets and ".."
// stop at that directory.
func TestResolveIn(t *testing.T) {
	fsys := build(t,
		"d /r", "d /r/etc", "f /r/etc/f inner",
		"l /r/abs /etc", // absolute: /r/etc inside the chroot
		"l /r/up ../..", // clamped at /r
		"l /r/out ../a", // /r/a, not /a
		"d /a", "d /etc",
		"l /link r", // the root itself must be real
	)
	tests := []struct {
		in     string
		follow bool
		want   string
	}{
		{"", true, "/r"},
		{"/", true, "/r"},
		{"..", true, "/r"},
		{"../../etc/f", true, "/r/etc/f"},
		{"abs/f", true, "/r/etc/f"},
		{"abs", false, "/r/abs"},
		{"abs", true, "/r/etc"},
		{"up/etc", true, "/r/etc"},
		{"out/x", true, "/r/a/x"},
		{"/etc/../../x", true, "/r/x"},
	}
	for _, tt := range tests {
		got, err := fsys.ResolveIn("/r", tt.in, tt.follow)
		if err != nil || got != tt.want {
			t.Errorf("ResolveIn(/r, %q, %v) = %q, %v; want %q", tt.in, tt.follow, got, err, tt.want)
		}
	}
	if got, err := fsys.ResolveIn("/", "abs/f", true); err != nil || got != "/abs/f" {
		t.Errorf("ResolveIn(/, abs/f) = %q, %v; want /abs/f as Resolve", got, err)
	}
	for _, root := range []string{"/link", "/missing", "/r/etc/f"} {
		if _, err := fsys.ResolveIn(root, "x", true); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("ResolveIn(%q) = %v; want ENOTDIR: the root must be a real directory", root, err)
		}
	}
}

// Apply lays one tree over another as a layer would be unpacked: entries replace
// what is at their path (a symlink is replaced, not followed), directories merge
// and take the upper metadata, and hard links get groups of the lower tree.
func TestApply(t *testing.T) {
	lower := build(t,
		"d /tmp", "d /usr", "d /usr/bin", "f /usr/bin/sh sh",
		"l /bin usr/bin", "d /opt", "f /opt/old old", "f /file f",
	)
	lower.SetMeta("/tmp", func(n *layerfs.Node) { n.Mode = 0o1777 })
	lower.NewLinkGroup() // so the upper group number is taken already
	lower.Commit()
	upper := build(t, "d /tmp", "f /tmp/x x", "d /bin", "f /bin/tool t", "d /opt", "f /opt/new n", "d /file", "f /file/in i")
	g := upper.NewLinkGroup()
	for _, p := range []string{"/opt/a", "/opt/b"} {
		n := fileNode("linked")
		n.HardLink = g
		if err := upper.Put(p, n); err != nil {
			t.Fatal(err)
		}
	}
	upper.SetMeta("/opt", func(n *layerfs.Node) { n.Stamped, n.Mode = false, 0o700 })
	if err := lower.Apply(upper); err != nil {
		t.Fatal(err)
	}
	if n, u := lower.Get("/tmp"), upper.Get("/tmp"); n.Mode != 0o755 || n.Stamped != u.Stamped || !n.ModTime.Equal(u.ModTime) {
		t.Errorf("/tmp should take the upper directory's metadata: %+v", n)
	}
	if n := lower.Get("/bin"); n == nil || n.Type != layerfs.TypeDir || lower.Get("/bin/tool") == nil || lower.Get("/bin/sh") != nil {
		t.Errorf("/bin should be replaced by the upper directory: %+v", n)
	}
	if lower.Get("/usr/bin/tool") != nil {
		t.Error("the symlink /bin was followed")
	}
	if lower.Get("/opt/old") == nil || lower.Get("/opt/new") == nil {
		t.Error("/opt should merge")
	}
	if n := lower.Get("/opt"); n.Mode != 0o700 || n.Stamped {
		t.Errorf("/opt should keep the upper metadata although entries went into it: %+v", n)
	}
	if n := lower.Get("/file"); n == nil || !n.IsDir() {
		t.Errorf("/file should be a directory now: %+v", n)
	}
	a, b := lower.Get("/opt/a"), lower.Get("/opt/b")
	if a.HardLink == 0 || a.HardLink != b.HardLink || a.HardLink == g {
		t.Errorf("hard-link groups: %d, %d (upper's was %d, taken in the lower tree)", a.HardLink, b.HardLink, g)
	}
	// The layer holds the upper tree, and nothing else: no whiteouts for the
	// replaced symlink and file, whose new entries replace them when unpacked.
	got := entries(lower.Commit())
	want := []string{
		"/bin directory", "/bin/tool file", "/file directory", "/file/in file", "/opt directory",
		"/opt/a file", "/opt/b file", "/opt/new file", "/tmp directory", "/tmp/x file",
	}
	if !slices.Equal(got, want) {
		t.Errorf("layer entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// A directory replaced by a file, or a file by a directory, needs no whiteout: the
// new entry replaces the lower path when the layer is unpacked, which is what
// BuildKit's layers hold too (checked with Engine 20.10). A whiteout next to the new
// entry would make go-containerregistry's flattening drop the entry. Only a
// directory that was replaced and made again needs its old contents hidden.
func TestCommitTypeChanges(t *testing.T) {
	fsys := build(t, "d /d", "f /d/old o", "f /f f", "d /again", "f /again/old o")
	fsys.Commit()
	for _, step := range []struct {
		p string
		n *layerfs.Node
	}{
		{"/d", fileNode("was a directory")},
		{"/f", dirNode(0o755)},
		{"/f/new", fileNode("n")},
		{"/again", fileNode("for a moment")},
		{"/again", dirNode(0o755)},
		{"/again/new", fileNode("n")},
	} {
		if err := fsys.Put(step.p, step.n); err != nil {
			t.Fatal(err)
		}
	}
	got := entries(fsys.Commit())
	want := []string{"/again directory", "/again/.wh..wh..opq wh", "/again/new file", "/d file", "/f directory", "/f/new file"}
	if !slices.Equal(got, want) {
		t.Errorf("layer entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
