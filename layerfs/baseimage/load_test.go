package baseimage_test

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/baseimage"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar")

// fixture returns two images that share their first layer:
//
//   - app (tags app:1 and app:latest): a base layer with every kind of entry; a
//     gzip layer with whiteouts (a file, a directory, a lower symlink's target kept),
//     an opaque directory, a changed file and a hard link; and a plain layer that
//     replaces a lower symlink and a lower file by directories and a lower directory
//     by a file;
//   - other (tag registry.example/team/other:2): the base layer twice, stored
//     with zstd, so a repeated compressed layer is read from its first spool.
func fixture(t testing.TB) []*fixImage {
	base := layerTar(t,
		dirE("bin/"),
		fileE("bin/busybox", strings.Repeat("\x7fELF busybox ", 100)),
		linkE("bin/sh", "busybox"),
		hardE("bin/ls", "bin/busybox"),
		dirE("dev/"),
		charE("dev/null", 1, 3),
		with(dirE("etc/"), func(h *tar.Header) { h.ModTime = t0.Add(-time.Hour) }),
		fileE("etc/group", "root:x:0:\n"),
		fileE("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
		linkE("etc/mtab", "/proc/mounts"),
		dirE("opt/"),
		linkE("opt/link", "/var/cache"),
		fileE("opt/file", "lower file\n"),
		dirE("opt/dir/"),
		fileE("opt/dir/inside", "inside a lower dir\n"),
		dirE("usr/"),
		dirE("usr/share/"),
		dirE("usr/share/doc/"),
		fileE("usr/share/doc/a", "doc a\n"),
		dirE("usr/share/doc/sub/"),
		fileE("usr/share/doc/sub/b", "doc b\n"),
		with(dirE("var/"), func(h *tar.Header) { h.Uid, h.Gid, h.Mode = 1000, 1000, 0o750 }),
		dirE("var/cache/"),
		fileE("var/cache/x", "cached\n"),
		with(fileE("var/setuid", "s"), func(h *tar.Header) { h.Mode = 0o4755 }),
	)
	changes := layerTar(t,
		dirE("bin/"),
		fileE("bin/tool", "a tool\n"),
		hardE("bin/tool2", "bin/tool"),
		with(dirE("etc/"), func(h *tar.Header) { h.ModTime = t0.Add(time.Hour) }),
		whE("etc/group"),
		fileE("etc/passwd", "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n"),
		dirE("usr/"),
		dirE("usr/share/"),
		dirE("usr/share/doc/"),
		opqE("usr/share/doc"),
		fileE("usr/share/doc/c", "doc c, the only one left\n"),
		whE("var/cache"),
		whE("var/never-was"),
	)
	reshape := layerTar(t,
		dirE("opt/"),
		dirE("opt/link/"),
		fileE("opt/link/real", "opt/link is a directory now\n"),
		dirE("opt/file/"),
		fileE("opt/file/new", "opt/file is a directory now\n"),
		fileE("opt/dir", "opt/dir is a file now\n"),
	)
	return []*fixImage{
		newFixImage([]string{"app:1", "app:latest"}, [][]byte{base, changes, reshape}, []string{"", "gzip", ""}),
		newFixImage([]string{"registry.example/team/other:2"}, [][]byte{base, base}, []string{"zstd", "zstd"}),
	}
}

// TestLoad writes the fixture in every storage format, loads each image from each,
// and checks the flattened trees against testdata/flatten.txtar, and the layers
// against the fixture's bytes.
func TestLoad(t *testing.T) {
	images := fixture(t)
	const golden = "testdata/flatten.txtar"
	ar, err := txtar.ParseFile(golden)
	must(t, err)
	refs := []struct{ ref, section string }{
		{"app:1", "want/app"},
		{"registry.example/team/other:2", "want/other"},
	}
	got := map[string]string{}
	for _, f := range formats {
		t.Run(f.name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "image")
			f.write(t, p, images)
			if ok, err := baseimage.IsImage(p); !ok || err != nil {
				t.Errorf("IsImage = %v, %v", ok, err)
			}
			for i, r := range refs {
				spool := filepath.Join(dir, "spool-"+r.section[5:])
				must(t, os.Mkdir(spool, 0o755))
				b, err := baseimage.Load(p, r.ref, spool)
				if err != nil {
					t.Fatalf("Load %s: %v", r.ref, err)
				}
				listing := fsListing(t, b.FS)
				if prev, ok := got[r.section]; ok && prev != listing {
					t.Errorf("%s: the tree differs from the other formats'\n--- got\n%s--- before\n%s", r.ref, listing, prev)
				}
				got[r.section] = listing

				want := images[i]
				if b.ID != layerfs.DigestOf(want.config) {
					t.Errorf("%s: ID %s, want %s", r.ref, b.ID, layerfs.DigestOf(want.config))
				}
				if b.Config.Author != "fixture" || len(b.Config.History) != len(want.layers) || b.Config.Config.Cmd[0] != "/bin/sh" {
					t.Errorf("%s: config %+v", r.ref, b.Config)
				}
				checkLayers(t, b, want.layers)
				if c := b.FS.Commit(); len(c.Entries) != 0 {
					t.Errorf("%s: the loaded tree has pending changes: %d entries", r.ref, len(c.Entries))
				}
				must(t, b.Close())
				must(t, b.Close()) // a second Close does nothing
				if left, _ := os.ReadDir(spool); len(left) != 0 {
					t.Errorf("%s: Close left %d spool files", r.ref, len(left))
				}
			}
		})
	}
	imagetest.Golden(t, golden, ar, got, *update)
}

