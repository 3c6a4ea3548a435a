//go:build linux

package main

// End-to-end tests of dfbuild inspect on archives and layouts that other tools
// wrote: docker save (Engine 20.10 writes the legacy archive, with a repeated layer
// stored as a symlink to its first copy), skopeo's OCI layout directory (gzip and
// zstd layers, no manifest.json), oci-archive and docker-archive, and podman save.
// Each report is checked against the archive's own manifest.json and config: the
// layer count, the diff_ids, the tags and how history lines up with the layers.

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

// e2eInspectDockerfile makes three layers, the third the same bytes as the first,
// which docker save stores once; /x is written three times, so the first two copies
// are wasted: 2 + 5 bytes.
const e2eInspectDockerfile = `FROM scratch
COPY a.txt /x
COPY b.txt /x
COPY a.txt /x
ENTRYPOINT ["/x"]
`

func TestE2EInspectDockerSave(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	builder := e2eFindBuilder(t)
	dir := t.TempDir()
	ctxDir := filepath.Join(dir, "ctx")
	e2eWrite(t, filepath.Join(ctxDir, "a.txt"), "a\n", 0o644, e2eCtxTime)
	e2eWrite(t, filepath.Join(ctxDir, "b.txt"), "bbbb\n", 0o644, e2eCtxTime)
	e2eWrite(t, filepath.Join(ctxDir, "Dockerfile"), e2eInspectDockerfile, 0o644, e2eCtxTime)
	tag := e2eName("inspect:1")
	builder.build(t, ctxDir, filepath.Join(ctxDir, "Dockerfile"), tag)
	saved := filepath.Join(dir, "saved.tar")
	e2eDocker(t, "save", "-o", saved, tag)

	if major, err := strconv.Atoi(strings.SplitN(builder.engine, ".", 2)[0]); err == nil && major < 25 {
		if n := e2eCountSymlinks(t, saved); n == 0 {
			t.Errorf("docker save (Engine %s) stored no layer as a symlink; the test means to read one", builder.engine)
		}
	}
	want := e2eReadArchive(t, saved)
	rep := e2eInspectJSON(t, saved)
	if rep.Format != "docker-archive" || rep.Storage != "tar" {
		t.Errorf("format %s in a %s, want docker-archive in a tar", rep.Format, rep.Storage)
	}
	e2eCheckInspectReport(t, "docker save", rep, want, [][]string{{tag}}, true)
	img := rep.Images[0]
	if len(img.Layers) == 3 && img.Layers[0].DiffID != img.Layers[2].DiffID {
		t.Errorf("layers 1 and 3 should be the same bytes: %s, %s", img.Layers[0].DiffID, img.Layers[2].DiffID)
	}
	if img.WastedBytes != 7 || img.WastedFiles != 2 {
		t.Errorf("wasted %d bytes in %d files, want 7 in 2", img.WastedBytes, img.WastedFiles)
	}

	t.Run("skopeo", func(t *testing.T) {
		requireSkopeo(t)
		// skopeo names an OCI image with the reference as typed, and normalises it
		// in a docker-archive.
		copies := []struct {
			name, dest, format, compression, tag string
			args                                 []string
		}{
			{name: "oci dir, gzip", dest: "oci:" + filepath.Join(dir, "oci-gzip") + ":inspect:1", format: "oci-layout", compression: "gzip", tag: "inspect:1"},
			{name: "oci dir, zstd", dest: "oci:" + filepath.Join(dir, "oci-zstd") + ":inspect:1", format: "oci-layout", compression: "zstd", tag: "inspect:1",
				args: []string{"--dest-compress-format", "zstd"}},
			{name: "oci-archive", dest: "oci-archive:" + filepath.Join(dir, "oci.tar") + ":inspect:1", format: "oci-layout", compression: "gzip", tag: "inspect:1"},
			{name: "docker-archive", dest: "docker-archive:" + filepath.Join(dir, "skopeo.tar") + ":inspect:1", format: "docker-archive",
				tag: "docker.io/library/inspect:1"},
		}
		for _, c := range copies {
			args := append(append([]string{"copy", "-q"}, c.args...), "docker-archive:"+saved, c.dest)
			e2eMust(t, nil, "skopeo", args...)
			// The path is what lies between the transport and the reference.
			p := strings.TrimSuffix(strings.SplitN(c.dest, ":", 2)[1], ":inspect:1")
			rep := e2eInspectJSON(t, p)
			if rep.Format != c.format {
				t.Errorf("%s: format %s, want %s", c.name, rep.Format, c.format)
			}
			// skopeo rewrites the config when it writes OCI, so the image ID changes;
			// the diff_ids and history do not. Compare with the config it wrote.
			e2eCheckInspectReport(t, "skopeo "+c.name, rep, e2eWithConfig(t, want, e2eFirstConfig(t, p)), [][]string{{c.tag}}, c.format == "docker-archive")
			for _, l := range rep.Images[0].Layers {
				if l.Compression != c.compression {
					t.Errorf("skopeo %s: layer %d stored %q, want %q", c.name, l.Index, l.Compression, c.compression)
				}
			}
		}
	})
}

