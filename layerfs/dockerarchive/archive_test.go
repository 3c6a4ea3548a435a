package dockerarchive_test

import (
	"context"
	"crypto/sha256"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

// layerOf returns a one-file layer built through the tree, as the interpreter does.
func layerOf(t *testing.T, name, content string) *layerfs.Layer {
	t.Helper()
	fsys := layerfs.New()
	body := content
	err := fsys.Put("/"+name, &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o644, Size: int64(len(body)),
		ModTime: time.Unix(1600000000, 0),
		Content: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }})
	if err != nil {
		t.Fatal(err)
	}
	l, err := fsys.Commit().Layer(layerfs.TarOptions{BuildTime: time.Unix(1600000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func imageOf(layers ...*layerfs.Layer) *image.Image {
	when := time.Unix(1700000000, 0).UTC()
	img := &image.Image{Layers: layers}
	img.Config = image.ConfigFile{Architecture: "amd64", OS: "linux", Created: &when}
	img.Config.Config.Env = []string{"PATH=/bin"}
	for range layers {
		img.Config.History = append(img.Config.History, image.History{Created: &when, CreatedBy: "COPY x / # buildkit"})
	}
	return img
}

func tag(t *testing.T, s string) image.Tag {
	t.Helper()
	tg, err := image.ParseTag(s)
	if err != nil {
		t.Fatal(err)
	}
	return tg
}

func TestWriteReadRoundTrip(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "a.tar")
	img := imageOf(layerOf(t, "a", "alpha"), layerOf(t, "b", "beta"))
	res, err := dockerarchive.WriteFile(context.Background(), out, []dockerarchive.Entry{{Image: img, Tags: []image.Tag{tag(t, "app:1"), tag(t, "registry.example:5000/x/app:2")}}})
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Validate(t, out)
	id, err := img.ID()
	if err != nil {
		t.Fatal(err)
	}
	if res.Images[0].ID != id {
		t.Errorf("result ID %s, image ID %s", res.Images[0].ID, id)
	}
	entries, err := readEntries(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || len(entries[0].Tags) != 2 || entries[0].Tags[1].Full != "registry.example:5000/x/app:2" {
		t.Fatalf("read back %+v", entries)
	}
	back, err := entries[0].Image.ID()
	if err != nil || back != id {
		t.Errorf("read-back ID %s (%v), want %s", back, err, id)
	}
	// Written again, the read-back images give the same bytes.
	out2 := filepath.Join(dir, "b.tar")
	if _, err := dockerarchive.WriteFile(context.Background(), out2, entries); err != nil {
		t.Fatal(err)
	}
	if sum(t, out) != sum(t, out2) {
		t.Error("rewriting a read archive changed its bytes")
	}
}

func TestDuplicateLayerStoredOnce(t *testing.T) {
	out := filepath.Join(t.TempDir(), "dup.tar")
	// Two images whose layers have the same bytes but unknown digests until written:
	// the second copy is cut off again after hashing.
	a := imageOf(layerOf(t, "same", "bytes"))
	b := imageOf(layerOf(t, "same", "bytes"), layerOf(t, "other", "x"))
	if _, err := dockerarchive.WriteFile(context.Background(), out, []dockerarchive.Entry{{Image: a, Tags: []image.Tag{tag(t, "a")}}, {Image: b, Tags: []image.Tag{tag(t, "b")}}}); err != nil {
		t.Fatal(err)
	}
	imagetest.Validate(t, out)
	entries, err := readEntries(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 2 {
		t.Fatalf("%d images", len(entries))
	}
}

func TestZeroLayers(t *testing.T) {
	out := filepath.Join(t.TempDir(), "empty.tar")
	if _, err := dockerarchive.WriteFile(context.Background(), out, []dockerarchive.Entry{{Image: imageOf(), Tags: []image.Tag{tag(t, "empty")}}}); err != nil {
		t.Fatal(err)
	}
	imagetest.Validate(t, out)
}

// A layer that fails while being written leaves the destination as it was.
func TestWriteFailureKeepsOldFile(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "keep.tar")
	if err := os.WriteFile(out, []byte("previous"), 0o644); err != nil {
		t.Fatal(err)
	}
	bad := layerfs.NewLayer(2048, "", func(w io.Writer) error {
		w.Write(make([]byte, 1000))
		return errors.New("disk on fire")
	})
	_, err := dockerarchive.WriteFile(context.Background(), out, []dockerarchive.Entry{{Image: imageOf(bad)}})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "previous" {
		t.Errorf("destination changed to %q", b)
	}
	left, _ := filepath.Glob(filepath.Join(dir, ".keep.tar.tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	// A layer that lies about its size or digest is caught before the rename.
	short := layerfs.NewLayer(100, "", func(w io.Writer) error { _, err := w.Write(make([]byte, 10)); return err })
	if _, err := dockerarchive.WriteFile(context.Background(), out, []dockerarchive.Entry{{Image: imageOf(short)}}); err == nil {
		t.Error("a layer shorter than its size was written")
	}
	wrong := layerfs.NewLayer(3, layerfs.DigestOf([]byte("abd")), func(w io.Writer) error { _, err := w.Write([]byte("abc")); return err })
	if _, err := dockerarchive.WriteFile(context.Background(), out, []dockerarchive.Entry{{Image: imageOf(wrong)}}); err == nil || !strings.Contains(err.Error(), "digest") {
		t.Errorf("a layer with the wrong digest: err = %v", err)
	}
	if b, _ := os.ReadFile(out); string(b) != "previous" {
		t.Errorf("destination changed to %q", b)
	}
}

func TestMerge(t *testing.T) {
	x := imageOf(layerOf(t, "x", "x"))
	y := imageOf(layerOf(t, "y", "y"))
	z := imageOf(layerOf(t, "z", "z"))
	old := []dockerarchive.Entry{
		{Image: x, Tags: []image.Tag{tag(t, "app:1"), tag(t, "app:latest")}},
		{Image: y, Tags: []image.Tag{tag(t, "other")}},
	}
	// The new image takes app:latest and other; x keeps app:1, y has no tag left
	// and goes.
	got := dockerarchive.Merge(old, dockerarchive.Entry{Image: z, Tags: []image.Tag{tag(t, "app:latest"), tag(t, "other")}})
	if s := names(got); s != "app:1 | app:latest,other:latest" {
		t.Errorf("merged to %q", s)
	}
	// The same image again: Merge keeps both entries, and Write lists them as one
	// image with both tags.
	got = dockerarchive.Merge(got, dockerarchive.Entry{Image: imageOf(layerOf(t, "x", "x")), Tags: []image.Tag{tag(t, "app:2")}})
	out := filepath.Join(t.TempDir(), "merged.tar")
	res, err := dockerarchive.WriteFile(context.Background(), out, got)
	if err != nil {
		t.Fatal(err)
	}
	imagetest.Validate(t, out)
	back, err := readEntries(out)
	if err != nil {
		t.Fatal(err)
	}
	if s := names(back); s != "app:1,app:2 | app:latest,other:latest" || len(res.Images) != 2 {
		t.Errorf("written as %q (%d images)", s, len(res.Images))
	}
}

// A cancelled write stops and leaves no file behind.
func TestWriteCancelled(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "c.tar")
	ctx, cancel := context.WithCancel(context.Background())
	slow := layerfs.NewLayer(4<<20, "", func(w io.Writer) error {
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
	})
	_, err := dockerarchive.WriteFile(ctx, out, []dockerarchive.Entry{{Image: imageOf(slow)}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

func names(entries []dockerarchive.Entry) string {
	var parts []string
	for _, e := range entries {
		var ts []string
		for _, t := range e.Tags {
			ts = append(ts, t.Familiar)
		}
		parts = append(parts, strings.Join(ts, ","))
	}
	return strings.Join(parts, " | ")
}

func sum(t *testing.T, file string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}
