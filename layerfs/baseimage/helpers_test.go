package baseimage_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
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

func gzipOf(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

func zstdOf(b []byte) []byte {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		panic(err)
	}
	return zw.EncodeAll(b, nil)
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
		return gzipOf(img.layers[i]), "application/vnd.oci.image.layer.v1.tar+gzip"
	case "zstd":
		return zstdOf(img.layers[i]), "application/vnd.oci.image.layer.v1.tar+zstd"
	}
	return img.layers[i], "application/vnd.oci.image.layer.v1.tar"
}

// out collects the files of an archive or layout in the order they are added.
type out struct {
	names []string
	files map[string][]byte
	links map[string]string
}

func newOut() *out { return &out{files: map[string][]byte{}, links: map[string]string{}} }

func (o *out) add(name string, b []byte) {
	if _, ok := o.files[name]; !ok {
		o.names = append(o.names, name)
	}
	o.files[name] = b
}

func (o *out) link(name, target string) {
	o.names = append(o.names, name)
	o.links[name] = target
}

func (o *out) tarBytes() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, n := range o.names {
		// Parent directories first, as docker save writes them.
		for i := range n {
			if n[i] == '/' && !dirs[n[:i]] {
				dirs[n[:i]] = true
				tw.WriteHeader(&tar.Header{Name: n[:i+1], Typeflag: tar.TypeDir, Mode: 0o755, ModTime: t0})
			}
		}
		h := &tar.Header{Name: n, Mode: 0o644, ModTime: t0, Typeflag: tar.TypeReg}
		if target, ok := o.links[n]; ok {
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, target, 0o777
		} else {
			h.Size = int64(len(o.files[n]))
		}
		tw.WriteHeader(h)
		tw.Write(o.files[n])
	}
	tw.Close()
	return buf.Bytes()
}

func (o *out) writeTar(p string) error { return os.WriteFile(p, o.tarBytes(), 0o644) }

func (o *out) writeDir(dir string) error {
	for _, n := range o.names {
		p := filepath.Join(dir, filepath.FromSlash(n))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if target, ok := o.links[n]; ok {
			if err := os.Symlink(target, p); err != nil {
				return err
			}
			continue
		}
		if err := os.WriteFile(p, o.files[n], 0o644); err != nil {
			return err
		}
	}
	return nil
}

