package layerfs_test

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/tar")

var (
	buildTime = time.Date(2024, 6, 1, 0, 0, 0, 0, time.UTC)
	clampTime = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)
)

// tarCase builds a tree, commits it as many times as it likes and returns the
// changes whose layer is the case's subject.
type tarCase struct {
	name  string
	opts  layerfs.TarOptions
	build func(t *testing.T) *layerfs.Changes
}

func put(t *testing.T, fsys *layerfs.FS, p string, n *layerfs.Node) {
	t.Helper()
	if err := fsys.Put(p, n); err != nil {
		t.Fatal(err)
	}
}

var tarCases = []tarCase{
	{
		name: "basic",
		opts: layerfs.TarOptions{BuildTime: buildTime},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := build(t, "d /etc", "f /etc/hostname box\n", "d /usr", "d /usr/bin", "f /usr/bin/sh #!/bin/sh\n",
				"l /bin usr/bin", "l /etc/abs /usr/bin/sh")
			put(t, fsys, "/dev", dirNode(0o755))
			put(t, fsys, "/dev/null", &layerfs.Node{Type: layerfs.TypeChar, Mode: 0o666, Major: 1, Minor: 3, ModTime: t0})
			put(t, fsys, "/dev/sda", &layerfs.Node{Type: layerfs.TypeBlock, Mode: 0o660, Major: 8, ModTime: t0})
			put(t, fsys, "/dev/fifo", &layerfs.Node{Type: layerfs.TypeFIFO, Mode: 0o600, ModTime: t0})
			put(t, fsys, "/tmp", &layerfs.Node{Type: layerfs.TypeDir, Mode: 0o1777, ModTime: t0})
			put(t, fsys, "/usr/bin/su", &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o4755, UID: 0, GID: 0, ModTime: t0,
				Size: 3, Content: opener([]byte("su\n"))})
			put(t, fsys, "/home", &layerfs.Node{Type: layerfs.TypeDir, Mode: 0o750, UID: 1000, GID: 1000, ModTime: t0})
			return fsys.Commit()
		},
	},
	{
		name: "long-names",
		opts: layerfs.TarOptions{BuildTime: buildTime},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := layerfs.New()
			long := strings.Repeat("d", 99)                     // a directory whose name with "/" is 100 bytes
			deep := "/" + long + "/" + strings.Repeat("f", 150) // 251 bytes
			put(t, fsys, "/"+long, dirNode(0o755))
			put(t, fsys, deep, fileNode("deep"))
			put(t, fsys, "/"+strings.Repeat("x", 100), fileNode("exactly 100"))
			put(t, fsys, "/"+strings.Repeat("y", 255), fileNode(""))
			put(t, fsys, "/link", linkNode(deep+"/"+strings.Repeat("t", 120)))
			return fsys.Commit()
		},
	},
	{
		name: "unicode",
		opts: layerfs.TarOptions{BuildTime: buildTime},
		build: func(t *testing.T) *layerfs.Changes {
			return build(t, "d /données", "f /données/日本語.txt こんにちは", "l /données/ссылка 日本語.txt",
				"f /emoji-🐳 whale", "f /tab\tand space x").Commit()
		},
	},
	{
		name: "big-ids",
		opts: layerfs.TarOptions{BuildTime: buildTime},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := layerfs.New()
			for _, id := range []int{0, 65534, 2097151, 2097152, 1 << 30, 1<<31 - 1} {
				n := fileNode(fmt.Sprint(id))
				n.UID, n.GID = id, id
				put(t, fsys, fmt.Sprintf("/id-%d", id), n)
			}
			d := dirNode(0o755)
			d.UID, d.GID = 1<<25, 7
			put(t, fsys, "/bigdir", d)
			return fsys.Commit()
		},
	},
	{
		name: "empty-files",
		opts: layerfs.TarOptions{BuildTime: buildTime},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := layerfs.New()
			put(t, fsys, "/nil-content", &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o644, ModTime: t0})
			put(t, fsys, "/empty-opener", fileNode(""))
			put(t, fsys, "/a", fileNode("a"))
			put(t, fsys, "/block", fileNode(strings.Repeat("b", 512)))
			put(t, fsys, "/block+1", fileNode(strings.Repeat("c", 513)))
			return fsys.Commit()
		},
	},
	{
		name: "whiteouts",
		opts: layerfs.TarOptions{BuildTime: buildTime, Clamp: &clampTime},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := build(t, "d /etc", "f /etc/old o", "f /etc/keep k", "d /var", "d /var/cache", "f /var/cache/x x",
				"f /top t", "d /"+strings.Repeat("w", 120), "f /"+strings.Repeat("w", 120)+"/f f")
			fsys.Commit()
			for _, p := range []string{"/etc/old", "/top", "/var/cache", "/" + strings.Repeat("w", 120) + "/f"} {
				if err := fsys.Remove(p); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := fsys.MkdirAll("/var/cache", layerfs.Node{Mode: 0o755, Stamped: true}); err != nil {
				t.Fatal(err)
			}
			put(t, fsys, "/var/cache/new", fileNode("n"))
			return fsys.Commit()
		},
	},
	{
		name: "times",
		opts: layerfs.TarOptions{BuildTime: buildTime, Clamp: &clampTime},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := layerfs.New()
			at := func(p string, tm time.Time, stamped bool) {
				n := fileNode(p)
				n.ModTime, n.Stamped = tm, stamped
				put(t, fsys, p, n)
			}
			at("/before-clamp", time.Date(2020, 1, 1, 0, 0, 0, 999_999_999, time.UTC), false)
			at("/after-clamp", time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC), false)
			at("/stamped", time.Date(2001, 1, 1, 0, 0, 0, 0, time.UTC), true)
			at("/epoch", time.Unix(0, 0), false)
			at("/subsecond", time.Date(2022, 2, 2, 2, 2, 2, 500_000_000, time.UTC), false)
			if _, err := fsys.MkdirAll("/new/dir", layerfs.Node{Mode: 0o755, Stamped: true}); err != nil {
				t.Fatal(err)
			}
			return fsys.Commit()
		},
	},
	{
		name: "no-clamp",
		opts: layerfs.TarOptions{BuildTime: time.Date(2024, 6, 1, 0, 0, 0, 750_000_000, time.UTC)},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := layerfs.New()
			n := fileNode("late")
			n.ModTime = time.Date(2030, 1, 1, 0, 0, 0, 123, time.UTC)
			put(t, fsys, "/late", n)
			if _, err := fsys.MkdirAll("/stamped-dir", layerfs.Node{Mode: 0o755, Stamped: true}); err != nil {
				t.Fatal(err)
			}
			return fsys.Commit()
		},
	},
	{
		name: "parents",
		opts: layerfs.TarOptions{BuildTime: buildTime},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := build(t, "d /a", "d /a/b", "d /a/b/c", "f /a/b/c/old o", "d /z", "f /z/z z")
			fsys.SetMeta("/a/b", func(n *layerfs.Node) { n.Mode, n.UID = 0o700, 42 })
			fsys.Commit()
			put(t, fsys, "/a/b/c/new", fileNode("new"))
			return fsys.Commit()
		},
	},
	{
		name: "hardlinks",
		opts: layerfs.TarOptions{BuildTime: buildTime},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := build(t, "d /bin", "d /usr")
			id := fsys.NewLinkGroup()
			for _, p := range []string{"/usr/z-first-in-walk", "/bin/busybox", "/bin/sh", "/usr/" + strings.Repeat("l", 110)} {
				n := fileNode("#!busybox\n")
				n.HardLink = id
				put(t, fsys, p, n)
			}
			lone := fileNode("alone")
			lone.HardLink = fsys.NewLinkGroup()
			put(t, fsys, "/lone", lone)
			return fsys.Commit()
		},
	},
	{
		name: "hardlinks-partial",
		opts: layerfs.TarOptions{BuildTime: buildTime},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := build(t, "d /bin")
			id := fsys.NewLinkGroup()
			for _, p := range []string{"/bin/a", "/bin/b"} {
				n := fileNode("shared")
				n.HardLink = id
				put(t, fsys, p, n)
			}
			fsys.Commit()
			// Only /bin/c, a new link of the group, is in the next layer: its partners
			// are in the layer below, so it is written as a file.
			n := fileNode("shared")
			n.HardLink = id
			put(t, fsys, "/bin/c", n)
			return fsys.Commit()
		},
	},
	{
		name: "empty-layer",
		opts: layerfs.TarOptions{BuildTime: buildTime},
		build: func(t *testing.T) *layerfs.Changes {
			fsys := build(t, "f /a a")
			fsys.Commit()
			return fsys.Commit()
		},
	},
}

