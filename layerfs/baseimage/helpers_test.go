package baseimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

// t0 is the mtime of every fixture entry unless one says otherwise.
var t0 = time.Unix(1600000000, 0).UTC()

// ent is one entry of a layer tar written by a test.
type ent struct {
	h    tar.Header
	body string
}

func dirE(name string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: t0}}
}

func fileE(name, body string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(body)), ModTime: t0}, body: body}
}

func linkE(name, target string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: t0}}
}

func hardE(name, target string) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o644, ModTime: t0}}
}

func charE(name string, major, minor int64) ent {
	return ent{h: tar.Header{Typeflag: tar.TypeChar, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor, ModTime: t0}}
}

// whE is the whiteout of p, as containerd writes it: an empty mode-0 file at the epoch.
func whE(p string) ent {
	dir, base := "", p
	if i := strings.LastIndex(p, "/"); i >= 0 {
		dir, base = p[:i+1], p[i+1:]
	}
	return ent{h: tar.Header{Typeflag: tar.TypeReg, Name: dir + ".wh." + base, ModTime: time.Unix(0, 0)}}
}

// opqE is the opaque marker of the directory dir ("" for the root).
func opqE(dir string) ent {
	if dir != "" {
		dir += "/"
	}
	return ent{h: tar.Header{Typeflag: tar.TypeReg, Name: dir + ".wh..wh..opq", ModTime: time.Unix(0, 0)}}
}

// with returns e with fn applied to its header.
func with(e ent, fn func(h *tar.Header)) ent {
	fn(&e.h)
	return e
}

func layerTar(t testing.TB, entries ...ent) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := e.h
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("writing %q: %v", h.Name, err)
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

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fixImage is an image of a fixture: its tags as the archive spells them, its
// uncompressed layers, and for each layer how the archive stores it: "", "gzip" or
// "zstd" (a format may override that).
type fixImage struct {
	tags     []string
	layers   [][]byte
	compress []string
	config   []byte
}

func newFixImage(tags []string, layers [][]byte, compress []string) *fixImage {
	img := &fixImage{tags: tags, layers: layers, compress: compress}
	created := t0
	cf := image.ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Author:       "fixture",
		Created:      &created,
		Config:       image.Config{Env: []string{"PATH=/bin"}, Cmd: []string{"/bin/sh"}, WorkingDir: "/"},
		RootFS:       image.RootFS{Type: "layers"},
	}
	for i, l := range layers {
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, layerfs.DigestOf(l))
		cf.History = append(cf.History, image.History{Created: &created, CreatedBy: fmt.Sprintf("layer %d of %s", i+1, strings.Join(tags, ","))})
	}
	b, err := json.Marshal(cf)
	if err != nil {
		panic(err)
	}
	img.config = b
	return img
}

// stored is layer i as the archive stores it, and its media type.
func (img *fixImage) stored(i int, override string) ([]byte, string) {
	c := img.compress[i]
	if override != "" {
		c = override
	}
	if c == "plain" {
		c = ""
	}
	switch c {
	case "gzip":
		return imagetest.Gzip(img.layers[i]), imagetest.MediaTypeLayerGzip
	case "zstd":
		return imagetest.Zstd(img.layers[i]), imagetest.MediaTypeLayerZstd
	}
	return img.layers[i], imagetest.MediaTypeLayer
}

// archiveImages are images as imagetest writes them, each layer stored as comp says
// ("" keeps each image's own choice, "plain" stores them uncompressed).
func archiveImages(images []*fixImage, comp string) []imagetest.ArchiveImage {
	var out []imagetest.ArchiveImage
	for _, img := range images {
		ai := imagetest.ArchiveImage{Tags: img.tags, Config: img.config}
		for i := range img.layers {
			b, mt := img.stored(i, comp)
			ai.Layers = append(ai.Layers, imagetest.Blob{Data: b, MediaType: mt})
		}
		out = append(out, ai)
	}
	return out
}

// files returns an empty archive: the parent directories first, as docker save
// writes them, and every entry at t0.
func files() *imagetest.Files { return imagetest.NewFiles(t0, true) }

// mustTar is o's tar.
func mustTar(tb testing.TB, o *imagetest.Files) []byte {
	tb.Helper()
	b, err := o.Tar()
	must(tb, err)
	return b
}

// format writes images at p in one storage shape.
type format struct {
	name  string
	write func(t *testing.T, p string, images []*fixImage)
}

// dfbuildEntries are the images as dockerarchive writes them: dfbuild's own output.
func dfbuildEntries(t *testing.T, images []*fixImage) []dockerarchive.Entry {
	var entries []dockerarchive.Entry
	for _, img := range images {
		im := &image.Image{Raw: img.config}
		for _, b := range img.layers {
			im.Layers = append(im.Layers, layerfs.NewLayer(int64(len(b)), layerfs.DigestOf(b), func(w io.Writer) error {
				_, err := w.Write(b)
				return err
			}))
		}
		e := dockerarchive.Entry{Image: im}
		for _, s := range img.tags {
			tg, err := image.ParseTag(s)
			if err != nil {
				t.Fatal(err)
			}
			e.Tags = append(e.Tags, tg)
		}
		entries = append(entries, e)
	}
	return entries
}

