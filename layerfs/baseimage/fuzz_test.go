package baseimage_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/baseimage"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

// checkBase reads everything a loaded image offers: every file of the tree through
// its opener (at its recorded size) and every layer (at its size and diff_id).
func checkBase(t *testing.T, b *baseimage.Base) {
	t.Helper()
	err := b.FS.Walk(func(p string, n *layerfs.Node) error {
		if n.Type != layerfs.TypeReg || n.Content == nil {
			return nil
		}
		rc, err := n.Content()
		if err != nil {
			return err
		}
		defer rc.Close()
		got, err := io.Copy(io.Discard, rc)
		if err != nil || got != n.Size {
			return fmt.Errorf("%s: read %d bytes (%v), size %d", p, got, err, n.Size)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range b.Layers {
		if n, err := l.WriteTo(io.Discard); err != nil || n != l.Size() {
			t.Fatalf("layer %d: WriteTo = %d, %v; size %d", i+1, n, err, l.Size())
		}
		if d, ok := l.KnownDiffID(); !ok || d != b.Config.RootFS.DiffIDs[i] {
			t.Fatalf("layer %d: diff_id %s, config %s", i+1, d, b.Config.RootFS.DiffIDs[i])
		}
	}
}

// FuzzLoad feeds arbitrary bytes to IsImage and Load as an image archive: they must
// return an error or an image, never panic; an image they return must read back
// whole, and Close must leave the spool directory empty.
func FuzzLoad(f *testing.F) {
	images := fixture(f)
	for _, img := range images {
		o := files()
		o.AddDockerArchive(archiveImages([]*fixImage{img}, "plain"), imagetest.DockerSave)
		f.Add(mustTar(f, o))
		o = files()
		o.AddOCILayout(archiveImages([]*fixImage{img}, ""), true)
		f.Add(mustTar(f, o))
	}
	small := newFixImage([]string{"small:1"}, [][]byte{layerTar(f, fileE("a", "a"), hardE("b", "a"), whE("c"))}, []string{"gzip"})
	o := files()
	o.AddOCILayout(archiveImages([]*fixImage{small}, ""), false)
	f.Add(mustTar(f, o))
	f.Add(imagetest.Gzip(mustTar(f, o)))
	f.Add([]byte{})
	f.Add([]byte("not an archive"))
	f.Add(layerTar(f, fileE("manifest.json", `[{"Config":"c.json","Layers":["l.tar"]}]`), fileE("c.json", `{"rootfs":{"diff_ids":[]}}`)))
	// Issue 11: a manifest beside a layer directory not named by hex digits; eight
	// images sharing one config, which an error lists five of.
	f.Add(layerTar(f, dirE("layer1/"), fileE("layer1/layer.tar", ""), fileE("manifest.json", `[{"Config":"c.json","Layers":["layer1/layer.tar"]}]`), fileE("c.json", `{"rootfs":{"diff_ids":[]}}`)))
	var eight []string
	for i := range 8 {
		eight = append(eight, fmt.Sprintf(`{"Config":"c.json","RepoTags":["i%d:1"],"Layers":[]}`, i))
	}
	f.Add(layerTar(f, fileE("manifest.json", "["+strings.Join(eight, ",")+"]"), fileE("c.json", `{"rootfs":{"type":"layers","diff_ids":[]}}`)))

	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		file, spool := filepath.Join(dir, "archive"), filepath.Join(dir, "spool")
		defer os.RemoveAll(spool)
		if err := os.WriteFile(file, in, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(spool, 0o755); err != nil {
			t.Fatal(err)
		}
		if _, err := baseimage.IsImage(file); err != nil && !errors.Is(err, baseimage.ErrMixedArchive) {
			t.Fatalf("IsImage of a readable file: %v", err)
		}
		b, err := baseimage.Load(file, "", spool)
		if err == nil {
			checkBase(t, b)
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if left, _ := os.ReadDir(spool); len(left) != 0 {
			t.Fatalf("%d spool files left (Load error: %v)", len(left), err)
		}
	})
}

// FuzzLoadLayer loads an image whose second layer is arbitrary bytes, over a fixed
// first layer, so that the whiteout and replacement rules meet every shape of
// layer: Load must return an error or an image that reads back whole, whose layer
// writes the very bytes given.
func FuzzLoadLayer(f *testing.F) {
	f.Add(layerTar(f, whE("d"), fileE("f", "new")))
	f.Add(layerTar(f, dirE("d/"), fileE("d/z", "z"), opqE("d")))
	f.Add(layerTar(f, fileE("l/inside", "i"), hardE("h", "l/inside")))
	f.Add(layerTar(f, linkE("d", "f"), whE("nothing"), fileE("new/deep/file", "x")))
	f.Add(layerTar(f, fileE("d", "a file"), opqE("")))
	f.Add(imagetest.Gzip(layerTar(f, whE("f"))))
	// Issue 11, faults 4 and 5: deep paths within MaxPathLen and past it, and a
	// whiteout at the bottom of a deep directory.
	f.Add(layerTar(f, fileE(strings.Repeat("d/", 300)+"f", "x"), whE(strings.Repeat("e/", 300)+"g")))
	f.Add(layerTar(f, fileE(strings.Repeat("d/", 2100)+"f", "x")))
	f.Add([]byte{})

	lower := layerTar(f, dirE("d/"), fileE("d/x", "x"), dirE("d/sub/"), fileE("d/sub/y", "y"), fileE("f", "f"), linkE("l", "d"))
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, layer []byte) {
		// The config lists the digest of the layer's uncompressed bytes when it is a
		// compressed stream that decompresses, and of the bytes themselves otherwise.
		plain := layer
		if d, err := decompress(layer); err == nil {
			plain = d
		}
		img := newFixImage([]string{"fuzz:1"}, [][]byte{lower, plain}, []string{"", ""})
		o := files()
		o.AddOCILayout(archiveImages([]*fixImage{img}, ""), false)
		// Store the layer as given (compressed or not) under its blob digest.
		o.Edit(func(_ string, b []byte) []byte {
			if bytes.Equal(b, plain) && !bytes.Equal(plain, layer) {
				return layer
			}
			return b
		})
		file, spool := filepath.Join(dir, "archive"), filepath.Join(dir, "spool")
		defer os.RemoveAll(spool)
		if err := o.WriteTar(file); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(spool, 0o755); err != nil {
			t.Fatal(err)
		}
		b, err := baseimage.Load(file, "fuzz:1", spool)
		if err != nil {
			return
		}
		defer b.Close()
		checkBase(t, b)
		var buf bytes.Buffer
		if _, err := b.Layers[1].WriteTo(&buf); err != nil || !bytes.Equal(buf.Bytes(), plain) {
			t.Fatalf("layer 2 writes other bytes (%v)", err)
		}
	})
}

// decompress undoes a compression detected from the first bytes, as Load does.
func decompress(b []byte) ([]byte, error) {
	br := bufio.NewReader(bytes.NewReader(b))
	c := layerfs.DetectCompression(br)
	if c == layerfs.Uncompressed {
		return nil, fmt.Errorf("not compressed")
	}
	r, err := layerfs.Decompress(br, c)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}