// writeLayer writes l and checks that WriteTo's count, Size and the bytes agree.
func writeLayer(t *testing.T, l *layerfs.Layer) []byte {
	t.Helper()
	var buf bytes.Buffer
	n, err := l.WriteTo(&buf)
	if err != nil {
		t.Fatalf("WriteTo: %v", err)
	}
	if n != int64(buf.Len()) || l.Size() != n {
		t.Fatalf("Size() = %d, WriteTo returned %d, wrote %d bytes", l.Size(), n, buf.Len())
	}
	return buf.Bytes()
}

func sha(b []byte) layerfs.Digest {
	s := sha256.Sum256(b)
	return layerfs.Digest("sha256:" + hex.EncodeToString(s[:]))
}

func TestLayerGolden(t *testing.T) {
	for _, tc := range tarCases {
		t.Run(tc.name, func(t *testing.T) {
			changes := tc.build(t)
			l, err := changes.Layer(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if _, known := l.KnownDiffID(); known {
				t.Errorf("a layer built from changes knows its diff_id before it is written")
			}
			got := writeLayer(t, l)

			// The diff_id is the sha256 of the bytes, and known once written.
			if d, known := l.KnownDiffID(); !known || d != sha(got) {
				t.Errorf("KnownDiffID = %s, %v; want %s", d, known, sha(got))
			}
			if err := sha(got).Validate(); err != nil {
				t.Error(err)
			}

			// Determinism: the same layer again, and a new layer from the same changes.
			if again := writeLayer(t, l); !bytes.Equal(got, again) {
				t.Errorf("second write differs")
			}
			l2, err := changes.Layer(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if d, err := l2.DiffID(); err != nil || d != sha(got) {
				t.Errorf("DiffID of a fresh layer = %s, %v; want %s", d, err, sha(got))
			}
			if again := writeLayer(t, l2); !bytes.Equal(got, again) {
				t.Errorf("a layer made again from the same changes differs")
			}

			checkLayerRules(t, got)

			listing, err := imagetest.Listing(bytes.NewReader(got))
			if err != nil {
				t.Fatalf("Listing: %v", err)
			}
			out := fmt.Sprintf("# %d bytes\n%s", len(got), listing)
			wantFile := filepath.Join("testdata", "tar", tc.name+".want")
			if *update {
				if err := os.MkdirAll(filepath.Dir(wantFile), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(wantFile, []byte(out), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if string(want) != out {
				t.Errorf("%s differs:\n--- got\n%s--- want\n%s", wantFile, out, want)
			}
		})
	}
}

// checkLayerRules reads a layer tar and checks the conventions of the layers Docker
// and BuildKit write, which the package doc promises: relative names, directories
// ending in "/", one entry per path, parents first, no names or access/change times,
// whole-second mtimes, and whiteouts as mode-0 empty files at the epoch.
func checkLayerRules(t *testing.T, b []byte) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	seen := map[string]bool{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading the layer: %v", err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		switch {
		case strings.HasPrefix(h.Name, "/") || strings.HasPrefix(h.Name, "./") || h.Name == "":
			t.Errorf("entry %q: not a clean relative name", h.Name)
		case (h.Typeflag == tar.TypeDir) != strings.HasSuffix(h.Name, "/"):
			t.Errorf("entry %q: directory names, and only they, end in /", h.Name)
		case seen[name]:
			t.Errorf("entry %q appears twice", h.Name)
		}
		seen[name] = true
		if i := strings.LastIndex(name, "/"); i >= 0 && !seen[name[:i]] {
			t.Errorf("entry %q comes before its parent", h.Name)
		}
		if h.Uname != "" || h.Gname != "" || !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() {
			t.Errorf("entry %q has names or atime/ctime", h.Name)
		}
		if h.ModTime.Nanosecond() != 0 {
			t.Errorf("entry %q has a sub-second mtime %v", h.Name, h.ModTime)
		}
		base := name[strings.LastIndex(name, "/")+1:]
		if strings.HasPrefix(base, ".wh.") {
			if h.Typeflag != tar.TypeReg || h.Mode != 0 || h.Size != 0 || h.ModTime.Unix() != 0 || h.Uid != 0 || h.Gid != 0 {
				t.Errorf("whiteout %q: type %c mode %o size %d mtime %d, want an empty mode-0 file at the epoch",
					h.Name, h.Typeflag, h.Mode, h.Size, h.ModTime.Unix())
			}
		}
		n, err := io.Copy(io.Discard, tr)
		if err != nil || n != h.Size {
			t.Errorf("entry %q: read %d bytes of %d: %v", h.Name, n, h.Size, err)
		}
	}
}

// TestLayerTimes checks TarOptions one rule at a time.
func TestLayerTimes(t *testing.T) {
	mtimes := func(opts layerfs.TarOptions, nodes map[string]*layerfs.Node) map[string]int64 {
		t.Helper()
		fsys := layerfs.New()
		for p, n := range nodes {
			put(t, fsys, p, n)
		}
		l, err := fsys.Commit().Layer(opts)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int64{}
		tr := tar.NewReader(bytes.NewReader(writeLayer(t, l)))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			out[h.Name] = h.ModTime.Unix()
			if h.ModTime.Nanosecond() != 0 {
				t.Errorf("%s: sub-second mtime", h.Name)
			}
		}
	}
	at := func(tm time.Time, stamped bool) *layerfs.Node {
		n := fileNode("x")
		n.ModTime, n.Stamped = tm, stamped
		return n
	}
	early := time.Date(2000, 1, 1, 0, 0, 0, 900_000_000, time.UTC)
	late := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	nodes := map[string]*layerfs.Node{"/early": at(early, false), "/late": at(late, false), "/stamped": at(early, true)}

	got := mtimes(layerfs.TarOptions{BuildTime: buildTime}, nodes)
	want := map[string]int64{"early": early.Unix(), "late": late.Unix(), "stamped": buildTime.Unix()}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("without clamp: %s mtime %d, want %d", k, got[k], v)
		}
	}
	got = mtimes(layerfs.TarOptions{BuildTime: buildTime, Clamp: &clampTime}, nodes)
	want = map[string]int64{"early": early.Unix(), "late": clampTime.Unix(), "stamped": clampTime.Unix()}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("with clamp: %s mtime %d, want %d", k, got[k], v)
		}
	}
	// A sub-second clamp is truncated like everything else.
	fine := clampTime.Add(300 * time.Millisecond)
	got = mtimes(layerfs.TarOptions{BuildTime: late, Clamp: &fine}, map[string]*layerfs.Node{"/s": at(early, true)})
	if got["s"] != clampTime.Unix() {
		t.Errorf("sub-second clamp: mtime %d, want %d", got["s"], clampTime.Unix())
	}
}

