//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/dfbuild/dfbuild/layerfs/registry/registrytest"
)

// The registry end-to-end tests run dfbuild against a real distribution registry on
// 127.0.0.1 (registrytest), with the cache, the registry configuration and the
// docker config pointed into the test's own directories.

// e2eRegistryEnv points dfbuild's cache, registry configuration and credentials into
// fresh directories and returns the cache directory.
func e2eRegistryEnv(t *testing.T) (cache string) {
	t.Helper()
	e2eNoEpoch(t)
	root := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", filepath.Join(root, "cache"))
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(root, "config"))
	t.Setenv("DOCKER_CONFIG", filepath.Join(root, "docker"))
	t.Setenv("REGISTRY_AUTH_FILE", "")
	t.Setenv("DFBUILD_REGISTRY_CONFIG", "")
	return filepath.Join(root, "cache", "dfbuild")
}

// e2eBusyboxBase builds the busybox base with dfbuild (FROM a root filesystem
// tarball, with a CMD) and returns the archive.
func e2eBusyboxBase(t *testing.T, platform string) string {
	t.Helper()
	dir := t.TempDir()
	e2eWrite(t, filepath.Join(dir, "rootfs.tar"), string(e2eRootfsTar(e2eBusybox(t))), 0o644, e2eCtxTime)
	e2eWrite(t, filepath.Join(dir, "Dockerfile"), "FROM rootfs.tar\nENV BASE_VAR=from-the-base\nCMD [\"/bin/sh\"]\n", 0o644, e2eCtxTime)
	out := filepath.Join(t.TempDir(), "base.tar")
	e2eDFBuild(t, buildOptions{contextDir: dir, tags: []string{"base:1"}, output: out, platform: platform})
	return out
}

// e2eSeed puts an archive's image into a registry with go-containerregistry, an
// independent client.
func e2eSeed(t *testing.T, archive, ref string, opts ...remote.Option) v1.Image {
	t.Helper()
	img, err := tarball.ImageFromPath(archive, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("seeding %s: %v", ref, err)
	}
	return img
}

// e2eBuildFrom builds "FROM base" plus a file and a CMD with dfbuild and returns the
// archive, or the error.
func e2eBuildFrom(t *testing.T, base string, extra ...string) (string, string, error) {
	t.Helper()
	dir := t.TempDir()
	e2eWrite(t, filepath.Join(dir, "greeting.txt"), e2eGreeting, 0o644, e2eCtxTime)
	e2eWrite(t, filepath.Join(dir, "Dockerfile"), "FROM "+base+"\nCOPY greeting.txt /\nCMD [\"/bin/cat\", \"/greeting.txt\"]\n", 0o644, e2eCtxTime)
	out := filepath.Join(t.TempDir(), "app.tar")
	o := buildOptions{contextDir: dir, tags: []string{"app:1"}, output: out, progress: "plain"}
	if len(extra) > 0 {
		o.platform = extra[0]
	}
	var stdout, stderr bytes.Buffer
	err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr, o)
	return out, stderr.String(), err
}