// checkLayers checks that each layer writes exactly the fixture's uncompressed
// bytes, with the config's diff_id, twice over.
func checkLayers(t *testing.T, b *baseimage.Base, want [][]byte) {
	t.Helper()
	if len(b.Layers) != len(want) {
		t.Fatalf("%d layers, want %d", len(b.Layers), len(want))
	}
	for i, l := range b.Layers {
		d, known := l.KnownDiffID()
		if !known || d != layerfs.DigestOf(want[i]) || d != b.Config.RootFS.DiffIDs[i] {
			t.Errorf("layer %d: diff_id %s (known %v), want %s", i+1, d, known, layerfs.DigestOf(want[i]))
		}
		if l.Size() != int64(len(want[i])) {
			t.Errorf("layer %d: size %d, want %d", i+1, l.Size(), len(want[i]))
		}
		for range 2 {
			var buf bytes.Buffer
			if _, err := l.WriteTo(&buf); err != nil {
				t.Fatalf("layer %d: %v", i+1, err)
			}
			if !bytes.Equal(buf.Bytes(), want[i]) {
				got, _ := imagetest.Listing(&buf)
				wantL, _ := imagetest.Listing(bytes.NewReader(want[i]))
				t.Fatalf("layer %d writes other bytes\n--- got\n%s--- want\n%s", i+1, got, wantL)
			}
		}
	}
}

// TestLoadThenCommit checks that the loaded tree is base content: a change made
// after Load commits alone, with the unchanged parents as the image had them.
func TestLoadThenCommit(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "image.tar")
	formats[0].write(t, p, fixture(t))
	b, err := baseimage.Load(p, "app", dir)
	must(t, err)
	defer b.Close()
	must(t, b.FS.Put("/usr/share/doc/sub2", &layerfs.Node{Type: layerfs.TypeDir, Mode: 0o755, ModTime: t0}))
	must(t, b.FS.Remove("/etc/passwd"))
	l, err := b.FS.Commit().Layer(layerfs.TarOptions{BuildTime: time.Unix(1700000000, 0)})
	must(t, err)
	var buf bytes.Buffer
	_, err = l.WriteTo(&buf)
	must(t, err)
	got, err := imagetest.Listing(&buf)
	must(t, err)
	want := `d 0755 0:0 0 1700000000 etc/
f 0000 0:0 0 0 etc/.wh.passwd sha256:e3b0c44298fc
d 0755 0:0 0 1600000000 usr/
d 0755 0:0 0 1600000000 usr/share/
d 0755 0:0 0 1700000000 usr/share/doc/
d 0755 0:0 0 1600000000 usr/share/doc/sub2/
`
	if got != want {
		t.Errorf("the commit after Load:\n%s\nwant:\n%s", got, want)
	}
}

