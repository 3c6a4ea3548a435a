package layerfs_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/dfbuild/dfbuild/layerfs"
)

// tent is one entry of a tarball built by a test.
type tent struct {
	hdr  tar.Header
	body string
	// typeflag, when set, overwrites the entry's type byte after archive/tar wrote
	// it, to produce entries archive/tar refuses to write (PAX 'x' headers, 'S').
	typeflag byte
}

func reg(name, body string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: t0}, body: body}
}

func dirEnt(name string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: t0}}
}

func symlinkEnt(name, target string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: t0}}
}

func hardlinkEnt(name, target string) tent {
	return tent{hdr: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: t0}}
}

// paxRecords encodes PAX extended header records, each "LEN key=value\n" where LEN
// counts the whole record including itself.
func paxRecords(kv ...string) string {
	var b strings.Builder
	for i := 0; i+1 < len(kv); i += 2 {
		rec := " " + kv[i] + "=" + kv[i+1] + "\n"
		n := len(rec)
		for len(strconv.Itoa(n))+len(rec) != n {
			n = len(strconv.Itoa(n)) + len(rec)
		}
		b.WriteString(strconv.Itoa(n) + rec)
	}
	return b.String()
}

// makeTar writes entries as a tar stream. A typeflag override patches the header
// block and its checksum.
func makeTar(t testing.TB, entries ...tent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing %q: %v", h.Name, err)
		}
		if e.typeflag != 0 { // WriteHeader has written the header block to buf
			blk := buf.Bytes()[buf.Len()-512:]
			blk[156] = e.typeflag
			copy(blk[148:156], "        ")
			sum := 0
			for _, c := range blk {
				sum += int(c)
			}
			copy(blk[148:156], fmt.Sprintf("%06o\x00 ", sum))
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatalf("writing %q: %v", h.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compressors produce each compression LoadRootfs detects; run reports that a
// command is missing by returning nil.
var compressors = []struct {
	c    layerfs.Compression
	comp func(t testing.TB, b []byte) []byte
}{
	{layerfs.Uncompressed, func(t testing.TB, b []byte) []byte { return b }},
	{layerfs.Gzip, func(t testing.TB, b []byte) []byte {
		var buf bytes.Buffer
		zw := gzip.NewWriter(&buf)
		zw.Write(b)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}},
	{layerfs.Bzip2, func(t testing.TB, b []byte) []byte {
		if _, err := exec.LookPath("bzip2"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("the bzip2 command is required under CI=true (.ci/run installs it)")
			}
			t.Skip("no bzip2 command")
		}
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(b)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("bzip2: %v", err)
		}
		return out
	}},
	{layerfs.Xz, func(t testing.TB, b []byte) []byte {
		var buf bytes.Buffer
		zw, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(b)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}},
	{layerfs.Zstd, func(t testing.TB, b []byte) []byte {
		var buf bytes.Buffer
		zw, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(b)
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		return buf.Bytes()
	}},
}

func writeTemp(t testing.TB, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "rootfs")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func load(t testing.TB, b []byte) (*layerfs.Rootfs, error) {
	t.Helper()
	return layerfs.LoadRootfs(writeTemp(t, b), t.TempDir())
}