// TestE2ERegistryPull builds FROM an image in a registry: the base is pulled into
// the cache, the result runs in Docker, and a second build downloads no blob.
func TestE2ERegistryPull(t *testing.T) {
	requireDocker(t)
	e2eRegistryEnv(t)
	reg := registrytest.Start(t, registrytest.Options{})
	e2eSeed(t, e2eBusyboxBase(t, ""), reg.Ref("base:1"))
	reg.ResetLog()

	out, stderr, err := e2eBuildFrom(t, reg.Ref("base:1"))
	if err != nil {
		t.Fatalf("build FROM %s: %v\n%s", reg.Ref("base:1"), err, stderr)
	}
	if n := reg.BlobGETs("base"); n != 2 {
		t.Errorf("first build: %d blob GETs, want 2 (config and layer)", n)
	}
	tag := e2eName("registry-pull:1")
	e2eRemoveImagesAfter(t, tag)
	e2eDockerLoad(t, out, "app:1")
	e2eDocker(t, "tag", "app:1", tag)
	e2eDocker(t, "rmi", "app:1")
	if got := e2eDockerRun(t, tag); got != e2eGreeting {
		t.Errorf("docker run printed %q", got)
	}
	if got := e2eDockerRun(t, "--entrypoint", "/bin/sh", tag, "-c", "echo $BASE_VAR"); got != "from-the-base\n" {
		t.Errorf("the base's ENV: %q", got)
	}

	reg.ResetLog()
	out2, stderr, err := e2eBuildFrom(t, reg.Ref("base:1"))
	if err != nil {
		t.Fatalf("second build: %v\n%s", err, stderr)
	}
	if n := reg.BlobGETs("base"); n != 0 {
		t.Errorf("second build: %d blob GETs, want 0", n)
	}
	if n := len(reg.Requests()); n != 0 {
		t.Errorf("second build asked the registry %d times; a cached tag needs no request", n)
	}
	if e2eFileSHA256(t, out) != e2eFileSHA256(t, out2) {
		t.Error("the two builds wrote different archives")
	}
}

// TestE2ERegistryMirror serves gcr.io/distroless/static:nonroot from the loopback
// registry, configured as gcr.io's mirror in the registry configuration.
func TestE2ERegistryMirror(t *testing.T) {
	e2eRegistryEnv(t)
	reg := registrytest.Start(t, registrytest.Options{})
	e2eSeed(t, e2eBusyboxBase(t, ""), reg.Ref("distroless/static:nonroot"))
	cfg := filepath.Join(t.TempDir(), "buildkitd.toml")
	e2eWrite(t, cfg, "[registry.\"gcr.io\"]\n  mirrors = [\""+reg.Host+"\"]\n", 0o644, e2eCtxTime)
	t.Setenv("DFBUILD_REGISTRY_CONFIG", cfg)
	reg.ResetLog()
	out, stderr, err := e2eBuildFrom(t, "gcr.io/distroless/static:nonroot")
	if err != nil {
		t.Fatalf("through the mirror: %v\n%s", err, stderr)
	}
	if n := reg.BlobGETs("distroless/static"); n != 2 {
		t.Errorf("%d blob GETs from the mirror, want 2", n)
	}
	a := e2eReadArchive(t, out)
	if h := a.Images[0].Config.History; len(h) == 0 || !strings.Contains(h[len(h)-2].CreatedBy, "COPY greeting.txt") {
		t.Errorf("history: %+v", h)
	}
}

// TestE2ERegistryAuth pulls from a registry with htpasswd auth: anonymous access is
// refused with a hint to log in; credentials in $DOCKER_CONFIG/config.json work, and
// so do those of REGISTRY_AUTH_FILE.
func TestE2ERegistryAuth(t *testing.T) {
	e2eRegistryEnv(t)
	reg := registrytest.Start(t, registrytest.Options{Users: map[string]string{"ci": "s3cret"}})
	e2eSeed(t, e2eBusyboxBase(t, ""), reg.Ref("private/base:1"), remote.WithAuth(&authn.Basic{Username: "ci", Password: "s3cret"}))

	_, stderr, err := e2eBuildFrom(t, reg.Ref("private/base:1"))
	if err == nil || !strings.Contains(err.Error(), "docker login "+reg.Host) {
		t.Fatalf("anonymous: want a hint to log in, got %v\n%s", err, stderr)
	}
	auth := base64.StdEncoding.EncodeToString([]byte("ci:s3cret"))
	e2eWrite(t, filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), `{"auths":{"`+reg.Host+`":{"auth":"`+auth+`"}}}`, 0o600, e2eCtxTime)
	if _, stderr, err := e2eBuildFrom(t, reg.Ref("private/base:1")); err != nil {
		t.Fatalf("with $DOCKER_CONFIG/config.json: %v\n%s", err, stderr)
	}

	// podman's auth file, with a docker config that has nothing for this host.
	e2eRegistryEnv(t)
	podman := filepath.Join(t.TempDir(), "auth.json")
	e2eWrite(t, podman, `{"auths":{"`+reg.Host+`":{"auth":"`+auth+`"}}}`, 0o600, e2eCtxTime)
	e2eWrite(t, filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json"), `{"auths":{}}`, 0o600, e2eCtxTime)
	t.Setenv("REGISTRY_AUTH_FILE", podman)
	if _, stderr, err := e2eBuildFrom(t, reg.Ref("private/base:1")); err != nil {
		t.Fatalf("with REGISTRY_AUTH_FILE: %v\n%s", err, stderr)
	}
}