// TestRefs checks how names pick an image.
func TestRefs(t *testing.T) {
	dir := t.TempDir()
	images := fixture(t)
	p := filepath.Join(dir, "image.tar")
	formats[0].write(t, p, images)
	appID, otherID := layerfs.DigestOf(images[0].config), layerfs.DigestOf(images[1].config)
	tests := []struct {
		ref     string
		want    layerfs.Digest
		wantErr []string
	}{
		{ref: "app:1", want: appID},
		{ref: "app", want: appID},
		{ref: "app:latest", want: appID},
		{ref: "docker.io/library/app:1", want: appID},
		{ref: "library/app:latest", want: appID},
		{ref: "registry.example/team/other:2", want: otherID},
		{ref: otherID.Hex()[:12], want: otherID},
		{ref: string(otherID), want: otherID},
		{ref: "", wantErr: []string{p + " holds 2 images; name one of them: app:1, app:latest (linux/amd64); registry.example/team/other:2 (linux/amd64)"}},
		{ref: "app:2", wantErr: []string{p + ` holds no image named "app:2"; it holds 2 images: app:1, app:latest (linux/amd64); registry.example/team/other:2`}},
		{ref: "other:2", wantErr: []string{`no image named "other:2"`}},
		{ref: "App:1", wantErr: []string{`no image named "App:1"`}},
		{ref: otherID.Hex()[:11], wantErr: []string{"no image named"}},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			b, err := baseimage.Load(p, tt.ref, dir)
			if tt.wantErr != nil {
				if err == nil {
					b.Close()
					t.Fatalf("Load succeeded")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q\nwant it to contain %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if b.ID != tt.want {
				t.Errorf("loaded %s (%v), want %s", b.ID, b.Tags, tt.want)
			}
		})
	}

	// One image: no name needed.
	one := filepath.Join(dir, "one.tar")
	formats[0].write(t, one, images[1:])
	b, err := baseimage.Load(one, "", dir)
	must(t, err)
	if b.ID != otherID {
		t.Errorf("the only image: loaded %s", b.ID)
	}
	b.Close()
}

// TestPlatforms checks LoadMatching on a layout that names one image per platform.
func TestPlatforms(t *testing.T) {
	dir := t.TempDir()
	l := layerTar(t, fileE("f", "x"))
	amd := newFixImage([]string{"multi:1"}, [][]byte{l}, []string{""})
	arm := newFixImage([]string{"multi:1"}, [][]byte{l}, []string{""})
	var cf image.ConfigFile
	must(t, json.Unmarshal(arm.config, &cf))
	cf.Architecture = "arm64"
	arm.config = imagetest.JSON(cf)
	p := filepath.Join(dir, "oci")
	o := files()
	o.AddOCILayout(archiveImages([]*fixImage{amd, arm}, ""), false)
	must(t, o.WriteDir(p))

	if _, err := baseimage.Load(p, "multi:1", dir); err == nil || !strings.Contains(err.Error(), `"multi:1" names 2 images: multi:1 (linux/amd64); multi:1 (linux/arm64)`) {
		t.Errorf("Load of an ambiguous name: %v", err)
	}
	b, err := baseimage.LoadMatching(p, "multi:1", dir, func(c *image.ConfigFile) bool { return c.Architecture == "arm64" })
	must(t, err)
	if b.Config.Architecture != "arm64" {
		t.Errorf("loaded %s", b.Config.Architecture)
	}
	b.Close()
	// Without a name, the platform picks among all the images.
	b, err = baseimage.LoadMatching(p, "", dir, func(c *image.ConfigFile) bool { return c.Architecture == "amd64" })
	must(t, err)
	if b.Config.Architecture != "amd64" {
		t.Errorf("loaded %s", b.Config.Architecture)
	}
	b.Close()
	_, err = baseimage.LoadMatching(p, "multi:1", dir, func(c *image.ConfigFile) bool { return false })
	if err == nil || !strings.Contains(err.Error(), "none of the 2 images") {
		t.Errorf("LoadMatching that keeps nothing: %v", err)
	}
}