// changingOpener returns bodies of the given sizes on successive opens.
func changingOpener(sizes ...int) layerfs.Opener {
	i := 0
	return func() (io.ReadCloser, error) {
		n := sizes[min(i, len(sizes)-1)]
		i++
		return io.NopCloser(bytes.NewReader(bytes.Repeat([]byte("z"), n))), nil
	}
}

// TestLayerFileChanged checks that a body that no longer matches its recorded size
// makes the write fail instead of producing a corrupt tar.
func TestLayerFileChanged(t *testing.T) {
	tests := []struct {
		name    string
		node    layerfs.Node
		wantErr string
	}{
		{"shrank", layerfs.Node{Size: 10, Content: changingOpener(4)}, "shrank"},
		{"grew", layerfs.Node{Size: 10, Content: changingOpener(11)}, "grew"},
		{"grew a lot", layerfs.Node{Size: 10, Content: changingOpener(5000)}, "grew"},
		{"emptied", layerfs.Node{Size: 600, Content: changingOpener(0)}, "shrank"},
		{"no contents", layerfs.Node{Size: 3}, "no contents"},
		{"open fails", layerfs.Node{Size: 3, Content: func() (io.ReadCloser, error) {
			return nil, errors.New("permission denied")
		}}, "permission denied"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := layerfs.New()
			n := tt.node
			n.Type, n.Mode = layerfs.TypeReg, 0o644
			put(t, fsys, "/dir", dirNode(0o755))
			put(t, fsys, "/dir/f", &n)
			l, err := fsys.Commit().Layer(layerfs.TarOptions{BuildTime: buildTime})
			if err != nil {
				t.Fatal(err)
			}
			_, err = l.WriteTo(io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !strings.Contains(err.Error(), "/dir/f") {
				t.Errorf("WriteTo = %v, want an error about /dir/f containing %q", err, tt.wantErr)
			}
			if _, known := l.KnownDiffID(); known {
				t.Errorf("a failed write recorded a diff_id")
			}
		})
	}

	// A file that changes between two writes of the same layer: the second write
	// notices the size, even though the first one succeeded.
	fsys := layerfs.New()
	put(t, fsys, "/f", &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o644, Size: 4, Content: changingOpener(4, 5)})
	l, err := fsys.Commit().Layer(layerfs.TarOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.WriteTo(io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := l.WriteTo(io.Discard); err == nil {
		t.Errorf("second write of a changed file succeeded")
	}
}

// TestLayerSameSizeChange checks that a body changed in place, same size, is caught
// by the diff_id once the layer has been written.
func TestLayerSameSizeChange(t *testing.T) {
	body := []byte("aaaa")
	fsys := layerfs.New()
	put(t, fsys, "/f", &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o644, Size: 4,
		Content: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }})
	l, err := fsys.Commit().Layer(layerfs.TarOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.DiffID(); err != nil {
		t.Fatal(err)
	}
	body = []byte("bbbb")
	if _, err := l.WriteTo(io.Discard); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("WriteTo after an in-place change = %v, want a digest mismatch", err)
	}
}

// TestLayerBadEntry checks that an entry tar cannot encode is refused when the layer
// is made, not when it is written.
func TestLayerBadEntry(t *testing.T) {
	fsys := layerfs.New()
	put(t, fsys, "/nul\x00name", fileNode("x"))
	if _, err := fsys.Commit().Layer(layerfs.TarOptions{}); err == nil || !strings.Contains(err.Error(), "nul") {
		t.Errorf("Layer with a NUL in a name = %v, want an error naming the entry", err)
	}
}

func TestDigest(t *testing.T) {
	d := layerfs.DigestOf([]byte("hello"))
	if d != "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Errorf("DigestOf = %s", d)
	}
	if d.Hex() != strings.TrimPrefix(string(d), "sha256:") || d.Validate() != nil {
		t.Errorf("Hex/Validate of %s", d)
	}
	for _, bad := range []layerfs.Digest{"", "sha256:", "sha512:" + layerfs.Digest(d.Hex()),
		"sha256:" + layerfs.Digest(strings.ToUpper(d.Hex())), "sha256:" + layerfs.Digest(d.Hex()[1:]) + "g"} {
		if bad.Validate() == nil {
			t.Errorf("Validate(%q) = nil", bad)
		}
	}
}