// TestE2ERegistryTLS pulls over TLS from a registry whose CA is trusted only through
// a certs.d directory, as Docker reads them.
func TestE2ERegistryTLS(t *testing.T) {
	e2eRegistryEnv(t)
	reg := registrytest.Start(t, registrytest.Options{TLS: true})
	e2eSeed(t, e2eBusyboxBase(t, ""), reg.Ref("base:1"), remote.WithTransport(reg.Transport()))
	if _, _, err := e2eBuildFrom(t, reg.Ref("base:1")); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("without the CA: %v", err)
	}
	e2eWrite(t, filepath.Join(os.Getenv("XDG_CONFIG_HOME"), "docker", "certs.d", reg.Host, "ca.crt"), string(reg.CACert), 0o644, e2eCtxTime)
	if _, stderr, err := e2eBuildFrom(t, reg.Ref("base:1")); err != nil {
		t.Fatalf("with certs.d/%s/ca.crt: %v\n%s", reg.Host, err, stderr)
	}
}

// TestE2ERegistryIndex builds FROM a multi-platform index: each --platform gets its
// own image, and a platform the index lacks is an error that lists those it has.
func TestE2ERegistryIndex(t *testing.T) {
	e2eRegistryEnv(t)
	reg := registrytest.Start(t, registrytest.Options{})
	idx := v1.ImageIndex(empty.Index)
	for _, p := range []v1.Platform{{OS: "linux", Architecture: "amd64"}, {OS: "linux", Architecture: "arm64"}} {
		img, err := tarball.ImageFromPath(e2eBusyboxBase(t, p.OS+"/"+p.Architecture), nil)
		if err != nil {
			t.Fatal(err)
		}
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	r, _ := name.ParseReference(reg.Ref("multi:1"), name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	for _, arch := range []string{"amd64", "arm64"} {
		out, stderr, err := e2eBuildFrom(t, reg.Ref("multi:1"), "linux/"+arch)
		if err != nil {
			t.Fatalf("linux/%s: %v\n%s", arch, err, stderr)
		}
		if got := e2eReadArchive(t, out).Images[0].Config.Architecture; got != arch {
			t.Errorf("--platform linux/%s built for %s", arch, got)
		}
	}
	_, _, err := e2eBuildFrom(t, reg.Ref("multi:1"), "linux/s390x")
	if err == nil || !strings.Contains(err.Error(), "the index has linux/amd64, linux/arm64") {
		t.Errorf("a platform the index lacks: %v", err)
	}
}

// TestE2ERegistryInspect inspects an image in a registry: without --files only the
// manifest and config are fetched; --files fetches the layers and reads them.
func TestE2ERegistryInspect(t *testing.T) {
	e2eRegistryEnv(t)
	reg := registrytest.Start(t, registrytest.Options{})
	e2eSeed(t, e2eBusyboxBase(t, ""), reg.Ref("base:1"))
	reg.ResetLog()
	var out bytes.Buffer
	if err := runInspect(context.Background(), &out, reg.Ref("base:1"), inspectOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := reg.BlobGETs("base"); n != 1 {
		t.Errorf("inspect without --files: %d blob GETs, want 1 (the config)", n)
	}
	for _, want := range []string{"Platform: linux/", "Imported from rootfs.tar", "the layers were not read"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("inspect without --files lacks %q:\n%s", want, out.String())
		}
	}
	out.Reset()
	if err := runInspect(context.Background(), &out, reg.Ref("base:1"), inspectOptions{files: true}); err != nil {
		t.Fatal(err)
	}
	if n := reg.BlobGETs("base"); n != 2 {
		t.Errorf("inspect --files: %d blob GETs in all, want 2 (the layer once more)", n)
	}
	if !strings.Contains(out.String(), "/bin/busybox") {
		t.Errorf("inspect --files does not list the layer's files:\n%s", out.String())
	}
}

// TestE2ERegistryPush is the whole round trip: dfbuild pushes the busybox base into
// a registry, builds FROM it and pushes the result with its base layer mounted, not
// uploaded again; docker pulls and runs the result, skopeo reads it, and the
// metadata file names the pushed manifest.
func TestE2ERegistryPush(t *testing.T) {
	requireDocker(t)
	requireSkopeo(t)
	e2eRegistryEnv(t)
	reg := registrytest.Start(t, registrytest.Options{})

	// The base: built FROM the rootfs tarball, pushed by dfbuild.
	dir := t.TempDir()
	e2eWrite(t, filepath.Join(dir, "rootfs.tar"), string(e2eRootfsTar(e2eBusybox(t))), 0o644, e2eCtxTime)
	e2eWrite(t, filepath.Join(dir, "Dockerfile"), "FROM rootfs.tar\nENV BASE_VAR=from-the-base\nCMD [\"/bin/sh\"]\n", 0o644, e2eCtxTime)
	var stdout, stderr bytes.Buffer
	if err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr,
		buildOptions{contextDir: dir, tags: []string{reg.Ref("base:1")}, reg: registryOptions{push: true}}); err != nil {
		t.Fatalf("pushing the base: %v\n%s", err, stderr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "base.tar")); err == nil {
		t.Error("--push without -o wrote an archive")
	}

	// The app, FROM the base, pushed to another repository under two tags.
	app := t.TempDir()
	e2eWrite(t, filepath.Join(app, "greeting.txt"), e2eGreeting, 0o644, e2eCtxTime)
	e2eWrite(t, filepath.Join(app, "Dockerfile"), "FROM "+reg.Ref("base:1")+"\nCOPY greeting.txt /\nCMD [\"/bin/cat\", \"/greeting.txt\"]\n", 0o644, e2eCtxTime)
	md := filepath.Join(t.TempDir(), "metadata.json")
	reg.ResetLog()
	stdout.Reset()
	stderr.Reset()
	if err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr,
		buildOptions{contextDir: app, tags: []string{reg.Ref("app:1"), reg.Ref("app:latest")}, metadataFile: md, reg: registryOptions{push: true}}); err != nil {
		t.Fatalf("pushing the app: %v\n%s", err, stderr.String())
	}
	if n := reg.Mounts("app"); n != 1 {
		t.Errorf("%d blobs mounted from base, want 1 (the base layer)", n)
	}
	if n := reg.BlobUploads("app"); n != 2 {
		t.Errorf("%d blobs uploaded, want 2 (the new layer and the config)", n)
	}
	var meta map[string]string
	b, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &meta); err != nil {
		t.Fatal(err)
	}
	digest := meta["containerimage.digest"]
	if !strings.Contains(stdout.String(), "Pushed "+reg.Ref("app:1")+"@"+digest) {
		t.Errorf("the output does not name %s@%s:\n%s", reg.Ref("app:1"), digest, stdout.String())
	}

	// skopeo, an independent client, sees the same manifest digest.
	var inspected struct{ Digest, Architecture string }
	if err := json.Unmarshal([]byte(e2eMust(t, nil, "skopeo", "inspect", "--tls-verify=false", "docker://"+reg.Ref("app:1"))), &inspected); err != nil {
		t.Fatal(err)
	}
	if inspected.Digest != digest {
		t.Errorf("skopeo sees %s, the metadata file says %s", inspected.Digest, digest)
	}

	// Docker pulls it (loopback registries may be plain HTTP) and runs it.
	e2eRemoveImagesAfter(t, reg.Ref("app:1"))
	e2eDocker(t, "pull", "-q", reg.Ref("app:1"))
	if got := e2eDockerRun(t, reg.Ref("app:1")); got != e2eGreeting {
		t.Errorf("docker run printed %q", got)
	}
	if got := e2eDockerRun(t, "--entrypoint", "/bin/sh", reg.Ref("app:1"), "-c", "echo $BASE_VAR"); got != "from-the-base\n" {
		t.Errorf("the base's ENV: %q", got)
	}

	// Pushing the same build again uploads nothing.
	reg.ResetLog()
	stderr.Reset()
	if err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr,
		buildOptions{contextDir: app, tags: []string{reg.Ref("app:1")}, reg: registryOptions{push: true}}); err != nil {
		t.Fatalf("pushing again: %v\n%s", err, stderr.String())
	}
	if n := reg.BlobUploads("app") + reg.Mounts("app") + reg.ManifestPUTs("app"); n != 0 {
		t.Errorf("the second push wrote %d blobs or manifests, want 0", n)
	}
}

