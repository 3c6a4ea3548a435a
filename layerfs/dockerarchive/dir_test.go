package dockerarchive_test

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

// twoImages are two images that share their first layer, the first with two tags.
func twoImages(t *testing.T) []dockerarchive.Entry {
	t.Helper()
	return []dockerarchive.Entry{
		{Image: imageOf(layerOf(t, "hello", "hello"), layerOf(t, "a", "alpha")), Tags: []image.Tag{tag(t, "app:1"), tag(t, "registry.example:5000/x/app:2")}},
		{Image: imageOf(layerOf(t, "hello", "hello")), Tags: []image.Tag{tag(t, "other")}},
	}
}

// The tree has one directory per layer named by its diff_id, each config as
// <hex>.json and manifest.json; the shared layer is stored once; the result and the
// image IDs are those the archive gives; re-tarred, the tree is a valid archive.
func TestWriteDirLayout(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	res, err := dockerarchive.WriteDir(context.Background(), out, twoImages(t))
	if err != nil {
		t.Fatal(err)
	}
	archived, err := dockerarchive.WriteFile(context.Background(), filepath.Join(dir, "same.tar"), twoImages(t))
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(res.Images) != fmt.Sprint(archived.Images) {
		t.Errorf("WriteDir's result %v differs from WriteFile's %v", res.Images, archived.Images)
	}
	if len(res.Images) != 2 {
		t.Fatalf("%d images", len(res.Images))
	}

	back, err := readEntries(out)
	if err != nil {
		t.Fatal(err)
	}
	if s := names(back); s != "app:1,registry.example:5000/x/app:2 | other:latest" {
		t.Errorf("read back as %q", s)
	}
	// The layers' digests, in order: hello, alpha.
	var diffIDs []layerfs.Digest
	for _, l := range back[0].Image.Layers {
		d, _ := l.KnownDiffID()
		diffIDs = append(diffIDs, d)
	}
	hello, alpha := diffIDs[0].Hex(), diffIDs[1].Hex()
	id1, id2 := res.Images[0].ID.Hex(), res.Images[1].ID.Hex()

	want := []string{
		"d 0755 .",
		"f 0644 " + id1 + ".json",
		"f 0644 " + id2 + ".json",
		"d 0755 " + alpha,
		"f 0644 " + alpha + "/layer.tar",
		"d 0755 " + hello,
		"f 0644 " + hello + "/layer.tar",
		"f 0644 manifest.json",
	}
	if got := shortTree(t, out); !equalSorted(got, want) {
		t.Errorf("tree:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	manifest, err := os.ReadFile(filepath.Join(out, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	wantManifest := `[{"Config":"` + id1 + `.json","RepoTags":["docker.io/library/app:1","registry.example:5000/x/app:2"],"Layers":["` + hello + `/layer.tar","` + alpha + `/layer.tar"]},` +
		`{"Config":"` + id2 + `.json","RepoTags":["docker.io/library/other:latest"],"Layers":["` + hello + `/layer.tar"]}]`
	if string(manifest) != wantManifest {
		t.Errorf("manifest.json:\n%s\nwant:\n%s", manifest, wantManifest)
	}
	// Each file holds what its name says.
	for _, p := range []string{id1 + ".json", id2 + ".json", hello + "/layer.tar", alpha + "/layer.tar"} {
		if got := fileSHA(t, filepath.Join(out, filepath.FromSlash(p))); got != p[:64] {
			t.Errorf("%s has sha256 %s", p, got)
		}
	}
	imagetest.Validate(t, tarDir(t, out))
	if left := leftovers(t, dir); len(left) > 0 {
		t.Errorf("left beside the output: %v", left)
	}
}

// The same images give the same files, modes and mtimes, whatever the umask.
func TestWriteDirDeterministic(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if _, err := dockerarchive.WriteDir(context.Background(), a, twoImages(t)); err != nil {
		t.Fatal(err)
	}
	old := syscall.Umask(0o077)
	_, err := dockerarchive.WriteDir(context.Background(), b, twoImages(t))
	syscall.Umask(old)
	if err != nil {
		t.Fatal(err)
	}
	if ta, tb := fullTree(t, a), fullTree(t, b); strings.Join(ta, "\n") != strings.Join(tb, "\n") {
		t.Errorf("two writes differ:\n%s\n---\n%s", strings.Join(ta, "\n"), strings.Join(tb, "\n"))
	}
}

// An existing destination is replaced only when it is empty or an earlier output;
// anything else is refused and left exactly as it was.
func TestWriteDirExistingDest(t *testing.T) {
	earlier := func(t *testing.T, p string) {
		if _, err := dockerarchive.WriteDir(context.Background(), p, []dockerarchive.Entry{{Image: imageOf(layerOf(t, "old", "old")), Tags: []image.Tag{tag(t, "old")}}}); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, dest string)
		refused string // a part of the error; empty when dest is replaced
	}{
		{"earlier output", earlier, ""},
		{"empty directory", func(t *testing.T, dest string) { os.Mkdir(dest, 0o700) }, ""},
		{"foreign directory", func(t *testing.T, dest string) { write(filepath.Join(dest, "notes.txt"), "mine") },
			`"notes.txt" is not part of one`},
		{"web app with a manifest.json", func(t *testing.T, dest string) {
			write(filepath.Join(dest, "manifest.json"), "{}")
			write(filepath.Join(dest, "index.html"), "<html>")
		}, `"index.html" is not part of one`},
		{"layer-like directories only", func(t *testing.T, dest string) {
			write(filepath.Join(dest, strings.Repeat("a", 64), "layer.tar"), "x")
		}, "it has no manifest.json"},
		{"earlier output with a file added", func(t *testing.T, dest string) {
			earlier(t, dest)
			entries, _ := os.ReadDir(dest)
			for _, e := range entries {
				if e.IsDir() {
					write(filepath.Join(dest, e.Name(), "keep.txt"), "mine")
				}
			}
		}, "keep.txt\" is not part of one"},
		{"a file", func(t *testing.T, dest string) { write(dest, "data") }, "it is not a directory"},
		{"a symlink to an earlier output", func(t *testing.T, dest string) {
			earlier(t, dest+"-real")
			if err := os.Symlink(filepath.Base(dest)+"-real", dest); err != nil {
				t.Fatal(err)
			}
		}, "it is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "out")
			tc.setup(t, dest)
			before := contents(t, dir)
			_, err := dockerarchive.WriteDir(context.Background(), dest, twoImages(t))
			if tc.refused == "" {
				if err != nil {
					t.Fatal(err)
				}
				back, err := readEntries(dest)
				if err != nil {
					t.Fatal(err)
				}
				if s := names(back); s != "app:1,registry.example:5000/x/app:2 | other:latest" {
					t.Errorf("replaced by %q", s)
				}
				if len(shortTree(t, dest)) != 8 {
					t.Errorf("the earlier output was not replaced whole:\n%s", strings.Join(shortTree(t, dest), "\n"))
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), "refusing to replace it") || !strings.Contains(err.Error(), tc.refused) {
					t.Fatalf("err = %v, want a refusal saying %q", err, tc.refused)
				}
				if after := contents(t, dir); after != before {
					t.Errorf("the destination changed:\n%s\n---\n%s", before, after)
				}
			}
			if left := leftovers(t, dir); len(left) > 0 {
				t.Errorf("left beside the output: %v", left)
			}
		})
	}
}

