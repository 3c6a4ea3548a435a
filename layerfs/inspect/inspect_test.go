package inspect_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rogpeppe/go-internal/txtar"

	"github.com/dfbuild/dfbuild/layerfs/imagetest"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar")

// testTime pins every time in the cases' images.
var testTime = time.Unix(1700000000, 0).UTC()

// TestCases runs every testdata/*.txtar case. The comment section describes the
// images, one directive a line ("#" starts a description line):
//
//	image                    start an image (the first one is implicit)
//	tag NAME                 name the current image (fully qualified, as written)
//	layer                    start a layer of the current image
//	repeat N                 a layer with the same bytes as layer N of this image
//	dir PATH MODE            entries of the current layer, in tar order; PATH "/"
//	file PATH MODE [TEXT]    is the "./" root entry; whiteout and opaque write the
//	link PATH TARGET         .wh.NAME and DIR/.wh..wh..opq markers
//	hardlink PATH TARGET
//	char PATH MAJOR,MINOR
//	whiteout PATH
//	opaque DIR
//	owner UID:GID            the owner of the entries that follow in the layer
//	history CREATED_BY       a history entry; "history! ..." is an empty_layer one
//
// Each case is written in every storage format dfbuild reads: dfbuild's own archive,
// docker save's legacy archive (repeated layers as symlinks), skopeo's
// docker-archive, an OCI layout directory with gzip and with zstd layers, an
// oci-archive, the unpacked type=dir directory, a gzipped archive, and (for one
// image) the image in memory. All must give the same analysis. want/text and
// want/files are dfbuild inspect's text output without and with --files; want/json,
// when the case has it, is the JSON output with --files.
func TestCases(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			runCase(t, file)
		})
	}
}

type testImage struct {
	tags    []string
	layers  [][]byte
	history []image.History
	config  []byte
}

func (ti *testImage) diffIDs() []layerfs.Digest {
	var ids []layerfs.Digest
	for _, l := range ti.layers {
		ids = append(ids, layerfs.DigestOf(l))
	}
	return ids
}

func runCase(t *testing.T, file string) {
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	images := parseImages(t, string(ar.Comment))
	dir := t.TempDir()
	ctx := context.Background()

	var reports []*inspect.Report
	var names []string
	for _, f := range formats {
		if f.single && len(images) != 1 {
			continue
		}
		var r *inspect.Report
		if f.memory != nil {
			ir, err := inspect.Analyze(ctx, f.memory(images[0]))
			if err != nil {
				t.Fatalf("%s: %v", f.name, err)
			}
			ir.Tags = images[0].tags
			r = &inspect.Report{Images: []*inspect.ImageReport{ir}}
		} else {
			p := filepath.Join(dir, f.name)
			must(t, f.write(p, images))
			a, err := inspect.Open(p)
			if err != nil {
				t.Fatalf("%s: %v", f.name, err)
			}
			if a.Format != f.format {
				t.Errorf("%s: format %q, want %q", f.name, a.Format, f.format)
			}
			r, err = inspect.AnalyzeArchive(ctx, a)
			must(t, a.Close())
			if err != nil {
				t.Fatalf("%s: %v", f.name, err)
			}
		}
		reports = append(reports, r)
		names = append(names, f.name)
	}
	base := reports[0]
	base.Source = "image.tar"
	for i, r := range reports[1:] {
		if got, want := canonical(t, r), canonical(t, base); got != want {
			t.Errorf("%s differs from %s:\n%s", names[i+1], names[0], firstDiff(got, want))
		}
	}

	got := map[string]string{}
	var text, files, js bytes.Buffer
	must(t, inspect.WriteText(&text, base, inspect.Options{}))
	must(t, inspect.WriteText(&files, base, inspect.Options{Files: true}))
	must(t, inspect.WriteJSON(&js, base, inspect.Options{Files: true}))
	got["want/text"], got["want/files"] = text.String(), files.String()
	for _, f := range ar.Files {
		if f.Name == "want/json" {
			got["want/json"] = js.String()
		}
	}
	imagetest.Golden(t, file, ar, got, *update)
}

// canonical renders a report without what depends on how the image is stored.
func canonical(t *testing.T, r *inspect.Report) string {
	c := *r
	c.Source, c.Format, c.Storage, c.Compression = "", "", "", ""
	var buf bytes.Buffer
	must(t, inspect.WriteJSON(&buf, &c, inspect.Options{Files: true}))
	var v any
	must(t, json.Unmarshal(buf.Bytes(), &v))
	for _, img := range v.(map[string]any)["images"].([]any) {
		for _, l := range img.(map[string]any)["layers"].([]any) {
			delete(l.(map[string]any), "stored_size")
			delete(l.(map[string]any), "compression")
		}
	}
	b, err := json.MarshalIndent(v, "", "  ")
	must(t, err)
	return string(b)
}

