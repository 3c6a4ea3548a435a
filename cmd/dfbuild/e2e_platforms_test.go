//go:build linux

package main

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
	"time"
)

// TestE2EPlatforms builds a goreleaser-style Dockerfile for linux/amd64, linux/arm64
// and linux/arm/v7 in one command and reads the index with skopeo, which checks every
// digest as it copies: each manifest's and config's platform, each platform's own
// binary, the shared layer stored once. The amd64 image is the one a single-platform
// build makes, and it runs in Docker.
func TestE2EPlatforms(t *testing.T) {
	requireDocker(t)
	requireSkopeo(t)
	busybox := e2eBusybox(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	dir := t.TempDir()
	ctxDir := filepath.Join(dir, "ctx")
	mtime := time.Unix(1600000000, 0)
	e2eWrite(t, filepath.Join(ctxDir, "Dockerfile"), `FROM scratch
ARG TARGETOS TARGETARCH
COPY shared.txt /
COPY bin/${TARGETOS}_${TARGETARCH}/app /busybox
ENTRYPOINT ["/busybox", "cat", "/shared.txt"]
`, 0o644, mtime)
	e2eWrite(t, filepath.Join(ctxDir, "shared.txt"), "shared by every platform\n", 0o644, mtime)
	e2eWrite(t, filepath.Join(ctxDir, "bin/linux_amd64/app"), string(busybox), 0o755, mtime)
	e2eWrite(t, filepath.Join(ctxDir, "bin/linux_arm64/app"), "arm64 binary\n", 0o755, mtime)
	e2eWrite(t, filepath.Join(ctxDir, "bin/linux_arm/app"), "arm binary\n", 0o755, mtime)
	tag := e2eName("multi:1")
	e2eRemoveImagesAfter(t, tag)

	out := filepath.Join(dir, "multi.tar")
	var stdout, stderr bytes.Buffer
	o := buildOptions{contextDir: ctxDir, tags: []string{tag}, output: "type=oci,dest=" + out,
		platform: "linux/amd64,linux/arm64,linux/arm/v7"}
	if err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr, o); err != nil {
		t.Fatalf("dfbuild: %v\nstderr:\n%s", err, stderr.String())
	}

	// Shared layers once: 4 layers (shared + 3 binaries), 3 configs, 3 manifests, 1 index.
	if n := e2eCountBlobs(t, out); n != 11 {
		t.Errorf("%d blobs in the archive, want 11", n)
	}

	// skopeo reads the OCI archive by its tag and copies every platform, checking
	// digests on the way.
	raw := e2eMust(t, nil, "skopeo", "inspect", "--raw", "oci-archive:"+out+":1")
	var idx struct {
		MediaType string
		Manifests []struct {
			Digest   string
			Platform struct{ OS, Architecture, Variant string }
		}
	}
	if err := json.Unmarshal([]byte(raw), &idx); err != nil {
		t.Fatal(err)
	}
	want := []struct{ arch, variant, app string }{{"amd64", "", string(busybox)}, {"arm64", "", "arm64 binary\n"}, {"arm", "v7", "arm binary\n"}}
	if idx.MediaType != "application/vnd.oci.image.index.v1+json" || len(idx.Manifests) != len(want) {
		t.Fatalf("skopeo inspect --raw: %s", raw)
	}
	layout := filepath.Join(dir, "layout")
	e2eMust(t, nil, "skopeo", "copy", "--all", "--preserve-digests", "--dest-oci-accept-uncompressed-layers", "--quiet", "oci-archive:"+out+":1", "oci:"+layout+":copy")
	for i, w := range want {
		m := idx.Manifests[i]
		if m.Platform.OS != "linux" || m.Platform.Architecture != w.arch || m.Platform.Variant != w.variant {
			t.Errorf("index entry %d: platform %+v, want linux/%s %s", i, m.Platform, w.arch, w.variant)
		}
		var man struct {
			Config struct{ Digest string }
			Layers []struct{ Digest string }
		}
		e2eReadBlob(t, layout, m.Digest, &man)
		var cf struct{ OS, Architecture, Variant string }
		e2eReadBlob(t, layout, man.Config.Digest, &cf)
		if cf.OS != "linux" || cf.Architecture != w.arch || cf.Variant != w.variant {
			t.Errorf("%s: config platform %+v", w.arch, cf)
		}
		if len(man.Layers) != 2 {
			t.Fatalf("%s: %d layers, want 2", w.arch, len(man.Layers))
		}
		if got := e2eBlobFile(t, layout, man.Layers[1].Digest, "busybox"); got != w.app {
			t.Errorf("%s: /busybox holds %q", w.arch, e2eShort(got))
		}
		if got := e2eBlobFile(t, layout, man.Layers[0].Digest, "shared.txt"); got != "shared by every platform\n" {
			t.Errorf("%s: /shared.txt holds %q", w.arch, got)
		}
	}

	// The same Dockerfile built for amd64 alone: the same manifest as the index's
	// amd64 entry, and it runs.
	single := filepath.Join(dir, "amd64.tar")
	e2eDFBuild(t, buildOptions{contextDir: ctxDir, tags: []string{tag}, output: single, platform: "linux/amd64"})
	var top struct{ Manifests []struct{ Digest string } }
	if err := json.Unmarshal([]byte(e2eTarFile(t, single, "index.json")), &top); err != nil || len(top.Manifests) != 1 {
		t.Fatalf("index.json of the single-platform archive: %v", err)
	}
	if top.Manifests[0].Digest != idx.Manifests[0].Digest {
		t.Errorf("the single-platform amd64 manifest is %s, the index's amd64 entry %s", top.Manifests[0].Digest, idx.Manifests[0].Digest)
	}
	e2eDockerLoad(t, single, tag)
	if got := e2eDockerRun(t, tag); got != "shared by every platform\n" {
		t.Errorf("docker run printed %q", got)
	}
}

func e2eShort(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// e2eCountBlobs counts the blobs of an archive, failing on a name stored twice.
func e2eCountBlobs(t *testing.T, file string) int {
	t.Helper()
	n := 0
	seen := map[string]bool{}
	e2eWalkTar(t, file, func(h *tar.Header, _ io.Reader) {
		if seen[h.Name] {
			t.Errorf("%s is stored twice", h.Name)
		}
		seen[h.Name] = true
		if h.Typeflag == tar.TypeReg && strings.HasPrefix(h.Name, "blobs/sha256/") {
			n++
		}
	})
	return n
}

// e2eTarFile returns one file of a tar.
func e2eTarFile(t *testing.T, file, name string) string {
	t.Helper()
	var out []byte
	e2eWalkTar(t, file, func(h *tar.Header, r io.Reader) {
		if h.Name == name {
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			out = b
		}
	})
	return string(out)
}

func e2eWalkTar(t *testing.T, file string, fn func(*tar.Header, io.Reader)) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		fn(h, tr)
	}
}

// e2eReadBlob decodes a JSON blob of an OCI layout directory.
func e2eReadBlob(t *testing.T, layout, digest string, v any) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:")))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatal(err)
	}
}

// e2eBlobFile returns a file of an uncompressed layer blob of an OCI layout.
func e2eBlobFile(t *testing.T, layout, digest, name string) string {
	t.Helper()
	var out string
	e2eWalkTar(t, filepath.Join(layout, "blobs", "sha256", strings.TrimPrefix(digest, "sha256:")), func(h *tar.Header, r io.Reader) {
		if strings.TrimPrefix(h.Name, "./") == name {
			b, err := io.ReadAll(r)
			if err != nil {
				t.Fatal(err)
			}
			out = string(b)
		}
	})
	return out
}
