package interp

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
	"github.com/dfbuild/dfbuild/parser"
)

func TestSplitSources(t *testing.T) {
	f, err := parser.Parse(strings.NewReader("FROM scratch\nCOPY a <<EOF b <<-\"TWO\" /d/\none\nEOF\n\ttwo\n\tTWO\n"), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	in := f.Stages[0].Instructions[0].(*parser.Copy)
	paths, docs, err := splitSources(in)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(paths, " ") != "a b" || len(docs) != 2 || docs[0].Name != "EOF" || docs[1].Name != "TWO" ||
		docs[1].Content != "two\n" || docs[1].Expand || !docs[0].Expand {
		t.Errorf("got paths %q, docs %+v", paths, docs)
	}
}

// countingOpener counts how often a body is opened: copying must only refer to it.
type countingOpener struct {
	data  string
	opens int
}

func (c *countingOpener) open() (io.ReadCloser, error) {
	c.opens++
	return io.NopCloser(strings.NewReader(c.data)), nil
}

// stageTree builds the filesystem of a finished stage by hand: owners other than
// root, special modes, an absolute symlink, hard-linked files and a file whose body
// must never be read while copying.
func stageTree(t *testing.T, body *countingOpener) *layerfs.FS {
	t.Helper()
	f := layerfs.New()
	t0 := time.Unix(1600000000, 0)
	put := func(p string, n *layerfs.Node) {
		t.Helper()
		if err := f.Put(p, n); err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
	}
	dir := func(mode uint32, uid int) *layerfs.Node {
		return &layerfs.Node{Type: layerfs.TypeDir, Mode: mode, UID: uid, GID: uid, ModTime: t0}
	}
	g := f.NewLinkGroup()
	put("/app", dir(0o750, 1000))
	put("/app/bin", dir(0o755, 1000))
	put("/app/bin/tool", &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o4755, UID: 1000, GID: 50, ModTime: t0,
		Size: int64(len(body.data)), Content: body.open, HardLink: g})
	put("/app/bin/tool-link", &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o4755, UID: 1000, GID: 50, ModTime: t0,
		Size: int64(len(body.data)), Content: body.open, HardLink: g})
	put("/app/current", &layerfs.Node{Type: layerfs.TypeSymlink, Mode: 0o777, Target: "/data/real", ModTime: t0})
	put("/app/dev", &layerfs.Node{Type: layerfs.TypeChar, Mode: 0o600, Major: 1, Minor: 3, ModTime: t0})
	put("/data", dir(0o700, 0))
	put("/data/real", &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o640, UID: 33, GID: 33, ModTime: t0,
		Size: int64(len(body.data)), Content: body.open})
	// An escape attempt: the stage's root is the limit.
	put("/up", &layerfs.Node{Type: layerfs.TypeSymlink, Mode: 0o777, Target: "../../../data/real", ModTime: t0})
	f.Commit()
	return f
}

// testBuilder is a builder with just enough to run COPY against a stage.
func testBuilder(t *testing.T) (*builder, *stage) {
	t.Helper()
	b := &builder{ctx: context.Background(), ex: parser.NewExpander('\\'), tmp: t.TempDir(), res: &Result{}}
	st := &stage{fs: layerfs.New()}
	st.config.Config.WorkingDir = "/"
	return b, st
}