// TestLoadErrors checks that bad images fail with errors that name the archive,
// the image, the layer and the entry, and leave no spool file behind.
func TestLoadErrors(t *testing.T) {
	good := layerTar(t, fileE("f", "x"))
	cutGzip := func(o *imagetest.Files) {
		o.Edit(func(_ string, b []byte) []byte {
			if len(b) > 2 && b[0] == 0x1f && b[1] == 0x8b {
				return b[:len(b)/2]
			}
			return b
		})
	}
	tests := []struct {
		name   string
		layers [][]byte
		comp   []string
		edit   func(img *fixImage)      // before the archive is written
		mangle func(o *imagetest.Files) // after
		want   []string
	}{
		{name: "diff-id", layers: [][]byte{good}, comp: []string{"gzip"},
			edit: func(img *fixImage) { img.layers[0] = layerTar(t, fileE("f", "y")) },
			want: []string{"layer 1 of 1 (blobs/sha256/", "): decompressed from gzip: its tar has digest sha256:",
				", but the config lists " + string(layerfs.DigestOf(good)) + " as its diff_id"}},
		{name: "absolute", layers: [][]byte{layerTar(t, fileE("/etc/x", "x"))}, comp: []string{""},
			want: []string{"layer 1 of 1 (blobs/sha256/", `): entry "/etc/x": absolute path: a layer must use relative names`}},
		{name: "dotdot", layers: [][]byte{good, layerTar(t, fileE("a/../../x", "x"))}, comp: []string{"", ""},
			want: []string{"layer 2 of 2 (blobs/sha256/", `): entry "a/../../x": ".." in the path would leave the root`}},
		{name: "whiteout-and-file", layers: [][]byte{good, layerTar(t, fileE("f", "y"), whE("f"))}, comp: []string{"", "gzip"},
			want: []string{"layer 2 of 2 (", `decompressed from gzip: entry ".wh.f": a whiteout for "/f", which the layer also writes`}},
		{name: "file-under-whiteout", layers: [][]byte{good, layerTar(t, whE("d"), fileE("d/x", "y"))}, comp: []string{"", ""},
			want: []string{"layer 2 of 2 (", `entry "d/x": the layer also has a whiteout for "/d"`}},
		{name: "symlink-escape", layers: [][]byte{layerTar(t, dirE("a/"), linkE("a/l", "../../etc"))}, comp: []string{""},
			want: []string{`entry "a/l": symlink to "../../etc" points outside the root`}},
		{name: "through-symlink", layers: [][]byte{layerTar(t, linkE("l", "/tmp"), fileE("l/f", "x"))}, comp: []string{""},
			want: []string{`entry "l/f": its parent "/l" is not a directory`}},
		{name: "hardlink-lower", layers: [][]byte{good, layerTar(t, hardE("g", "f"))}, comp: []string{"", ""},
			want: []string{`entry "g": hard link to "f", which is not a file earlier in the layer`}},
		{name: "duplicate", layers: [][]byte{layerTar(t, fileE("f", "1"), fileE("./f", "2"))}, comp: []string{"zstd"},
			want: []string{`decompressed from zstd: entry "./f": duplicate path: the layer names it twice`}},
		{name: "whiteout-dot", layers: [][]byte{good, layerTar(t, fileE(".wh..", ""))}, comp: []string{"", ""},
			want: []string{`entry ".wh..": a whiteout that names no entry`}},
		{name: "truncated-gzip", layers: [][]byte{good}, comp: []string{"gzip"}, mangle: cutGzip,
			want: []string{"layer 1 of 1 (blobs/sha256/", "unexpected EOF"}},
		{name: "not-a-tar", layers: [][]byte{[]byte(strings.Repeat("not a tar\n", 100))}, comp: []string{""},
			want: []string{"layer 1 of 1 (blobs/sha256/", "): not a tar archive"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			img := newFixImage([]string{"bad:1"}, tt.layers, tt.comp)
			if tt.edit != nil {
				tt.edit(img)
			}
			o := files()
			o.AddOCILayout(archiveImages([]*fixImage{img}, ""), false)
			if tt.mangle != nil {
				tt.mangle(o)
			}
			p := filepath.Join(dir, "bad.tar")
			must(t, o.WriteTar(p))
			spool := filepath.Join(dir, "spool")
			must(t, os.Mkdir(spool, 0o755))
			_, err := baseimage.Load(p, "bad:1", spool)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			t.Log(err)
			prefix := p + ": image bad:1 (linux/amd64): layer "
			if !strings.HasPrefix(err.Error(), prefix) {
				t.Errorf("error %q\nwant it to start with %q", err, prefix)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nwant it to contain %q", err, w)
				}
			}
			if left, _ := os.ReadDir(spool); len(left) != 0 {
				t.Errorf("a failed Load left %d spool files", len(left))
			}
		})
	}

	// Not an image at all: a root filesystem tarball.
	dir := t.TempDir()
	p := filepath.Join(dir, "rootfs.tar")
	must(t, os.WriteFile(p, layerTar(t, dirE("bin/"), fileE("bin/sh", "x")), 0o644))
	if _, err := baseimage.Load(p, "", dir); !errors.Is(err, inspect.ErrNotImage) || !strings.Contains(err.Error(), p) {
		t.Errorf("Load of a rootfs tarball: %v", err)
	}
	if _, err := baseimage.Load(filepath.Join(dir, "missing"), "", dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load of a missing file: %v", err)
	}
}

