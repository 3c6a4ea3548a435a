package inspect_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

func layerTar(t *testing.T, name, body string) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	must(t, tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}))
	_, err := tw.Write([]byte(body))
	must(t, err)
	must(t, tw.Close())
	return buf.Bytes()
}

// TestBadInput checks that each kind of broken input gives an error that says what
// is wrong, from Open or from the analysis.
func TestBadInput(t *testing.T) {
	good := layerTar(t, "a", "alpha")
	config := func(ids ...layerfs.Digest) []byte {
		return imagetest.JSON(map[string]any{"os": "linux", "architecture": "amd64",
			"rootfs": map[string]any{"type": "layers", "diff_ids": ids}})
	}
	docker := func(cfg []byte, layers map[string][]byte, order ...string) func(string) error {
		return func(p string) error {
			o := newTarOut()
			for _, n := range order {
				o.Add(n, layers[n])
			}
			o.Add("c.json", cfg)
			o.Add("manifest.json", imagetest.JSON([]dockerarchive.DockerManifest{{Config: "c.json", Layers: order}}))
			return o.WriteTar(p)
		}
	}
	cases := []struct {
		name     string
		write    func(p string) error
		openErr  string // expected in Open's error
		notImage bool   // Open's error wraps ErrNotImage
		err      string // expected in AnalyzeArchive's error
	}{
		{name: "text file", write: func(p string) error { return os.WriteFile(p, []byte("just some notes\n"), 0o644) },
			openErr: "not an image archive or layout: not a tar file", notImage: true},
		{name: "plain tar", write: func(p string) error {
			o := newTarOut()
			o.Add("etc/passwd", []byte("root"))
			return o.WriteTar(p)
		}, openErr: "it has neither manifest.json nor index.json", notImage: true},
		{name: "empty dir", write: func(p string) error { return os.Mkdir(p, 0o755) },
			openErr: "it has neither manifest.json nor index.json", notImage: true},
		{name: "missing layer", write: func(p string) error {
			o := newTarOut()
			o.Add("c.json", config(layerfs.DigestOf(good)))
			o.Add("manifest.json", imagetest.JSON([]dockerarchive.DockerManifest{{Config: "c.json", Layers: []string{"l/layer.tar"}}}))
			return o.WriteTar(p)
		}, openErr: `image 1: layer 1: "l/layer.tar" is missing`},
		{name: "layer count", write: docker(config(), map[string][]byte{"l.tar": good}, "l.tar"),
			openErr: "1 layer listed but 0 diff_ids in the config"},
		{name: "bad manifest.json", write: func(p string) error {
			o := newTarOut()
			o.Add("manifest.json", []byte("{"))
			return o.WriteTar(p)
		}, openErr: "reading manifest.json: invalid JSON"},
		{name: "wrong diff_id", write: docker(config(layerfs.DigestOf([]byte("other"))), map[string][]byte{"l.tar": good}, "l.tar"),
			err: "image 1: reading layer 1: the layer's digest is " + string(layerfs.DigestOf(good))},
		{name: "layer not a tar", write: docker(config(layerfs.DigestOf([]byte("junk"))), map[string][]byte{"l.tar": []byte("junk")}, "l.tar"),
			err: "image 1: reading layer 1: reading the layer tar: unexpected EOF"},
		{name: "symlink out of a directory", write: func(p string) error {
			must(t, os.Mkdir(p, 0o755))
			must(t, os.WriteFile(filepath.Join(p, "c.json"), config(layerfs.DigestOf(good)), 0o644))
			must(t, os.WriteFile(filepath.Join(filepath.Dir(p), "outside.tar"), good, 0o644))
			must(t, os.Symlink("../outside.tar", filepath.Join(p, "l.tar")))
			return os.WriteFile(filepath.Join(p, "manifest.json"),
				imagetest.JSON([]dockerarchive.DockerManifest{{Config: "c.json", Layers: []string{"l.tar"}}}), 0o644)
		}, openErr: `layer 1: "l.tar" is missing`},
		{name: "hostile digest", write: func(p string) error {
			o := newTarOut()
			o.Add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
			o.Add("index.json", []byte(`{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:../../etc/passwd"}]}`))
			return o.WriteTar(p)
		}, openErr: `invalid digest "sha256:../../etc/passwd"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "x")
			must(t, c.write(p))
			a, err := inspect.Open(p)
			t.Logf("Open: %v", err)
			if c.openErr != "" {
				if err == nil || !strings.Contains(err.Error(), c.openErr) {
					t.Fatalf("Open: %v, want an error containing %q", err, c.openErr)
				}
				if got := errors.Is(err, inspect.ErrNotImage); got != c.notImage {
					t.Errorf("errors.Is(%v, ErrNotImage) = %v", err, got)
				}
				return
			}
			must(t, err)
			defer a.Close()
			_, err = inspect.AnalyzeArchive(context.Background(), a)
			t.Logf("AnalyzeArchive: %v", err)
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("AnalyzeArchive: %v, want an error containing %q", err, c.err)
			}
		})
	}
}

// TestCancel checks that a cancelled analysis stops and says why.
func TestCancel(t *testing.T) {
	p := filepath.Join(t.TempDir(), "a.tar")
	images := parseImages(t, "layer\nfile /a 0644 a\n")
	must(t, writeDFBuild(p, images))
	a, err := inspect.Open(p)
	must(t, err)
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := inspect.AnalyzeArchive(ctx, a); !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// TestScratchCopyRemoved checks that a compressed archive's scratch copy goes away
// with Close.
func TestScratchCopyRemoved(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("TMPDIR", dir)
	p := filepath.Join(t.TempDir(), "a.tar.gz")
	must(t, gzipFile(writeDFBuild)(p, parseImages(t, "layer\nfile /a 0644 a\n")))
	a, err := inspect.Open(p)
	must(t, err)
	if a.Compression != layerfs.Gzip {
		t.Errorf("compression %q", a.Compression)
	}
	if n, _ := os.ReadDir(dir); len(n) != 1 {
		t.Errorf("%d scratch files while open, want 1", len(n))
	}
	must(t, a.Close())
	if n, _ := os.ReadDir(dir); len(n) != 0 {
		t.Errorf("%d scratch files left after Close", len(n))
	}
}