// richTar has every kind of entry a base image may hold, with bodies placed after
// long names of both styles so that wrong offsets would show.
func richTar(t testing.TB) ([]byte, map[string]string) {
	longPAX := "./usr/share/" + strings.Repeat("p", 120) + "/file"
	longGNU := "usr/share/" + strings.Repeat("g", 130)
	gnu := reg(longGNU, "after a GNU long name\n")
	gnu.hdr.Format = tar.FormatGNU
	pax := reg(longPAX, "after a PAX long name\n")
	pax.hdr.Format = tar.FormatPAX
	global := tent{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "pax_global_header",
		PAXRecords: map[string]string{"comment": "made by a test"}}}
	tb := makeTar(t,
		global,
		dirEnt("./"),
		dirEnt("./etc/"),
		reg("./etc/hostname", "box\n"),
		reg("etc/empty", ""),
		pax,
		gnu,
		reg("usr/lib/implied/deep.so", strings.Repeat("\x7fELF", 300)),
		symlinkEnt("bin", "usr/bin"),
		symlinkEnt("etc/abs", "/usr/lib/implied/deep.so"),
		symlinkEnt("usr/lib/up", "../../etc/hostname"),
		hardlinkEnt("etc/hostname.hard", "./etc/hostname"),
		tent{hdr: tar.Header{Typeflag: tar.TypeChar, Name: "dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
		tent{hdr: tar.Header{Typeflag: tar.TypeFifo, Name: "dev/fifo", Mode: 0o600}},
		tent{hdr: tar.Header{Typeflag: tar.TypeBlock, Name: "dev/sda", Mode: 0o660, Devmajor: 8}},
		reg("zz-last", "the last body\n"),
	)
	want := map[string]string{
		"/etc/hostname":               "box\n",
		"/etc/hostname.hard":          "box\n",
		"/etc/empty":                  "",
		filepath.Clean("/" + longPAX): "after a PAX long name\n",
		"/" + longGNU:                 "after a GNU long name\n",
		"/usr/lib/implied/deep.so":    strings.Repeat("\x7fELF", 300),
		"/zz-last":                    "the last body\n",
	}
	return tb, want
}

func TestLoadRootfs(t *testing.T) {
	plain, want := richTar(t)
	for _, c := range compressors {
		name := string(c.c)
		if name == "" {
			name = "plain"
		}
		t.Run(name, func(t *testing.T) {
			input := c.comp(t, plain)
			spool := t.TempDir()
			file := writeTemp(t, input)
			r, err := layerfs.LoadRootfs(file, spool)
			if err != nil {
				t.Fatal(err)
			}
			if r.Compression != c.c {
				t.Errorf("Compression = %q, want %q", r.Compression, c.c)
			}

			// Contents read back through the openers.
			for p, body := range want {
				n := r.FS.Get(p)
				if n == nil || n.Type != layerfs.TypeReg {
					t.Errorf("%s: %+v, want a file", p, n)
					continue
				}
				if n.Size != int64(len(body)) {
					t.Errorf("%s: size %d, want %d", p, n.Size, len(body))
				}
				if got := string(readAll(t, n.Content)); got != body {
					t.Errorf("%s reads %q, want %q", p, got, body)
				}
			}
			// Reading a file twice gives the same bytes.
			if a, b := readAll(t, r.FS.Get("/zz-last").Content), readAll(t, r.FS.Get("/zz-last").Content); !bytes.Equal(a, b) {
				t.Errorf("two reads differ")
			}

			// The tree's other entries.
			checks := map[string]func(*layerfs.Node) bool{
				"/":                  func(n *layerfs.Node) bool { return n.Type == layerfs.TypeDir && n.Mode == 0o755 },
				"/usr":               func(n *layerfs.Node) bool { return n.Type == layerfs.TypeDir && n.Mode == 0o755 },
				"/usr/lib/implied":   func(n *layerfs.Node) bool { return n.Type == layerfs.TypeDir },
				"/bin":               func(n *layerfs.Node) bool { return n.Type == layerfs.TypeSymlink && n.Target == "usr/bin" },
				"/usr/lib/up":        func(n *layerfs.Node) bool { return n.Target == "../../etc/hostname" },
				"/dev/null":          func(n *layerfs.Node) bool { return n.Type == layerfs.TypeChar && n.Major == 1 && n.Minor == 3 },
				"/dev/sda":           func(n *layerfs.Node) bool { return n.Type == layerfs.TypeBlock && n.Major == 8 },
				"/dev/fifo":          func(n *layerfs.Node) bool { return n.Type == layerfs.TypeFIFO && n.Mode == 0o600 },
				"/etc/hostname.hard": func(n *layerfs.Node) bool { return n.Mode == 0o644 && n.ModTime.Equal(t0) },
			}
			for p, ok := range checks {
				if n := r.FS.Get(p); n == nil || !ok(n) {
					t.Errorf("%s: %+v", p, n)
				}
			}
			if a, b := r.FS.Get("/etc/hostname"), r.FS.Get("/etc/hostname.hard"); a.HardLink == 0 || a.HardLink != b.HardLink {
				t.Errorf("hard link pair in groups %d and %d", a.HardLink, b.HardLink)
			}
			if r.FS.Get("/zz-last").HardLink != 0 {
				t.Errorf("a lone file is in a link group")
			}
			if r.FS.Get("/pax_global_header") != nil {
				t.Errorf("the global header became an entry")
			}

			// A loaded tree has no pending changes.
			if c := r.FS.Commit(); len(c.Entries) != 0 {
				t.Errorf("loaded tree has changes: %v", entries(c))
			}

			// The layer is the decompressed stream.
			d, known := r.Layer.KnownDiffID()
			if !known || d != sha(plain) {
				t.Errorf("diff_id %s (known %v), want %s", d, known, sha(plain))
			}
			if c.c == layerfs.Uncompressed && d != sha(input) {
				t.Errorf("plain tarball: diff_id %s is not the file's sha256 %s", d, sha(input))
			}
			if got := writeLayer(t, r.Layer); !bytes.Equal(got, plain) {
				t.Errorf("layer bytes differ from the decompressed input (%d vs %d bytes)", len(got), len(plain))
			}
			spooled, _ := os.ReadDir(spool)
			if c.c == layerfs.Uncompressed && len(spooled) != 0 {
				t.Errorf("a plain tarball was spooled: %v", spooled)
			}
			if c.c != layerfs.Uncompressed && len(spooled) != 1 {
				t.Errorf("spool dir holds %d files, want 1", len(spooled))
			}
		})
	}
}

// TestLoadRootfsTrailing checks that bytes after the end-of-archive marker are part
// of the layer, so the diff_id is the whole file's.
func TestLoadRootfsTrailing(t *testing.T) {
	b := append(makeTar(t, reg("a", "a")), make([]byte, 10240)...)
	r, err := load(t, b)
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := r.Layer.KnownDiffID(); d != sha(b) || r.Layer.Size() != int64(len(b)) {
		t.Errorf("diff_id %s size %d, want %s %d", d, r.Layer.Size(), sha(b), len(b))
	}
	// No end-of-archive marker at all is accepted too, as tar readers do.
	b = makeTar(t, reg("a", "a"))
	b = b[:len(b)-1024]
	if _, err := load(t, b); err != nil {
		t.Errorf("tarball without end marker: %v", err)
	}
}

func TestLoadRootfsBad(t *testing.T) {
	sparsePAX := tent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "PaxHeaders/sparse", Mode: 0o644},
		typeflag: tar.TypeXHeader,
		body: paxRecords("GNU.sparse.major", "1", "GNU.sparse.minor", "0",
			"GNU.sparse.name", "sparse", "GNU.sparse.realsize", "4096")}
	sparsePAX.hdr.Size = int64(len(sparsePAX.body))
	sparseData := reg("GNUSparseFile.0/sparse", "1\n0\n5\n"+strings.Repeat("\x00", 506)+"hello")
	sparse00 := tent{hdr: tar.Header{Typeflag: tar.TypeReg, Name: "PaxHeaders/sparse0", Mode: 0o644},
		typeflag: tar.TypeXHeader,
		body: paxRecords("GNU.sparse.size", "4096", "GNU.sparse.numblocks", "1",
			"GNU.sparse.offset", "0", "GNU.sparse.numbytes", "5")}
	sparse00.hdr.Size = int64(len(sparse00.body))
	oldSparse := reg("old-sparse", "")
	oldSparse.hdr.Format = tar.FormatGNU
	oldSparse.typeflag = tar.TypeGNUSparse

	okTar := makeTar(t, reg("a", strings.Repeat("a", 2000)), reg("b", "b"))
	tests := []struct {
		name  string
		input []byte
		want  string // the error must contain this
	}{
		{"absolute", makeTar(t, reg("/etc/passwd", "x")), `entry "/etc/passwd": absolute path`},
		{"dotdot", makeTar(t, dirEnt("a/"), reg("a/../../b", "x")), `entry "a/../../b": ".." in the path`},
		{"dotdot-inside", makeTar(t, reg("a/../b", "x")), `entry "a/../b": ".." in the path`},
		{"whiteout", makeTar(t, dirEnt("etc/"), reg("etc/.wh.passwd", "")), `entry "etc/.wh.passwd": whiteout`},
		{"opaque", makeTar(t, dirEnt("etc/"), reg("etc/.wh..wh..opq", "")), `entry "etc/.wh..wh..opq": whiteout`},
		{"hardlink-missing", makeTar(t, hardlinkEnt("l", "missing")), `entry "l": hard link to "missing"`},
		{"hardlink-later", makeTar(t, hardlinkEnt("l", "f"), reg("f", "x")), `entry "l": hard link to "f"`},
		{"hardlink-dotdot", makeTar(t, reg("f", "x"), hardlinkEnt("l", "../f")), `entry "l": hard link to "../f": ".."`},
		{"hardlink-absolute", makeTar(t, reg("f", "x"), hardlinkEnt("l", "/f")), `entry "l": hard link to "/f": absolute`},
		{"hardlink-dir", makeTar(t, dirEnt("d/"), hardlinkEnt("l", "d")), `entry "l": hard link to "d"`},
		{"symlink-escape", makeTar(t, dirEnt("a/"), symlinkEnt("a/l", "../../etc/passwd")), `entry "a/l": symlink to "../../etc/passwd" points outside the root`},
		{"symlink-escape-top", makeTar(t, symlinkEnt("l", "..")), `entry "l": symlink to ".." points outside`},
		{"duplicate", makeTar(t, reg("a", "1"), reg("a", "2")), `entry "a": duplicate path`},
		{"duplicate-spelled", makeTar(t, reg("./a", "1"), reg("a", "2")), `entry "a": duplicate path`},
		{"duplicate-dir", makeTar(t, dirEnt("d/"), dirEnt("./d")), `entry "./d": duplicate path`},
		{"duplicate-root", makeTar(t, dirEnt("./"), dirEnt(".")), `entry ".": duplicate path`},
		{"root-not-dir", makeTar(t, reg(".", "")), `entry ".": the root entry must be a directory`},
		{"through-symlink", makeTar(t, dirEnt("d/"), symlinkEnt("l", "d"), reg("l/f", "x")), `entry "l/f": its parent "/l" is not a directory`},
		{"through-symlink-deep", makeTar(t, dirEnt("d/"), symlinkEnt("l", "d"), reg("l/sub/f", "x")), `entry "l/sub/f"`},
		{"under-file", makeTar(t, reg("f", "x"), reg("f/g", "y")), `entry "f/g"`},
		{"gnu-sparse", makeTar(t, oldSparse), `entry "old-sparse": sparse files are not supported`},
		{"pax-sparse-1.0", makeTar(t, sparsePAX, sparseData), `entry "sparse": sparse files are not supported`},
		{"pax-sparse-0.0", makeTar(t, sparse00, reg("sparse0", "hello")), `entry "sparse0": sparse files are not supported`},
		{"socket-like-type", makeTar(t, tent{hdr: tar.Header{Typeflag: 'Z', Name: "odd"}}), `entry "odd": unsupported tar entry type`},
		{"not-a-tar", []byte(strings.Repeat("this is not a tarball\n", 100)), "not a tar archive"},
		{"short-garbage", []byte("garbage"), "not a tar archive"},
		{"empty-file", nil, "not a tar archive: no entries"},
		{"only-zeros", make([]byte, 1024), "not a tar archive: no entries"},
		{"truncated-body", okTar[:1000], `reading entry 2, after "a"`},
		{"truncated-header", okTar[:512+2048+100], `reading entry 2, after "a": unexpected EOF`},
		{"truncated-gzip", compressors[1].comp(t, okTar)[:100], "unexpected EOF"},
		{"bad-gzip", append([]byte{0x1f, 0x8b, 0x08}, bytes.Repeat([]byte{0xff}, 100)...), "gzip"},
		{"bad-zstd", append([]byte{0x28, 0xb5, 0x2f, 0xfd}, bytes.Repeat([]byte{0xff}, 100)...), "not a tar archive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := load(t, tt.input)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("LoadRootfs = %v, want an error containing %s", err, tt.want)
			}
		})
	}

	if _, err := layerfs.LoadRootfs(filepath.Join(t.TempDir(), "missing"), t.TempDir()); err == nil {
		t.Errorf("LoadRootfs of a missing file succeeded")
	}
}