// TestIsImage checks what IsImage takes for an image.
func TestIsImage(t *testing.T) {
	dir := t.TempDir()
	rootfs := layerTar(t, dirE("./"), dirE("./bin/"), fileE("./bin/sh", "x"), fileE("./manifest.json", "[]"))
	// A root filesystem made only of what an image archive might hold still counts
	// as one only with an index.
	hexDir := strings.Repeat("a", 64)
	tests := []struct {
		name  string
		bytes []byte
		want  bool
	}{
		{"rootfs", rootfs, false},
		{"rootfs-gzip", imagetest.Gzip(rootfs), false},
		{"rootfs-zstd", imagetest.Zstd(rootfs), false},
		{"rootfs-top-level-files", layerTar(t, fileE("hello", "x"), fileE("README", "y")), false},
		{"empty-file", nil, false},
		{"garbage", []byte(strings.Repeat("garbage", 100)), false},
		{"bad-gzip", append([]byte{0x1f, 0x8b, 0x08}, bytes.Repeat([]byte{0xff}, 100)...), false},
		{"manifest-only", layerTar(t, fileE("manifest.json", "[]")), true},
		{"index-only", layerTar(t, fileE("./index.json", "{}")), true},
		{"tar-of-dir", layerTar(t, dirE("./"), dirE("./"+hexDir+"/"), fileE("./"+hexDir+"/layer.tar", "x"), fileE("./manifest.json", "[]")), true},
		{"nested-hex-dir", layerTar(t, dirE(hexDir+"/"), dirE(hexDir+"/etc/"), fileE(hexDir+"/etc/x", "x"), fileE("manifest.json", "[]")), false},
		{"non-hex-layer-dir", layerTar(t, dirE("layer1/"), fileE("layer1/layer.tar", "x"), fileE("manifest.json", "[]")), false},
		{"manifest-first", layerTar(t, fileE("manifest.json", "[]"), dirE("abc/"), fileE("abc/layer.tar", "x")), false},
		{"manifest-in-a-dir", layerTar(t, dirE("img/"), fileE("img/manifest.json", "[]")), false},
		{"truncated-after-manifest", layerTar(t, fileE("manifest.json", "[]"), fileE("x", strings.Repeat("x", 2000)))[:1600], true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			must(t, os.WriteFile(p, tt.bytes, 0o644))
			got, err := baseimage.IsImage(p)
			// A manifest among entries no image archive holds is neither an image
			// nor a root filesystem, and IsImage says why (issue 11).
			mixed := strings.HasPrefix(tt.name, "rootfs") && tt.name != "rootfs-top-level-files" ||
				tt.name == "nested-hex-dir" || tt.name == "non-hex-layer-dir" || tt.name == "manifest-first"
			if mixed {
				if !errors.Is(err, baseimage.ErrMixedArchive) || got {
					t.Errorf("IsImage = %v, %v; want ErrMixedArchive", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("IsImage = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
	// Directories.
	empty := filepath.Join(dir, "empty-dir")
	must(t, os.Mkdir(empty, 0o755))
	if ok, err := baseimage.IsImage(empty); ok || err != nil {
		t.Errorf("an empty directory: %v, %v", ok, err)
	}
	if _, err := baseimage.IsImage(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing path: %v", err)
	}
}

// TestLoadManifest checks that LoadManifest reads the one image a manifest digest
// names from a layout holding several, as the registry cache does.
func TestLoadManifest(t *testing.T) {
	dir := t.TempDir()
	l := layerTar(t, fileE("f", "x"))
	amd := newFixImage([]string{"multi:1"}, [][]byte{l}, []string{""})
	arm := newFixImage([]string{"multi:1"}, [][]byte{l}, []string{""})
	var cf image.ConfigFile
	must(t, json.Unmarshal(arm.config, &cf))
	cf.Architecture = "arm64"
	arm.config = imagetest.JSON(cf)
	p := filepath.Join(dir, "oci")
	o := files()
	o.AddOCILayout(archiveImages([]*fixImage{amd, arm}, ""), false)
	must(t, o.WriteDir(p))

	var idx dockerarchive.Index
	raw, err := os.ReadFile(filepath.Join(p, "index.json"))
	must(t, err)
	must(t, json.Unmarshal(raw, &idx))
	for i, want := range []string{"amd64", "arm64"} {
		b, err := baseimage.LoadManifest(p, idx.Manifests[i].Digest, dir)
		must(t, err)
		if b.Config.Architecture != want {
			t.Errorf("manifest %d: loaded %s, want %s", i, b.Config.Architecture, want)
		}
		b.Close()
	}
	missing := layerfs.DigestOf([]byte("no such manifest"))
	if _, err := baseimage.LoadManifest(p, missing, dir); err == nil || !strings.Contains(err.Error(), string(missing)) {
		t.Errorf("LoadManifest of a missing manifest: %v", err)
	}
}