// A failure while writing, or a cancellation, leaves an earlier output exactly as it
// was and nothing beside it.
func TestWriteDirFailureKeepsOldTree(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	for _, tc := range []struct {
		name  string
		ctx   context.Context
		layer *layerfs.Layer
		want  error
		msg   string
	}{
		{"layer fails", context.Background(), layerfs.NewLayer(2048, "", func(w io.Writer) error {
			w.Write(make([]byte, 1000))
			return errors.New("disk on fire")
		}), nil, "writing layer 2 of image 1: disk on fire"},
		{"layer shorter than its size", context.Background(), layerfs.NewLayer(100, "", func(w io.Writer) error {
			_, err := w.Write(make([]byte, 10))
			return err
		}), nil, "layer stream has 10 bytes, expected 100"},
		{"layer with the wrong digest", context.Background(), layerfs.NewLayer(3, layerfs.DigestOf([]byte("abd")), func(w io.Writer) error {
			_, err := w.Write([]byte("abc"))
			return err
		}), nil, "digest"},
		{"cancelled mid-layer", ctx, layerfs.NewLayer(4<<20, "", func(w io.Writer) error {
			chunk := make([]byte, 1<<20)
			for i := 0; i < 4; i++ {
				if i == 1 {
					cancel()
				}
				if _, err := w.Write(chunk); err != nil {
					return err
				}
			}
			return nil
		}), context.Canceled, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "out")
			if _, err := dockerarchive.WriteDir(context.Background(), out, twoImages(t)); err != nil {
				t.Fatal(err)
			}
			before := contents(t, dir)
			img := imageOf(layerOf(t, "first", "fine"), tc.layer)
			_, err := dockerarchive.WriteDir(tc.ctx, out, []dockerarchive.Entry{{Image: img, Tags: []image.Tag{tag(t, "new")}}})
			switch {
			case err == nil:
				t.Fatal("no error")
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("err = %v, want %v", err, tc.want)
			case !strings.Contains(err.Error(), tc.msg):
				t.Fatalf("err = %v, want it to say %q", err, tc.msg)
			}
			if after := contents(t, dir); after != before {
				t.Errorf("the earlier output changed:\n%s\n---\n%s", before, after)
			}
		})
	}
}