func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return fmt.Sprintf("line %d:\n got  %s\n want %s", i+1, al[i], bl[i])
		}
	}
	return fmt.Sprintf("lengths %d and %d lines", len(al), len(bl))
}

func parseImages(t *testing.T, comment string) []*testImage {
	var images []*testImage
	cur := func() *testImage {
		if len(images) == 0 {
			images = append(images, &testImage{})
		}
		return images[len(images)-1]
	}
	var tw *tar.Writer
	var buf *bytes.Buffer
	uid, gid := 0, 0
	endLayer := func() {
		if tw != nil {
			must(t, tw.Close())
			img := cur()
			img.layers = append(img.layers, buf.Bytes())
			tw = nil
		}
	}
	write := func(h *tar.Header, body string) {
		if tw == nil {
			t.Fatalf("an entry before any layer: %s", h.Name)
		}
		h.Uid, h.Gid, h.ModTime, h.Format = uid, gid, testTime, tar.FormatPAX
		h.Size = int64(len(body))
		must(t, tw.WriteHeader(h))
		_, err := tw.Write([]byte(body))
		must(t, err)
	}
	name := func(p string) string {
		if p == "/" {
			return "./"
		}
		return strings.TrimPrefix(p, "/")
	}
	mode := func(s string) int64 {
		m, err := strconv.ParseInt(s, 8, 64)
		must(t, err)
		return m
	}
	for _, line := range strings.Split(comment, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "image":
			endLayer()
			images = append(images, &testImage{})
		case "tag":
			cur().tags = append(cur().tags, f[1])
		case "layer":
			endLayer()
			buf = &bytes.Buffer{}
			tw = tar.NewWriter(buf)
			uid, gid = 0, 0
		case "repeat":
			endLayer()
			n, err := strconv.Atoi(f[1])
			must(t, err)
			cur().layers = append(cur().layers, cur().layers[n-1])
		case "owner":
			u, g, _ := strings.Cut(f[1], ":")
			uid, _ = strconv.Atoi(u)
			gid, _ = strconv.Atoi(g)
		case "dir":
			n := name(f[1])
			if !strings.HasSuffix(n, "/") {
				n += "/"
			}
			write(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: mode(f[2])}, "")
		case "file":
			_, rest, _ := strings.Cut(line, f[2])
			write(&tar.Header{Typeflag: tar.TypeReg, Name: name(f[1]), Mode: mode(f[2])}, strings.TrimPrefix(rest, " "))
		case "link":
			write(&tar.Header{Typeflag: tar.TypeSymlink, Name: name(f[1]), Linkname: f[2], Mode: 0o777}, "")
		case "hardlink":
			write(&tar.Header{Typeflag: tar.TypeLink, Name: name(f[1]), Linkname: name(f[2]), Mode: 0o644}, "")
		case "char":
			maj, minor, _ := strings.Cut(f[2], ",")
			a, _ := strconv.ParseInt(maj, 10, 64)
			b, _ := strconv.ParseInt(minor, 10, 64)
			write(&tar.Header{Typeflag: tar.TypeChar, Name: name(f[1]), Mode: 0o666, Devmajor: a, Devminor: b}, "")
		case "whiteout":
			d, b := filepath.Split(f[1])
			write(&tar.Header{Typeflag: tar.TypeReg, Name: name(d + ".wh." + b)}, "")
		case "opaque":
			write(&tar.Header{Typeflag: tar.TypeReg, Name: name(strings.TrimSuffix(f[1], "/") + "/.wh..wh..opq")}, "")
		case "history", "history!":
			_, by, _ := strings.Cut(line, " ")
			tm := testTime
			cur().history = append(cur().history, image.History{Created: &tm, CreatedBy: by, EmptyLayer: f[0] == "history!"})
		default:
			t.Fatalf("unknown directive %q", line)
		}
	}
	endLayer()
	for _, img := range images {
		cf := image.ConfigFile{Architecture: "amd64", OS: "linux", Created: &testTime, History: img.history,
			RootFS: image.RootFS{Type: "layers", DiffIDs: img.diffIDs()}}
		cf.Config.Env = []string{"PATH=/bin"}
		b, err := json.Marshal(cf)
		must(t, err)
		img.config = b
	}
	return images
}