func jsonOf(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// format writes images at p in one storage shape.
type format struct {
	name  string
	write func(t *testing.T, p string, images []*fixImage)
}

// fillLegacy writes docker save's archive before Engine 25: <v1id>/layer.tar, a
// layer seen before as a symlink to its first copy, <config>.json, repositories and
// manifest.json. With named set it writes podman's and skopeo's docker-archive
// instead: each layer as <digest>.tar at the top, stored as the image says (a
// compressed layer keeps its compression, which docker-archive allows).
func fillLegacy(o *out, images []*fixImage, named bool) {
	first := map[string]string{}
	var manifest []dockerarchive.DockerManifest
	repos := map[string]map[string]string{}
	for _, img := range images {
		m := dockerarchive.DockerManifest{Config: sha(img.config) + ".json", RepoTags: img.tags}
		parent := ""
		for i := range img.layers {
			if named {
				b, _ := img.stored(i, "")
				n := sha(b) + ".tar"
				o.add(n, b)
				m.Layers = append(m.Layers, n)
				continue
			}
			b := img.layers[i]
			d := sha(b)
			v1 := sha([]byte(parent + " " + d))
			parent = v1
			o.add(v1+"/VERSION", []byte("1.0"))
			o.add(v1+"/json", jsonOf(map[string]string{"id": v1}))
			n := v1 + "/layer.tar"
			switch {
			case first[d] == "":
				o.add(n, b)
				first[d] = n
			case first[d] != n:
				o.link(n, "../"+first[d])
			}
			m.Layers = append(m.Layers, n)
		}
		o.add(m.Config, img.config)
		for _, tg := range img.tags {
			name, tag, _ := strings.Cut(tg, ":")
			if repos[name] == nil {
				repos[name] = map[string]string{}
			}
			repos[name][tag] = parent
		}
		manifest = append(manifest, m)
	}
	o.add("repositories", jsonOf(repos))
	o.add("manifest.json", jsonOf(manifest))
}

// fillOCI writes an OCI image layout with every layer compressed as comp says
// ("" keeps each image's own choice); with docker25 set, it adds what docker save
// writes since Engine 25: manifest.json pointing into blobs/, and index.json
// descriptors named both by containerd's annotation and by the bare tag.
func fillOCI(o *out, images []*fixImage, comp string, docker25 bool) {
	blob := func(b []byte, mt string) dockerarchive.Descriptor {
		d := layerfs.DigestOf(b)
		o.add("blobs/sha256/"+d.Hex(), b)
		return dockerarchive.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b))}
	}
	index := dockerarchive.Index{SchemaVersion: 2, MediaType: dockerarchive.MediaTypeIndex}
	var manifest []dockerarchive.DockerManifest
	for _, img := range images {
		m := dockerarchive.Manifest{SchemaVersion: 2, MediaType: dockerarchive.MediaTypeManifest}
		m.Config = blob(img.config, dockerarchive.MediaTypeConfig)
		dm := dockerarchive.DockerManifest{Config: "blobs/sha256/" + m.Config.Digest.Hex(), RepoTags: img.tags}
		for i := range img.layers {
			d := blob(img.stored(i, comp))
			m.Layers = append(m.Layers, d)
			dm.Layers = append(dm.Layers, "blobs/sha256/"+d.Digest.Hex())
		}
		md := blob(jsonOf(m), dockerarchive.MediaTypeManifest)
		if len(img.tags) == 0 {
			index.Manifests = append(index.Manifests, md)
		}
		for _, tg := range img.tags {
			d := md
			d.Annotations = map[string]string{"org.opencontainers.image.ref.name": tg}
			if docker25 {
				full, _ := image.ParseTag(tg)
				d.Annotations = map[string]string{"io.containerd.image.name": full.Full, "org.opencontainers.image.ref.name": full.Tag}
			}
			index.Manifests = append(index.Manifests, d)
		}
		manifest = append(manifest, dm)
	}
	o.add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	o.add("index.json", jsonOf(index))
	if docker25 {
		o.add("manifest.json", jsonOf(manifest))
	}
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

var formats = []format{
	{"docker-save-20.10", func(t *testing.T, p string, images []*fixImage) {
		o := newOut()
		fillLegacy(o, images, false)
		must(t, o.writeTar(p))
	}},
	{"docker-save-20.10-gzipped", func(t *testing.T, p string, images []*fixImage) {
		o := newOut()
		fillLegacy(o, images, false)
		must(t, os.WriteFile(p, gzipOf(o.tarBytes()), 0o644))
	}},
	{"docker-save-20.10-dir", func(t *testing.T, p string, images []*fixImage) {
		o := newOut()
		fillLegacy(o, images, false)
		must(t, o.writeDir(p))
	}},
	{"docker-archive", func(t *testing.T, p string, images []*fixImage) {
		o := newOut()
		fillLegacy(o, images, true)
		must(t, o.writeTar(p))
	}},
	{"docker-save-25", func(t *testing.T, p string, images []*fixImage) {
		o := newOut()
		fillOCI(o, images, "plain", true)
		must(t, o.writeTar(p))
	}},
	{"oci-dir", func(t *testing.T, p string, images []*fixImage) {
		o := newOut()
		fillOCI(o, images, "", false)
		must(t, o.writeDir(p))
	}},
	{"oci-archive-gzip", func(t *testing.T, p string, images []*fixImage) {
		o := newOut()
		fillOCI(o, images, "gzip", false)
		must(t, o.writeTar(p))
	}},
	{"oci-archive-zstd", func(t *testing.T, p string, images []*fixImage) {
		o := newOut()
		fillOCI(o, images, "zstd", false)
		must(t, o.writeTar(p))
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