// TestLoadRootfsFine covers odd but harmless tarballs.
func TestLoadRootfsFine(t *testing.T) {
	tests := []struct {
		name    string
		input   []byte
		present []string
	}{
		{"dot-slash", makeTar(t, dirEnt("./a/"), reg("./a/b", "b"), reg("./c", "c")), []string{"/a", "/a/b", "/c"}},
		{"root-entry", makeTar(t, dirEnt("./"), reg("f", "")), []string{"/", "/f"}},
		{"root-dot", makeTar(t, dirEnt("."), reg("f", "")), []string{"/f"}},
		{"implied-parents", makeTar(t, reg("a/b/c/d", "d"), dirEnt("a/b/")), []string{"/a", "/a/b", "/a/b/c", "/a/b/c/d"}},
		{"global-header", makeTar(t, tent{hdr: tar.Header{Typeflag: tar.TypeXGlobalHeader, Name: "g",
			PAXRecords: map[string]string{"comment": "x"}}}, reg("f", "f")), []string{"/f"}},
		{"double-slash", makeTar(t, reg("a//b", "b")), []string{"/a/b"}},
		{"symlink-abs", makeTar(t, symlinkEnt("l", "/etc/../../x")), []string{"/l"}},
		{"symlink-dotdot-inside", makeTar(t, dirEnt("a/"), dirEnt("a/b/"), symlinkEnt("a/b/l", "../../x")), []string{"/a/b/l"}},
		{"hardlink-chain", makeTar(t, reg("f", "body"), hardlinkEnt("g", "f"), hardlinkEnt("h", "g")), []string{"/f", "/g", "/h"}},
		{"dotwh-inside-name", makeTar(t, reg("a.wh.b", "x")), []string{"/a.wh.b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := load(t, tt.input)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range tt.present {
				if r.FS.Get(p) == nil {
					t.Errorf("%s missing", p)
				}
			}
			if got := writeLayer(t, r.Layer); !bytes.Equal(got, tt.input) {
				t.Errorf("layer bytes differ from the input")
			}
		})
	}
	r, err := load(t, makeTar(t, reg("f", "body"), hardlinkEnt("g", "f"), hardlinkEnt("h", "g")))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(readAll(t, r.FS.Get("/h").Content)); got != "body" {
		t.Errorf("hard link of a hard link reads %q", got)
	}
}