// ---- formats -----------------------------------------------------------------------

type format struct {
	name   string
	format string // Archive.Format expected
	single bool   // only for cases of one image
	write  func(p string, images []*testImage) error
	memory func(*testImage) inspect.Image
}

var formats = []format{
	{name: "dfbuild.tar", format: "docker-archive+oci-layout", write: writeDFBuild},
	{name: "legacy.tar", format: "docker-archive", write: writeLegacy(false)},
	{name: "skopeo-docker.tar", format: "docker-archive", write: writeLegacy(true)},
	{name: "oci-gzip", format: "oci-layout", write: toDir(writeOCI(gzipBytes))},
	{name: "oci-zstd", format: "oci-layout", write: toDir(writeOCI(zstdBytes))},
	{name: "oci-archive.tar", format: "oci-layout", write: toTar(writeOCI(gzipBytes))},
	{name: "type-dir", format: "docker-archive", write: toDir(writeUnpacked)},
	{name: "dfbuild.tar.gz", format: "docker-archive+oci-layout", write: gzipFile(writeDFBuild)},
	{name: "memory", single: true, memory: func(ti *testImage) inspect.Image {
		img := &image.Image{Raw: ti.config}
		for _, b := range ti.layers {
			b := b
			img.Layers = append(img.Layers, layerfs.NewLayer(int64(len(b)), "", func(w io.Writer) error {
				_, err := w.Write(b)
				return err
			}))
		}
		return inspect.FromImage(img)
	}},
}

func writeDFBuild(p string, images []*testImage) error {
	var entries []dockerarchive.Entry
	for _, ti := range images {
		img := &image.Image{Raw: ti.config}
		for _, b := range ti.layers {
			b := b
			img.Layers = append(img.Layers, layerfs.NewLayer(int64(len(b)), layerfs.DigestOf(b), func(w io.Writer) error {
				_, err := w.Write(b)
				return err
			}))
		}
		e := dockerarchive.Entry{Image: img}
		for _, s := range ti.tags {
			tg, err := image.ParseTag(s)
			if err != nil {
				return err
			}
			e.Tags = append(e.Tags, tg)
		}
		entries = append(entries, e)
	}
	_, err := dockerarchive.WriteFile(context.Background(), p, entries)
	return err
}

// tarOut collects the files of an archive in the order they are added.
type tarOut struct {
	names []string
	files map[string][]byte
	links map[string]string
}

func newTarOut() *tarOut { return &tarOut{files: map[string][]byte{}, links: map[string]string{}} }

func (o *tarOut) add(name string, b []byte) {
	if _, ok := o.files[name]; !ok {
		o.names = append(o.names, name)
	}
	o.files[name] = b
}

func (o *tarOut) link(name, target string) {
	o.names = append(o.names, name)
	o.links[name] = target
}