// TestE2EInspectPodmanSave loads a dfbuild archive into a scratch podman store and
// inspects what podman save writes back.
func TestE2EInspectPodmanSave(t *testing.T) {
	imagetest.SkipShort(t)
	requirePodman(t)
	e2eParallel(t)
	dir := t.TempDir()
	ctxDir := filepath.Join(dir, "ctx")
	e2eWrite(t, filepath.Join(ctxDir, "a.txt"), "a\n", 0o644, e2eCtxTime)
	e2eWrite(t, filepath.Join(ctxDir, "b.txt"), "bbbb\n", 0o644, e2eCtxTime)
	e2eWrite(t, filepath.Join(ctxDir, "Dockerfile"), e2eInspectDockerfile, 0o644, e2eCtxTime)
	archive := filepath.Join(dir, "ours.tar")
	e2eDFBuild(t, buildOptions{contextDir: ctxDir, output: archive, tags: []string{"inspect:1"}})
	ours := e2eInspectJSON(t, archive)

	// A private store, so that nothing touches the machine's images.
	podman := []string{"--root", filepath.Join(dir, "root"), "--runroot", filepath.Join(dir, "run"), "--storage-driver", "vfs"}
	e2eMust(t, nil, "podman", append(podman, "load", "-q", "-i", archive)...)
	for _, format := range []string{"docker-archive", "oci-archive", "oci-dir"} {
		out := filepath.Join(dir, "podman-"+format)
		e2eMust(t, nil, "podman", append(podman, "save", "-q", "--format", format, "-o", out, "docker.io/library/inspect:1")...)
		rep := e2eInspectJSON(t, out)
		if len(rep.Images) != 1 {
			t.Fatalf("podman save --format %s: %d images", format, len(rep.Images))
		}
		got, want := rep.Images[0], ours.Images[0]
		if len(got.Layers) != len(want.Layers) {
			t.Fatalf("podman save --format %s: %d layers, want %d", format, len(got.Layers), len(want.Layers))
		}
		for i := range got.Layers {
			if got.Layers[i].DiffID != want.Layers[i].DiffID {
				t.Errorf("podman save --format %s: layer %d is %s, want %s", format, i+1, got.Layers[i].DiffID, want.Layers[i].DiffID)
			}
		}
		if got.WastedBytes != 7 || len(got.History) != len(want.History) {
			t.Errorf("podman save --format %s: wasted %d bytes, %d history rows; want 7 and %d",
				format, got.WastedBytes, len(got.History), len(want.History))
		}
		if format == "docker-archive" && got.ID != want.ID {
			t.Errorf("podman save --format docker-archive: image %s, want %s", got.ID, want.ID)
		}
	}
}

// e2eInspectJSON runs dfbuild inspect --json --files in-process and decodes it.
func e2eInspectJSON(t *testing.T, p string) *inspect.Report {
	t.Helper()
	var out bytes.Buffer
	if err := runInspect(context.Background(), &out, p, inspectOptions{json: true, files: true}); err != nil {
		t.Fatalf("dfbuild inspect --json %s: %v", p, err)
	}
	var r inspect.Report
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("dfbuild inspect --json %s: %v\n%s", p, err, out.String())
	}
	return &r
}

// e2eWithConfig returns the single-image archive want with another config, for
// tools that rewrite the config.
func e2eWithConfig(t *testing.T, want *e2eArchive, raw []byte) *e2eArchive {
	t.Helper()
	img := want.Images[0]
	img.ConfigRaw, img.Config = raw, e2eConfig{}
	if err := json.Unmarshal(raw, &img.Config); err != nil {
		t.Fatal(err)
	}
	return &e2eArchive{Images: []e2eImage{img}}
}