// --append's path: read an earlier output, merge, and write it back in place; tags
// move, an image left without tags goes, a layer both images share is stored once.
func TestWriteDirAppend(t *testing.T) {
	out := filepath.Join(t.TempDir(), "out")
	if _, err := dockerarchive.WriteDir(context.Background(), out, twoImages(t)); err != nil {
		t.Fatal(err)
	}
	old, err := readEntries(out)
	if err != nil {
		t.Fatal(err)
	}
	add := dockerarchive.Entry{Image: imageOf(layerOf(t, "hello", "hello"), layerOf(t, "b", "beta")), Tags: []image.Tag{tag(t, "other"), tag(t, "app:1")}}
	if _, err := dockerarchive.WriteDir(context.Background(), out, dockerarchive.Merge(old, add)); err != nil {
		t.Fatal(err)
	}
	back, err := readEntries(out)
	if err != nil {
		t.Fatal(err)
	}
	if s := names(back); s != "registry.example:5000/x/app:2 | other:latest,app:1" {
		t.Errorf("merged to %q", s)
	}
	layerDirs := 0
	for _, line := range shortTree(t, out) {
		if strings.HasPrefix(line, "d ") && line != "d 0755 ." {
			layerDirs++
		}
	}
	if layerDirs != 3 {
		t.Errorf("%d layer directories, want 3 (hello, alpha, beta):\n%s", layerDirs, strings.Join(shortTree(t, out), "\n"))
	}
	imagetest.Validate(t, tarDir(t, out))
}

// TestReadBackErrors checks what --append is told about a directory it cannot read
// back through the one image reader (inspect.Open).
func TestReadBackErrors(t *testing.T) {
	hex64 := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name  string
		files map[string]string
		want  string
	}{
		{"no manifest", map[string]string{"x": "y"}, "it has neither manifest.json nor index.json"},
		{"bad manifest", map[string]string{"manifest.json": "{"}, "reading manifest.json: invalid JSON"},
		{"missing config", map[string]string{"manifest.json": `[{"Config":"` + hex64 + `.json"}]`}, hex64 + ".json: no such file or directory"},
		{"a path out of the directory", map[string]string{
			"manifest.json": `[{"Config":"../outside.json"}]`,
		}, `openat outside.json: no such file or directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "d")
			for name, content := range tc.files {
				p := filepath.Join(dir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			os.WriteFile(filepath.Join(dir, "..", "outside.json"), []byte("{}"), 0o644)
			if _, err := readEntries(dir); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// shortTree lists a directory as "TYPE MODE PATH" lines in walk order.
func shortTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	walkTree(t, root, func(rel string, fi fs.FileInfo, _ string) {
		out = append(out, fmt.Sprintf("%s %04o %s", typeOf(fi), fi.Mode().Perm(), rel))
	})
	return out
}

// fullTree lists a directory with modes, mtimes, sizes and contents, in walk order.
func fullTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	walkTree(t, root, func(rel string, fi fs.FileInfo, sha string) {
		out = append(out, fmt.Sprintf("%s %04o %d %d %s %s", typeOf(fi), fi.Mode().Perm(), fi.ModTime().UnixNano(), fi.Size(), sha, rel))
	})
	return out
}

// contents is fullTree without the line of root itself, whose mtime changes as
// staging directories come and go in it.
func contents(t *testing.T, root string) string {
	t.Helper()
	return strings.Join(fullTree(t, root)[1:], "\n")
}

func walkTree(t *testing.T, root string, f func(rel string, fi fs.FileInfo, sha string)) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		sha := ""
		if fi.Mode().IsRegular() {
			sha = fileSHA(t, p)
		}
		f(filepath.ToSlash(rel), fi, sha)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func typeOf(fi fs.FileInfo) string {
	switch {
	case fi.IsDir():
		return "d"
	case fi.Mode().IsRegular():
		return "f"
	case fi.Mode()&fs.ModeSymlink != 0:
		return "l"
	}
	return "?"
}

func fileSHA(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func equalSorted(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, s := range a {
		seen[s]++
	}
	for _, s := range b {
		seen[s]--
	}
	for _, n := range seen {
		if n != 0 {
			return false
		}
	}
	return true
}

// leftovers lists what a writer left beside its output: staging directories.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, ".*.tmp-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// tarDir packs a directory as `tar -cf FILE -C dir .` does, into a temporary file.
func tarDir(t *testing.T, dir string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "re.tar")
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	if err := tw.AddFS(os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out
}
