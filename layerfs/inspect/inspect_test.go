package inspect_test

import (
	"archive/tar"
	"bytes"
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

// archiveImages are the images as imagetest writes them, each layer compressed by
// compress (nil stores it as it is).
func archiveImages(images []*testImage, compress func([]byte) ([]byte, string)) []imagetest.ArchiveImage {
	var out []imagetest.ArchiveImage
	for _, ti := range images {
		ai := imagetest.ArchiveImage{Tags: ti.tags, Config: ti.config}
		for _, l := range ti.layers {
			b, mt := l, imagetest.MediaTypeLayer
			if compress != nil {
				b, mt = compress(l)
			}
			ai.Layers = append(ai.Layers, imagetest.Blob{Data: b, MediaType: mt})
		}
		out = append(out, ai)
	}
	return out
}

func newTarOut() *imagetest.Files { return imagetest.NewFiles(testTime, false) }

// writeLegacy writes docker save's archive before Engine 25: <v1id>/layer.tar, a
// repeated layer as a symlink to its first copy, <config>.json and repositories.
// With skopeo set it writes skopeo's variant instead: the layers as <diffid>.tar at
// the top, which manifest.json names, and <v1id>/layer.tar symlinks to them.
func writeLegacy(skopeo bool) func(string, []*testImage) error {
	return func(p string, images []*testImage) error {
		layout := imagetest.DockerSave
		if skopeo {
			layout = imagetest.TopLayersV1Links
		}
		o := newTarOut()
		o.AddDockerArchive(archiveImages(images, nil), layout)
		return o.WriteTar(p)
	}
}

func gzipBytes(b []byte) ([]byte, string) {
	return imagetest.Gzip(b), imagetest.MediaTypeLayerGzip
}

func zstdBytes(b []byte) ([]byte, string) {
	return imagetest.Zstd(b), imagetest.MediaTypeLayerZstd
}

// writeOCI writes an OCI image layout as skopeo copy ... oci: does: compressed
// layers, no manifest.json, one index.json descriptor per name.
func writeOCI(compress func([]byte) ([]byte, string)) func(*imagetest.Files, []*testImage) {
	return func(o *imagetest.Files, images []*testImage) {
		o.AddOCILayout(archiveImages(images, compress), false)
	}
}

// writeUnpacked writes the directory of -o type=dir: <diffid>/layer.tar,
// <config digest>.json and manifest.json.
func writeUnpacked(o *imagetest.Files, images []*testImage) {
	var manifest []dockerarchive.DockerManifest
	for _, ti := range images {
		m := dockerarchive.DockerManifest{Config: layerfs.DigestOf(ti.config).Hex() + ".json", RepoTags: ti.tags}
		o.Add(m.Config, ti.config)
		for _, l := range ti.layers {
			n := layerfs.DigestOf(l).Hex() + "/layer.tar"
			o.Add(n, l)
			m.Layers = append(m.Layers, n)
		}
		manifest = append(manifest, m)
	}
	o.Add("manifest.json", imagetest.JSON(manifest))
}

func toDir(fill func(*imagetest.Files, []*testImage)) func(string, []*testImage) error {
	return func(p string, images []*testImage) error {
		o := newTarOut()
		fill(o, images)
		return o.WriteDir(p)
	}
}

func toTar(fill func(*imagetest.Files, []*testImage)) func(string, []*testImage) error {
	return func(p string, images []*testImage) error {
		o := newTarOut()
		fill(o, images)
		return o.WriteTar(p)
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