// TestE2ERegistryPushPlatforms pushes a goreleaser-style build for three platforms as
// one image index: skopeo reads the index from the registry, and Docker pulls and
// runs the amd64 image from it.
func TestE2ERegistryPushPlatforms(t *testing.T) {
	requireDocker(t)
	requireSkopeo(t)
	e2eRegistryEnv(t)
	reg := registrytest.Start(t, registrytest.Options{})
	dir := t.TempDir()
	busybox := e2eBusybox(t)
	e2eWrite(t, filepath.Join(dir, "bin", "linux_amd64", "busybox"), string(busybox), 0o755, e2eCtxTime)
	for _, arch := range []string{"arm64", "arm"} {
		e2eWrite(t, filepath.Join(dir, "bin", "linux_"+arch, "busybox"), "not for this machine: "+arch+"\n", 0o755, e2eCtxTime)
	}
	e2eWrite(t, filepath.Join(dir, "Dockerfile"), "FROM scratch\nARG TARGETOS TARGETARCH\nCOPY bin/${TARGETOS}_${TARGETARCH}/busybox /bin/busybox\n"+
		"ENTRYPOINT [\"/bin/busybox\", \"echo\"]\nCMD [\"hello from the index\"]\n", 0o644, e2eCtxTime)
	var stdout, stderr bytes.Buffer
	ref := reg.Ref("multi:1")
	if err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr, buildOptions{contextDir: dir, tags: []string{ref},
		platform: "linux/amd64,linux/arm64,linux/arm/v7", reg: registryOptions{push: true}}); err != nil {
		t.Fatalf("pushing three platforms: %v\n%s", err, stderr.String())
	}
	var idx struct {
		MediaType string
		Manifests []struct {
			Digest   string
			Platform struct{ OS, Architecture, Variant string }
		}
	}
	if err := json.Unmarshal([]byte(e2eMust(t, nil, "skopeo", "inspect", "--raw", "--tls-verify=false", "docker://"+ref)), &idx); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range idx.Manifests {
		p := m.Platform.OS + "/" + m.Platform.Architecture
		if m.Platform.Variant != "" {
			p += "/" + m.Platform.Variant
		}
		got = append(got, p)
	}
	if idx.MediaType != "application/vnd.oci.image.index.v1+json" || strings.Join(got, ",") != "linux/amd64,linux/arm64,linux/arm/v7" {
		t.Errorf("the registry holds %s with %v", idx.MediaType, got)
	}
	e2eRemoveImagesAfter(t, ref)
	e2eDocker(t, "pull", "-q", ref)
	if out := e2eDockerRun(t, ref); out != "hello from the index\n" {
		t.Errorf("docker run printed %q", out)
	}
}