func (o *tarOut) writeTar(p string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range o.names {
		h := &tar.Header{Name: n, Mode: 0o644, ModTime: testTime, Typeflag: tar.TypeReg}
		if target, ok := o.links[n]; ok {
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, target, 0o777
		} else {
			h.Size = int64(len(o.files[n]))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write(o.files[n]); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return os.WriteFile(p, buf.Bytes(), 0o644)
}

func (o *tarOut) writeDir(dir string) error {
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

// writeLegacy writes docker save's archive before Engine 25: <v1id>/layer.tar, a
// repeated layer as a symlink to its first copy, <config>.json and repositories.
// With skopeo set it writes skopeo's variant instead: the layers as <diffid>.tar at
// the top, which manifest.json names, and <v1id>/layer.tar symlinks to them.
func writeLegacy(skopeo bool) func(string, []*testImage) error {
	return func(p string, images []*testImage) error {
		o := newTarOut()
		first := map[layerfs.Digest]string{}
		var manifest []dockerarchive.DockerManifest
		repos := map[string]map[string]string{}
		for _, ti := range images {
			m := dockerarchive.DockerManifest{Config: layerfs.DigestOf(ti.config).Hex() + ".json", RepoTags: ti.tags}
			parent := ""
			for _, b := range ti.layers {
				d := layerfs.DigestOf(b)
				v1 := layerfs.DigestOf([]byte(parent + " " + string(d))).Hex()
				parent = v1
				o.add(v1+"/VERSION", []byte("1.0"))
				o.add(v1+"/json", jsonOf(map[string]string{"id": v1}))
				switch {
				case skopeo:
					o.add(d.Hex()+".tar", b)
					o.link(v1+"/layer.tar", "../"+d.Hex()+".tar")
					m.Layers = append(m.Layers, d.Hex()+".tar")
					continue
				case first[d] != "" && first[d] != v1+"/layer.tar":
					o.link(v1+"/layer.tar", "../"+first[d])
				case first[d] == "":
					o.add(v1+"/layer.tar", b)
					first[d] = v1 + "/layer.tar"
				}
				m.Layers = append(m.Layers, v1+"/layer.tar")
			}
			o.add(m.Config, ti.config)
			for _, tg := range ti.tags {
				n, tag, _ := strings.Cut(tg, ":")
				if repos[n] == nil {
					repos[n] = map[string]string{}
				}
				repos[n][tag] = parent
			}
			manifest = append(manifest, m)
		}
		o.add("repositories", jsonOf(repos))
		o.add("manifest.json", jsonOf(manifest))
		return o.writeTar(p)
	}
}

func gzipBytes(b []byte) ([]byte, string) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes(), "application/vnd.oci.image.layer.v1.tar+gzip"
}

func zstdBytes(b []byte) ([]byte, string) {
	zw, err := zstd.NewWriter(nil)
	if err != nil {
		panic(err)
	}
	return zw.EncodeAll(b, nil), "application/vnd.oci.image.layer.v1.tar+zstd"
}

// writeOCI writes an OCI image layout as skopeo copy ... oci: does: compressed
// layers, no manifest.json, one index.json descriptor per name.
func writeOCI(compress func([]byte) ([]byte, string)) func(*tarOut, []*testImage) {
	return func(o *tarOut, images []*testImage) {
		blob := func(b []byte) dockerarchive.Descriptor {
			d := layerfs.DigestOf(b)
			o.add("blobs/sha256/"+d.Hex(), b)
			return dockerarchive.Descriptor{Digest: d, Size: int64(len(b))}
		}
		index := dockerarchive.Index{SchemaVersion: 2, MediaType: dockerarchive.MediaTypeIndex}
		for _, ti := range images {
			m := dockerarchive.Manifest{SchemaVersion: 2, MediaType: dockerarchive.MediaTypeManifest}
			m.Config = blob(ti.config)
			m.Config.MediaType = dockerarchive.MediaTypeConfig
			for _, l := range ti.layers {
				c, mt := compress(l)
				d := blob(c)
				d.MediaType = mt
				m.Layers = append(m.Layers, d)
			}
			md := blob(jsonOf(m))
			md.MediaType = dockerarchive.MediaTypeManifest
			if len(ti.tags) == 0 {
				index.Manifests = append(index.Manifests, md)
			}
			for _, tg := range ti.tags {
				d := md
				d.Annotations = map[string]string{"org.opencontainers.image.ref.name": tg}
				index.Manifests = append(index.Manifests, d)
			}
		}
		o.add("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
		o.add("index.json", jsonOf(index))
	}
}

// writeUnpacked writes the directory of -o type=dir: <diffid>/layer.tar,
// <config digest>.json and manifest.json.
func writeUnpacked(o *tarOut, images []*testImage) {
	var manifest []dockerarchive.DockerManifest
	for _, ti := range images {
		m := dockerarchive.DockerManifest{Config: layerfs.DigestOf(ti.config).Hex() + ".json", RepoTags: ti.tags}
		o.add(m.Config, ti.config)
		for _, l := range ti.layers {
			n := layerfs.DigestOf(l).Hex() + "/layer.tar"
			o.add(n, l)
			m.Layers = append(m.Layers, n)
		}
		manifest = append(manifest, m)
	}
	o.add("manifest.json", jsonOf(manifest))
}

func toDir(fill func(*tarOut, []*testImage)) func(string, []*testImage) error {
	return func(p string, images []*testImage) error {
		o := newTarOut()
		fill(o, images)
		return o.writeDir(p)
	}
}

func toTar(fill func(*tarOut, []*testImage)) func(string, []*testImage) error {
	return func(p string, images []*testImage) error {
		o := newTarOut()
		fill(o, images)
		return o.writeTar(p)
	}
}

func gzipFile(write func(string, []*testImage) error) func(string, []*testImage) error {
	return func(p string, images []*testImage) error {
		if err := write(p+".plain", images); err != nil {
			return err
		}
		b, err := os.ReadFile(p + ".plain")
		if err != nil {
			return err
		}
		gz, _ := gzipBytes(b)
		return os.WriteFile(p, gz, 0o644)
	}
}

// ---- golden files ------------------------------------------------------------------

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