// layerListing commits the stage's changes and lists the layer they make.
func layerListing(t *testing.T, st *stage) string {
	t.Helper()
	l, err := st.fs.Commit().Layer(layerfs.TarOptions{BuildTime: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := l.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	s, err := imagetest.Listing(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// COPY --from's source side, without the stage machinery: the copy of a hand-built
// stage tree keeps owners, modes and hard links, follows a top-level symlink inside
// the stage's root, and never reads a file body.
func TestCopyFromFS(t *testing.T) {
	body := &countingOpener{data: "tool body\n"}
	from := newImageSource(stageTree(t, body), `the --from source "build"`)
	b, st := testBuilder(t)
	run := func(dest string, srcs ...string) {
		t.Helper()
		j := &copyJob{srcs: srcs, dest: dest, from: from}
		j.destIsDir, j.absDest = destPath(st, dest)
		if err := b.runCopy(st, j); err != nil {
			t.Fatalf("copy %v %s: %v", srcs, dest, err)
		}
	}
	run("/out/", "/app")
	run("/linked", "/app/current")
	run("/escaped", "up")
	if body.opens != 0 {
		t.Errorf("copying opened file bodies %d times; they must only be referred to", body.opens)
	}
	got := layerListing(t, st)
	for _, line := range []string{
		"d 0755 0:0 0 1600000000 out/",
		"d 0755 1000:1000 0 1600000000 out/bin/",
		"f 4755 1000:50 10 1600000000 out/bin/tool ",
		"h 4755 1000:50 0 1600000000 out/bin/tool-link -> out/bin/tool",
		"l 0777 0:0 0 1600000000 out/current -> /data/real",
		"c 0600 0:0 0 1600000000 out/dev 1,3",
		"f 0640 33:33 10 1600000000 linked ",
		"f 0640 33:33 10 1600000000 escaped ",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("layer lacks %q:\n%s", line, got)
		}
	}
	if body.opens == 0 {
		t.Error("writing the layer did not read the bodies")
	}
	// --chown and --chmod still apply to a stage's entries.
	b2, st2 := testBuilder(t)
	j := &copyJob{srcs: []string{"/app/bin/tool"}, dest: "/t", from: from,
		opts: copyOpts{chown: true, uid: 7, gid: 8, chmod: &chmodSpec{octal: true, mode: 0o700}}}
	j.destIsDir, j.absDest = destPath(st2, j.dest)
	if err := b2.runCopy(st2, j); err != nil {
		t.Fatal(err)
	}
	if got := layerListing(t, st2); !strings.Contains(got, "f 0700 7:8 10 1600000000 t ") {
		t.Errorf("with --chown and --chmod:\n%s", got)
	}
}

// tarEntry describes one entry of a hand-made archive.
type tarEntry struct {
	name, link, body string
	typ              byte
	mode             int64
	uid              int
	mtime            int64
}

func makeTar(t testing.TB, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		mt := e.mtime
		if mt == 0 {
			mt = 1600000000
		}
		h := &tar.Header{Typeflag: typ, Name: e.name, Linkname: e.link, Mode: mode, Uid: e.uid, Gid: e.uid,
			ModTime: time.Unix(mt, 0), Format: tar.FormatPAX}
		if typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, e.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// extractInto runs the extractor on data into dest of f, with bodies read from data.
func extractInto(f *layerfs.FS, dest string, data []byte) error {
	root, err := f.MkdirAll(dest, layerfs.Node{Mode: 0o755, Stamped: true})
	if err != nil {
		return err
	}
	x := &tarExtractor{fs: f, root: root, body: func(off, size int64) layerfs.Opener {
		return func() (io.ReadCloser, error) {
			return io.NopCloser(io.NewSectionReader(bytes.NewReader(data), off, size)), nil
		}
	}}
	return x.run(bytes.NewReader(data))
}

// baseTree is an image with a populated /sub, an absolute symlink to /run and files
// outside the destination that no archive may touch.
func baseTree(t testing.TB) *layerfs.FS {
	t.Helper()
	f := layerfs.New()
	t0 := time.Unix(1500000000, 0)
	for _, p := range []string{"/etc", "/run", "/sub", "/sub/dir", "/var"} {
		if err := f.Put(p, &layerfs.Node{Type: layerfs.TypeDir, Mode: 0o755, ModTime: t0}); err != nil {
			t.Fatal(err)
		}
	}
	for p, n := range map[string]*layerfs.Node{
		"/etc/passwd":      {Type: layerfs.TypeReg, Mode: 0o644, ModTime: t0, Size: 1, Content: stringOpener("x")},
		"/sub/dir/inner":   {Type: layerfs.TypeReg, Mode: 0o644, ModTime: t0, Size: 1, Content: stringOpener("i")},
		"/sub/file":        {Type: layerfs.TypeReg, Mode: 0o644, ModTime: t0, Size: 1, Content: stringOpener("f")},
		"/var/run":         {Type: layerfs.TypeSymlink, Mode: 0o777, ModTime: t0, Target: "/run"},
		"/sub/abs":         {Type: layerfs.TypeSymlink, Mode: 0o777, ModTime: t0, Target: "/etc"},
		"/sub/passwd-link": {Type: layerfs.TypeSymlink, Mode: 0o777, ModTime: t0, Target: "/etc/passwd"},
	} {
		if err := f.Put(p, n); err != nil {
			t.Fatal(err)
		}
	}
	f.Commit()
	return f
}

// outside lists the tree without what is below dest.
func outside(f *layerfs.FS, dest string) string {
	var b strings.Builder
	_ = f.Walk(func(p string, n *layerfs.Node) error {
		if p == dest || strings.HasPrefix(p, dest+"/") {
			return nil
		}
		fmt.Fprintf(&b, "%s %s %o %d:%d %s %v %s\n", p, n.Type, n.Mode, n.UID, n.GID, n.Target, n.ModTime.Unix(), readNode(n))
		return nil
	})
	return b.String()
}

func readNode(n *layerfs.Node) string {
	if n == nil || n.Content == nil {
		return ""
	}
	rc, err := n.Content()
	if err != nil {
		return "error"
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 64))
	return string(b)
}

func changedPaths(c *layerfs.Changes) []string {
	var out []string
	for _, e := range c.Entries {
		s := e.Path + " " + e.Node.Type.String()
		if e.Whiteout {
			s = e.Path + " whiteout"
		}
		out = append(out, s)
	}
	sort.Strings(out)
	return out
}

// Extraction is chrooted at the destination, as BuildKit's is: "..", absolute names
// and symlinks, from the image or from the archive, never lead out of it.
func TestExtractStaysInDestination(t *testing.T) {
	f := baseTree(t)
	before := outside(f, "/sub")
	data := makeTar(t,
		tarEntry{name: "../escape", body: "e"},
		tarEntry{name: "/abs/x", body: "a"},
		tarEntry{name: "abs/passwd", body: "through the image's absolute symlink"}, // abs -> /etc
		tarEntry{name: "passwd-link", body: "replaces the symlink, not /etc/passwd"},
		tarEntry{name: "up", typ: tar.TypeSymlink, link: ".."},
		tarEntry{name: "up/up/etc/myfile", body: "m"},
		tarEntry{name: "rootlink", typ: tar.TypeSymlink, link: "/"},
		tarEntry{name: "rootlink/viaroot", body: "v"},
		tarEntry{name: "hl", typ: tar.TypeLink, link: "../../escape"},
	)
	if err := extractInto(f, "/sub", data); err != nil {
		t.Fatal(err)
	}
	if after := outside(f, "/sub"); after != before {
		t.Errorf("the extraction changed the tree outside /sub:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	for p, want := range map[string]string{
		"/sub/escape":      "e",
		"/sub/etc/x":       "a",
		"/sub/etc/passwd":  "through the image's absolute symlink",
		"/sub/passwd-link": "replaces the symlink, not /etc/passwd",
		"/sub/etc/myfile":  "m",
		"/sub/viaroot":     "v",
		"/sub/hl":          "e",
	} {
		n := f.Get(p)
		if n == nil || n.Type != layerfs.TypeReg || readNode(n) != want {
			t.Errorf("%s: got %+v (%q), want a file holding %q", p, n, readNode(n), want)
		}
	}
	// /sub/abs is a symlink to /etc in the image: inside the chroot it names /sub/etc.
	if n := f.Get("/sub/abs"); n == nil || n.Type != layerfs.TypeSymlink {
		t.Errorf("/sub/abs should still be the image's symlink, got %+v", n)
	}
	for _, e := range f.Commit().Entries {
		if e.Path != "/sub" && !strings.HasPrefix(e.Path, "/sub/") {
			t.Errorf("layer entry %s is outside the destination", e.Path)
		}
	}
}

// With destination /, an absolute symlink in the image (var/run -> /run) is honoured
// (BuildKit's testDockerfileAddArchiveThroughAbsoluteSymlink).
func TestExtractThroughImageSymlink(t *testing.T) {
	f := baseTree(t)
	if err := extractInto(f, "/", makeTar(t, tarEntry{name: "var/run/pid", body: "1"})); err != nil {
		t.Fatal(err)
	}
	if n := f.Get("/run/pid"); n == nil || readNode(n) != "1" {
		t.Errorf("/run/pid: %+v", n)
	}
	if n := f.Get("/var/run"); n == nil || n.Type != layerfs.TypeSymlink {
		t.Errorf("/var/run should stay a symlink: %+v", n)
	}
}

// Replacements need no whiteout, except for a directory that is replaced and made
// again: its old contents must not show through.
func TestExtractReplacements(t *testing.T) {
	f := baseTree(t)
	data := makeTar(t,
		tarEntry{name: "dir", body: "a file over a populated directory"},
		tarEntry{name: "file", typ: tar.TypeDir, mode: 0o700, uid: 5},
		tarEntry{name: "file/new", body: "n"},
		tarEntry{name: "again", typ: tar.TypeDir},
		tarEntry{name: "again/x", body: "x"},
		tarEntry{name: "again", body: "file now"},
		tarEntry{name: "again", typ: tar.TypeDir},
		tarEntry{name: "again/y", body: "y"},
	)
	if err := extractInto(f, "/sub", data); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(changedPaths(f.Commit()), "\n")
	want := strings.Join([]string{
		"/sub directory",
		"/sub/again directory",
		"/sub/again/y file",
		"/sub/dir file",
		"/sub/file directory",
		"/sub/file/new file",
	}, "\n")
	if got != want {
		t.Errorf("layer entries:\n%s\nwant:\n%s", got, want)
	}
	// The same in an existing directory replaced and made again: an opaque whiteout.
	f = baseTree(t)
	if err := extractInto(f, "/sub", makeTar(t,
		tarEntry{name: "dir", body: "file"},
		tarEntry{name: "dir", typ: tar.TypeDir},
		tarEntry{name: "dir/z", body: "z"},
	)); err != nil {
		t.Fatal(err)
	}
	got = strings.Join(changedPaths(f.Commit()), "\n")
	want = "/sub directory\n/sub/dir directory\n/sub/dir/.wh..wh..opq whiteout\n/sub/dir/z file"
	if got != want {
		t.Errorf("layer entries:\n%s\nwant:\n%s", got, want)
	}
}

func TestExtractRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []tarEntry
		want    string
	}{
		{"whiteout", []tarEntry{{name: "a/.wh.b", body: "x"}}, "whiteouts"},
		{"opaque", []tarEntry{{name: "a/.wh..wh..opq"}}, "whiteouts"},
		{"missing link target", []tarEntry{{name: "l", typ: tar.TypeLink, link: "nowhere"}}, "no such file"},
		{"link to itself", []tarEntry{{name: "l", body: "x"}, {name: "l", typ: tar.TypeLink, link: "l"}}, "no such file"},
		{"link to a directory", []tarEntry{{name: "d", typ: tar.TypeDir}, {name: "l", typ: tar.TypeLink, link: "d"}}, "directory"},
		{"file as parent", []tarEntry{{name: "f", body: "x"}, {name: "f/g", body: "y"}}, "not a directory"},
		{"root as file", []tarEntry{{name: "..", body: "x"}}, "destination directory itself"},
		{"empty symlink", []tarEntry{{name: "s", typ: tar.TypeSymlink}}, "empty target"},
		{"negative owner", []tarEntry{{name: "f", body: "x", uid: -5}}, "invalid owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := baseTree(t)
			err := extractInto(f, "/sub", makeTar(t, tc.entries...))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want an error about %q", err, tc.want)
			}
		})
	}
	// An old GNU sparse file, which archive/tar cannot write: a GNU header whose type
	// is patched to 'S' (an empty sparse map), its checksum made again.
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: "s", Typeflag: tar.TypeReg, Format: tar.FormatGNU, ModTime: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	tw.Close()
	b := buf.Bytes()
	b[156] = tar.TypeGNUSparse
	copy(b[148:156], "        ")
	sum := 0
	for _, c := range b[:512] {
		sum += int(c)
	}
	copy(b[148:156], fmt.Sprintf("%06o\x00 ", sum))
	if err := extractInto(baseTree(t), "/sub", b); !errors.Is(err, errSparse) {
		t.Errorf("sparse entry: got %v, want %v", err, errSparse)
	}
}