// e2eFirstConfig returns the config blob of the first image of an archive or layout
// directory, found through manifest.json, or else index.json and the manifest.
func e2eFirstConfig(t *testing.T, p string) []byte {
	t.Helper()
	files := map[string][]byte{}
	if fi, err := os.Stat(p); err == nil && fi.IsDir() {
		err := filepath.WalkDir(p, func(q string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(p, q)
			b, err := os.ReadFile(q)
			files[filepath.ToSlash(rel)] = b
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	} else {
		files = e2eReadArchiveFiles(t, p)
	}
	if m, ok := files["manifest.json"]; ok {
		var dm []struct{ Config string }
		if err := json.Unmarshal(m, &dm); err != nil || len(dm) == 0 {
			t.Fatalf("%s: manifest.json: %v", p, err)
		}
		return files[dm[0].Config]
	}
	blob := func(d string) []byte { return files["blobs/sha256/"+strings.TrimPrefix(d, "sha256:")] }
	var idx struct{ Manifests []struct{ Digest string } }
	if err := json.Unmarshal(files["index.json"], &idx); err != nil || len(idx.Manifests) == 0 {
		t.Fatalf("%s: index.json: %v", p, err)
	}
	var m struct{ Config struct{ Digest string } }
	if err := json.Unmarshal(blob(idx.Manifests[0].Digest), &m); err != nil {
		t.Fatalf("%s: manifest: %v", p, err)
	}
	return blob(m.Config.Digest)
}

// e2eReadArchiveFiles reads the regular files of a tar.
func e2eReadArchiveFiles(t *testing.T, file string) map[string][]byte {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			files[strings.TrimPrefix(filepath.Clean(h.Name), "./")] = b
		}
	}
}

// e2eCheckInspectReport compares a report with the archive's own view of it: one
// report image per manifest entry, the ID the digest of the config, the layers'
// diff_ids the config's, the tags, and each non-empty history entry paired with the
// next layer. sameLayers says the archive's layer bytes can be compared too.
func e2eCheckInspectReport(t *testing.T, what string, rep *inspect.Report, want *e2eArchive, tags [][]string, sameLayers bool) {
	t.Helper()
	if len(rep.Images) != len(want.Images) {
		t.Fatalf("%s: %d images, want %d", what, len(rep.Images), len(want.Images))
	}
	for i, w := range want.Images {
		got := rep.Images[i]
		if id := string(layerfs.DigestOf(w.ConfigRaw)); got.ID != id {
			t.Errorf("%s: image %d has ID %s, want %s", what, i+1, got.ID, id)
		}
		if !slices.Equal(got.Tags, tags[i]) {
			t.Errorf("%s: image %d has tags %q, want %q", what, i+1, got.Tags, tags[i])
		}
		if len(got.Layers) != len(w.Config.RootFS.DiffIDs) {
			t.Fatalf("%s: %d layers, the config has %d diff_ids", what, len(got.Layers), len(w.Config.RootFS.DiffIDs))
		}
		for j, l := range got.Layers {
			if l.DiffID != w.Config.RootFS.DiffIDs[j] {
				t.Errorf("%s: layer %d is %s, the config says %s", what, j+1, l.DiffID, w.Config.RootFS.DiffIDs[j])
			}
			if sameLayers && j < len(w.Layers) && l.Size != int64(len(w.Layers[j])) {
				t.Errorf("%s: layer %d has %d bytes, the archive's has %d", what, j+1, l.Size, len(w.Layers[j]))
			}
		}
		if len(got.History) != len(w.Config.History) {
			t.Fatalf("%s: %d history rows, the config has %d entries", what, len(got.History), len(w.Config.History))
		}
		next := 1
		for j, h := range w.Config.History {
			row := got.History[j]
			wantLayer := 0
			if !h.EmptyLayer {
				wantLayer = next
				next++
			}
			if row.Layer != wantLayer || row.CreatedBy != h.CreatedBy || row.EmptyLayer != h.EmptyLayer {
				t.Errorf("%s: history %d is layer %d, %q (empty %v); want layer %d, %q (empty %v)",
					what, j+1, row.Layer, row.CreatedBy, row.EmptyLayer, wantLayer, h.CreatedBy, h.EmptyLayer)
			}
		}
	}
}

// e2eCountSymlinks counts the symlinks in a tar.
func e2eCountSymlinks(t *testing.T, file string) int {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return n
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeSymlink {
			n++
		}
	}
}