// The docker save formats before Engine 25 store each layer uncompressed; podman's
// and skopeo's docker-archive (TopLayers) keeps a compressed layer's compression,
// which docker-archive allows. The OCI ones compress every layer as they say.
var formats = []format{
	{"docker-save-20.10", func(t *testing.T, p string, images []*fixImage) {
		o := files()
		o.AddDockerArchive(archiveImages(images, "plain"), imagetest.DockerSave)
		must(t, o.WriteTar(p))
	}},
	{"docker-save-20.10-gzipped", func(t *testing.T, p string, images []*fixImage) {
		o := files()
		o.AddDockerArchive(archiveImages(images, "plain"), imagetest.DockerSave)
		b, err := o.Tar()
		must(t, err)
		must(t, os.WriteFile(p, imagetest.Gzip(b), 0o644))
	}},
	{"docker-save-20.10-dir", func(t *testing.T, p string, images []*fixImage) {
		o := files()
		o.AddDockerArchive(archiveImages(images, "plain"), imagetest.DockerSave)
		must(t, o.WriteDir(p))
	}},
	{"docker-archive", func(t *testing.T, p string, images []*fixImage) {
		o := files()
		o.AddDockerArchive(archiveImages(images, ""), imagetest.TopLayers)
		must(t, o.WriteTar(p))
	}},
	{"docker-save-25", func(t *testing.T, p string, images []*fixImage) {
		o := files()
		o.AddOCILayout(archiveImages(images, "plain"), true)
		must(t, o.WriteTar(p))
	}},
	{"oci-dir", func(t *testing.T, p string, images []*fixImage) {
		o := files()
		o.AddOCILayout(archiveImages(images, ""), false)
		must(t, o.WriteDir(p))
	}},
	{"oci-archive-gzip", func(t *testing.T, p string, images []*fixImage) {
		o := files()
		o.AddOCILayout(archiveImages(images, "gzip"), false)
		must(t, o.WriteTar(p))
	}},
	{"oci-archive-zstd", func(t *testing.T, p string, images []*fixImage) {
		o := files()
		o.AddOCILayout(archiveImages(images, "zstd"), false)
		must(t, o.WriteTar(p))
	}},
	{"dfbuild", func(t *testing.T, p string, images []*fixImage) {
		_, err := dockerarchive.WriteFile(context.Background(), p, dfbuildEntries(t, images))
		must(t, err)
	}},
	{"dfbuild-dir", func(t *testing.T, p string, images []*fixImage) {
		_, err := dockerarchive.WriteDir(context.Background(), p, dfbuildEntries(t, images))
		must(t, err)
	}},
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// fsListing renders a tree one line per node, parents first:
//
//	TYPE MODE UID:GID MTIME PATH [-> TARGET] [SIZE sha256:PREFIX] [MAJOR,MINOR] [link=FIRST]
//
// MTIME is Unix seconds, or "build" for a node that takes the build time. Files
// are read through their openers; hard-linked files name the first path of their
// group.
func fsListing(t testing.TB, fsys *layerfs.FS) string {
	t.Helper()
	var b strings.Builder
	groups := map[uint64]string{}
	err := fsys.Walk(func(p string, n *layerfs.Node) error {
		typ := map[layerfs.Type]string{layerfs.TypeDir: "d", layerfs.TypeReg: "f", layerfs.TypeSymlink: "l",
			layerfs.TypeChar: "c", layerfs.TypeBlock: "b", layerfs.TypeFIFO: "p"}[n.Type]
		mtime := fmt.Sprint(n.ModTime.Unix())
		if n.Stamped {
			mtime = "build"
		}
		fmt.Fprintf(&b, "%s %04o %d:%d %s %s", typ, n.Mode, n.UID, n.GID, mtime, p)
		switch n.Type {
		case layerfs.TypeSymlink:
			fmt.Fprintf(&b, " -> %s", n.Target)
		case layerfs.TypeChar, layerfs.TypeBlock:
			fmt.Fprintf(&b, " %d,%d", n.Major, n.Minor)
		case layerfs.TypeReg:
			var body []byte
			if n.Content != nil {
				rc, err := n.Content()
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
				body, err = io.ReadAll(rc)
				rc.Close()
				if err != nil {
					return fmt.Errorf("%s: %w", p, err)
				}
			}
			if int64(len(body)) != n.Size {
				return fmt.Errorf("%s: read %d bytes, size %d", p, len(body), n.Size)
			}
			fmt.Fprintf(&b, " %d sha256:%s", n.Size, sha(body)[:12])
			if n.HardLink != 0 {
				if first, ok := groups[n.HardLink]; ok {
					fmt.Fprintf(&b, " link=%s", first)
				} else {
					groups[n.HardLink] = p
				}
			}
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}