// A hard link's header gives the shared file its metadata, and both names stay one
// file in the layer; the root entry "./" leaves the destination's metadata alone,
// "/" (the destination itself inside the chroot) sets it, as go-archive does.
func TestExtractLinksAndRoot(t *testing.T) {
	f := baseTree(t)
	if err := extractInto(f, "/sub", makeTar(t,
		tarEntry{name: "./", typ: tar.TypeDir, mode: 0o700, uid: 9},
		tarEntry{name: "a", body: "shared", mode: 0o600, uid: 1},
		tarEntry{name: "b", typ: tar.TypeLink, link: "a", mode: 0o4755, uid: 2},
	)); err != nil {
		t.Fatal(err)
	}
	if n := f.Get("/sub"); n.Mode != 0o755 || n.UID != 0 {
		t.Errorf("\"./\" changed the destination: %+v", n)
	}
	got := layerListing(t, &stage{fs: f})
	for _, line := range []string{
		"f 4755 2:2 6 1600000000 sub/a ",
		"h 4755 2:2 0 1600000000 sub/b -> sub/a",
	} {
		if !strings.Contains(got, line) {
			t.Errorf("layer lacks %q:\n%s", line, got)
		}
	}
	f = baseTree(t)
	if err := extractInto(f, "/sub", makeTar(t, tarEntry{name: "/", typ: tar.TypeDir, mode: 0o700, uid: 9, mtime: 1400000000})); err != nil {
		t.Fatal(err)
	}
	if n := f.Get("/sub"); n.Mode != 0o700 || n.UID != 9 || n.ModTime.Unix() != 1400000000 || n.Stamped {
		t.Errorf("\"/\" should set the destination's metadata: %+v", n)
	}
}