// TestLoadRootfsDirTimes checks that directories keep the times their entries give
// them although entries were added below them, and that only the parents the
// tarball implies take the build time: a later commit that lists an unchanged
// parent writes it as the tarball had it.
func TestLoadRootfsDirTimes(t *testing.T) {
	r, err := load(t, makeTar(t, dirEnt("usr/"), dirEnt("usr/local/"), reg("usr/local/f", "f"), reg("implied/f", "f")))
	if err != nil {
		t.Fatal(err)
	}
	for p, stamped := range map[string]bool{"/usr": false, "/usr/local": false, "/implied": true} {
		if n := r.FS.Get(p); n == nil || n.Stamped != stamped {
			t.Errorf("%s: %+v, want Stamped %v", p, n, stamped)
		}
	}
	if err := r.FS.Put("/usr/local/g", fileNode("g")); err != nil {
		t.Fatal(err)
	}
	c := r.FS.Commit()
	if got := entries(c); strings.Join(got, ", ") != "/usr directory, /usr/local directory, /usr/local/g file" {
		t.Fatalf("commit: %v", got)
	}
	if n := c.Entries[0].Node; n.Stamped || !n.ModTime.Equal(t0) {
		t.Errorf("/usr in the commit: %+v, want its time from the tarball", n)
	}
}
