package dockerarchive_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// platformImages are three images that share their first layer, as a goreleaser
// build for three platforms makes them.
func platformImages(t *testing.T) []dockerarchive.PlatformImage {
	shared := layerOf(t, "shared.txt", "shared\n")
	var out []dockerarchive.PlatformImage
	for _, p := range []dockerarchive.Platform{{OS: "linux", Architecture: "amd64"},
		{OS: "linux", Architecture: "arm64"}, {OS: "linux", Architecture: "arm", Variant: "v7"}} {
		img := imageOf(shared, layerOf(t, "app", "binary for "+p.String()))
		img.Config.Architecture, img.Config.Variant = p.Architecture, p.Variant
		out = append(out, dockerarchive.PlatformImage{Image: img, Platform: p})
	}
	return out
}

// TestWriteIndex writes a multi-platform archive and reads it back with
// go-containerregistry: index.json names the image index by the tag, as buildx's
// oci exporter does; the index lists each platform; every image validates; the
// shared layer is stored once; and the stream and the file are the same bytes.
func TestWriteIndex(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	out := filepath.Join(dir, "multi.tar")
	images := platformImages(t)
	tags := []image.Tag{tag(t, "app:1.0")}
	res, err := dockerarchive.WriteIndexFile(context.Background(), out, images, tags)
	if err != nil {
		t.Fatal(err)
	}
	var stream bytes.Buffer
	if _, err := dockerarchive.WriteIndexStream(context.Background(), &stream, platformImages(t), tags); err != nil {
		t.Fatal(err)
	}
	file, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(file, stream.Bytes()) {
		t.Errorf("WriteIndexStream wrote other bytes than WriteIndexFile")
	}

	names, blobs := untarTo(t, out, filepath.Join(dir, "layout"))
	if names["manifest.json"] {
		t.Errorf("the archive has a manifest.json: a Docker archive cannot name several platforms")
	}
	// 2 + 3 layers... the shared one once: 4 layers, 3 configs, 3 manifests, 1 index.
	if blobs != 11 {
		t.Errorf("%d blobs, want 11 (the shared layer once)", blobs)
	}

	var top dockerarchive.Index
	readJSON(t, filepath.Join(dir, "layout", "index.json"), &top)
	if len(top.Manifests) != 1 {
		t.Fatalf("index.json lists %d entries, want 1", len(top.Manifests))
	}
	e := top.Manifests[0]
	if e.MediaType != dockerarchive.MediaTypeIndex || e.Digest != res.Index ||
		e.Annotations["io.containerd.image.name"] != "docker.io/library/app:1.0" ||
		e.Annotations["org.opencontainers.image.ref.name"] != "1.0" ||
		e.Annotations["org.opencontainers.image.created"] != "2023-11-14T22:13:20Z" {
		t.Errorf("index.json entry %+v", e)
	}

	lp, err := layout.FromPath(filepath.Join(dir, "layout"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	h, err := v1.NewHash(string(res.Index))
	if err != nil {
		t.Fatal(err)
	}
	idx, err := root.ImageIndex(h)
	if err != nil {
		t.Fatal(err)
	}
	// validate's full check expects gzipped layers; the layers are checked below.
	if err := validate.Index(idx, validate.Fast); err != nil {
		t.Fatalf("validate.Index: %v", err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != 3 {
		t.Fatalf("the image index lists %d manifests, want 3", len(im.Manifests))
	}
	for i, d := range im.Manifests {
		want := images[i].Platform
		if d.Platform == nil || d.Platform.OS != want.OS || d.Platform.Architecture != want.Architecture ||
			d.Platform.Variant != want.Variant {
			t.Errorf("manifest %d: platform %+v, want %s", i, d.Platform, want)
		}
		if d.Digest.String() != string(res.Images[i].Manifest) {
			t.Errorf("manifest %d: %s, the result says %s", i, d.Digest, res.Images[i].Manifest)
		}
		img, err := idx.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		cf, err := img.ConfigFile()
		if err != nil {
			t.Fatal(err)
		}
		if cf.Architecture != want.Architecture || cf.Variant != want.Variant {
			t.Errorf("manifest %d: config is %s/%s", i, cf.Architecture, cf.Variant)
		}
		// Each layer blob hashes to its digest, which is its diff_id (uncompressed).
		layers, err := img.Layers()
		if err != nil {
			t.Fatal(err)
		}
		for j, l := range layers {
			rc, err := l.Compressed()
			if err != nil {
				t.Fatal(err)
			}
			sum, _, err := v1.SHA256(rc)
			rc.Close()
			if err != nil {
				t.Fatal(err)
			}
			d, _ := l.Digest()
			if sum != d || j >= len(cf.RootFS.DiffIDs) || cf.RootFS.DiffIDs[j] != d {
				t.Errorf("manifest %d layer %d: blob %s, digest %s, diff_ids %v", i, j, sum, d, cf.RootFS.DiffIDs)
			}
		}
	}
}

// TestWriteIndexUntagged writes an index.json with one unnamed entry.
func TestWriteIndexUntagged(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	if _, err := dockerarchive.WriteIndexStream(context.Background(), &buf, platformImages(t), nil); err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(&buf)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			t.Fatal("no index.json")
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name != "index.json" {
			continue
		}
		var top dockerarchive.Index
		if err := json.NewDecoder(tr).Decode(&top); err != nil {
			t.Fatal(err)
		}
		if len(top.Manifests) != 1 || top.Manifests[0].Annotations != nil {
			t.Errorf("index.json: %+v", top)
		}
		return
	}
}

// untarTo unpacks an archive and returns its file names and how many blobs it has.
func untarTo(t *testing.T, file, dir string) (names map[string]bool, blobs int) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names = map[string]bool{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return names, blobs
		}
		if err != nil {
			t.Fatal(err)
		}
		if names[h.Name] {
			t.Errorf("%s is stored twice", h.Name)
		}
		names[h.Name] = true
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		if h.Typeflag == tar.TypeDir {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if strings.HasPrefix(h.Name, "blobs/sha256/") {
			blobs++
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}