// FuzzExtractTar: whatever the archive holds, extraction neither panics nor changes
// anything outside the destination, and the layer it makes can be written.
func FuzzExtractTar(f *testing.F) {
	f.Add(makeTar(f, tarEntry{name: "../../x", body: "x"}, tarEntry{name: "l", typ: tar.TypeSymlink, link: "../.."},
		tarEntry{name: "l/y", body: "y"}))
	f.Add(makeTar(f, tarEntry{name: "abs/z", body: "z"}, tarEntry{name: "h", typ: tar.TypeLink, link: "/abs/z"},
		tarEntry{name: "d", typ: tar.TypeDir}, tarEntry{name: "d", body: "now a file"}))
	f.Add(makeTar(f, tarEntry{name: "/", typ: tar.TypeDir}, tarEntry{name: "dir", body: "over a directory"},
		tarEntry{name: "c", typ: tar.TypeChar}, tarEntry{name: "p", typ: tar.TypeFifo}))
	f.Add([]byte("not a tar at all"))
	f.Fuzz(func(t *testing.T, data []byte) {
		tree := baseTree(t)
		before := outside(tree, "/sub")
		err := extractInto(tree, "/sub", data)
		if after := outside(tree, "/sub"); after != before {
			t.Fatalf("extraction (error %v) changed the tree outside /sub:\nbefore:\n%s\nafter:\n%s", err, before, after)
		}
		if err != nil {
			return
		}
		ch := tree.Commit()
		for _, e := range ch.Entries {
			if e.Path != "/sub" && !strings.HasPrefix(e.Path, "/sub/") {
				t.Fatalf("layer entry %s is outside the destination", e.Path)
			}
		}
		l, err := ch.Layer(layerfs.TarOptions{BuildTime: time.Unix(1700000000, 0)})
		if err != nil {
			t.Fatalf("layer: %v", err)
		}
		if _, err := l.WriteTo(io.Discard); err != nil {
			t.Fatalf("writing the layer: %v", err)
		}
	})
}

func TestSourceKinds(t *testing.T) {
	for _, tc := range []struct {
		src        string
		git, http  bool
		name       string
		wantNameOK bool
	}{
		{src: "https://example.com/dir/file.tar.gz", http: true, name: "file.tar.gz"},
		{src: "http://example.com/a%20b.txt?x=1#frag", http: true, name: "a b.txt"},
		{src: "https://example.com", http: true, name: "__unnamed__"},
		{src: "https://example.com/", http: true, name: "__unnamed__"},
		{src: "https://github.com/moby/buildkit.git", git: true},
		{src: "https://github.com/moby/buildkit.git#v0.34.2:frontend", git: true},
		{src: "git://example.com/repo", git: true},
		{src: "ssh://git@example.com/repo", git: true},
		{src: "git@github.com:moby/buildkit.git", git: true},
		{src: "HTTP://example.com/file"},
		{src: "ftp://example.com/file"},
		{src: "github.com/moby/buildkit"},
		{src: "local/file.txt"},
	} {
		if got := isGitSource(tc.src); got != tc.git {
			t.Errorf("isGitSource(%q) = %v, want %v", tc.src, got, tc.git)
		}
		if got := isHTTPSource(tc.src); got != tc.http {
			t.Errorf("isHTTPSource(%q) = %v, want %v", tc.src, got, tc.http)
		}
		if tc.http {
			if got := urlFileName(tc.src); got != tc.name {
				t.Errorf("urlFileName(%q) = %q, want %q", tc.src, got, tc.name)
			}
		}
	}
}

func TestParseChecksum(t *testing.T) {
	for s, want := range map[string]string{
		"sha256:" + strings.Repeat("a", 64):  "",
		"sha512:" + strings.Repeat("0", 128): "",
		"sha384:" + strings.Repeat("f", 96):  "",
		"sha256:" + strings.Repeat("A", 64):  "format",
		"sha256:abc":                         "length",
		"md5:" + strings.Repeat("a", 32):     "unsupported",
		strings.Repeat("a", 64):              "format",
	} {
		_, err := parseChecksum(s)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("parseChecksum(%q) = %v, want %q", s, err, want)
		}
	}
}
