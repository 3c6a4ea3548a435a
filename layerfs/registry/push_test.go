package registry

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/registry/registrytest"
	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// pushRegistry is go-containerregistry's in-memory registry with blobs kept per
// repository (its own store is global, so every blob would "exist" everywhere) and
// cross-repository mounts (which it lacks), behind a handler that records every
// request in order.
type pushRegistry struct {
	host  string
	blobs *repoBlobs
	mu    sync.Mutex
	log   []pushReq
	// intercept, when set, may answer a request itself (it returns true).
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

// pushSeq orders the requests of every pushRegistry of the test binary.
var pushSeq atomic.Int64

type pushReq struct {
	seq          int64
	method, path string
	query        url.Values
	status       int
}

func (q pushReq) String() string {
	return fmt.Sprintf("%s %s %v %d", q.method, q.path, q.query, q.status)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(s int) { w.status = s; w.ResponseWriter.WriteHeader(s) }

func newPushRegistry(t *testing.T) *pushRegistry {
	t.Helper()
	pr := &pushRegistry{blobs: &repoBlobs{m: map[string][]byte{}}}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)), ggcrregistry.WithBlobHandler(pr.blobs))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() {
			pr.mu.Lock()
			pr.log = append(pr.log, pushReq{pushSeq.Add(1), r.Method, r.URL.Path, r.URL.Query(), sw.status})
			pr.mu.Unlock()
		}()
		pr.mu.Lock()
		icpt := pr.intercept
		pr.mu.Unlock()
		if icpt != nil && icpt(sw, r) {
			return
		}
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/blobs/uploads/") {
			q := r.URL.Query()
			repo := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v2/"), "/blobs/uploads/")
			if d, from := q.Get("mount"), q.Get("from"); d != "" && from != "" && pr.blobs.mount(from, repo, d) {
				sw.Header().Set("Location", "/v2/"+repo+"/blobs/"+d)
				sw.Header().Set("Docker-Content-Digest", d)
				sw.WriteHeader(http.StatusCreated)
				return
			}
		}
		inner.ServeHTTP(sw, r)
	}))
	t.Cleanup(srv.Close)
	pr.host = strings.TrimPrefix(srv.URL, "http://")
	return pr
}

func (pr *pushRegistry) requests() []pushReq {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	return append([]pushReq(nil), pr.log...)
}

func (pr *pushRegistry) reset() {
	pr.mu.Lock()
	pr.log = nil
	pr.mu.Unlock()
}

// uploads counts blob uploads completed in repo (PUT .../blobs/uploads/... 201).
func (pr *pushRegistry) uploads(repo string) int {
	n := 0
	for _, q := range pr.requests() {
		if q.method == "PUT" && q.status == 201 && strings.HasPrefix(q.path, "/v2/"+repo+"/blobs/uploads/") {
			n++
		}
	}
	return n
}

type repoBlobs struct {
	mu sync.Mutex
	m  map[string][]byte // "repo@digest"
}

// key names a blob of a repository. The in-memory registry names the repository of
// an upload's PUT with "/blobs" appended (its blobs.go takes the path minus two
// elements for every blob request), so that suffix is dropped.
func key(repo string, h v1.Hash) string { return strings.TrimSuffix(repo, "/blobs") + "@" + h.String() }

func (b *repoBlobs) Stat(_ context.Context, repo string, h v1.Hash) (int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.m[key(repo, h)]; ok {
		return int64(len(v)), nil
	}
	return 0, ggcrregistry.ErrNotFound
}

func (b *repoBlobs) Get(_ context.Context, repo string, h v1.Hash) (io.ReadCloser, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.m[key(repo, h)]; ok {
		return io.NopCloser(bytes.NewReader(v)), nil
	}
	return nil, ggcrregistry.ErrNotFound
}

func (b *repoBlobs) Put(_ context.Context, repo string, h v1.Hash, rc io.ReadCloser) error {
	v, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[key(repo, h)] = v
	return nil
}

func (b *repoBlobs) mount(from, to, d string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	v, ok := b.m[from+"@"+d]
	if ok {
		b.m[to+"@"+d] = v
	}
	return ok
}

// pushClient is a client with its own cache, anonymous, recording its events.
func pushClient(t *testing.T) (*Client, *[]Event) {
	t.Helper()
	var mu sync.Mutex
	events := &[]Event{}
	c, err := New(Options{CacheDir: t.TempDir(), Config: &Config{}, CertsDirs: []string{}, Keychain: authn.NewMultiKeychain(),
		Progress: func(e Event) {
			mu.Lock()
			*events = append(*events, e)
			mu.Unlock()
		}})
	if err != nil {
		t.Fatal(err)
	}
	return c, events
}

// testLayer is a layer tar with one file of seeded, half-compressible bytes, whose
// diff_id is unknown until it is streamed; writes counts how often it is.
func testLayer(t *testing.T, seed int64, writes *atomic.Int32) *layerfs.Layer {
	t.Helper()
	rnd := rand.New(rand.NewSource(seed))
	data := make([]byte, 96<<10)
	for i := range data {
		if i%2 == 0 {
			data[i] = byte(rnd.Intn(256))
		} else {
			data[i] = 'a'
		}
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("file-%d", seed), Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	tw.Write(data)
	tw.Close()
	b := buf.Bytes()
	return layerfs.NewLayer(int64(len(b)), "", func(w io.Writer) error {
		if writes != nil {
			writes.Add(1)
		}
		_, err := w.Write(b)
		return err
	})
}

func testImage(arch string, layers ...*layerfs.Layer) *image.Image {
	return &image.Image{
		Config: image.ConfigFile{OS: "linux", Architecture: arch, Config: image.Config{Cmd: []string{"/bin/sh"}}},
		Layers: layers,
	}
}

func defaultPush() PushOptions { return PushOptions{Level: -1, OCIMediaTypes: true} }

func mustPush(t *testing.T, c *Client, imgs []PushImage, tags []string, o PushOptions) *Pushed {
	t.Helper()
	p, err := c.Push(context.Background(), imgs, tags, o)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func remoteImage(t *testing.T, ref string) v1.Image {
	t.Helper()
	r, err := name.ParseReference(ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := remote.Image(r)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

// TestPushDeterministic: the same image gives the same digest from one client and
// from two with separate caches; the config is the image's own bytes; gzip carries
// no time or name; a second push compresses and uploads nothing.
func TestPushDeterministic(t *testing.T) {
	t.Parallel()
	reg := newPushRegistry(t)
	var writes atomic.Int32
	mk := func() *image.Image {
		return testImage("amd64", testLayer(t, 1, &writes), testLayer(t, 2, &writes), testLayer(t, 3, &writes))
	}
	c, events := pushClient(t)
	img := mk()
	first := mustPush(t, c, []PushImage{{Image: img}}, []string{reg.host + "/app:v1"}, defaultPush())
	if got := writes.Load(); got != 3 { // each layer hashed in the pass that compresses it
		t.Errorf("first push streamed layers %d times, want 3", got)
	}
	if n := reg.uploads("app"); n != 4 {
		t.Errorf("first push uploaded %d blobs, want 4 (3 layers, config)", n)
	}
	if first.MediaType != types.OCIManifestSchema1 || len(first.Refs) != 1 || first.Refs[0] != reg.host+"/app:v1@"+first.Digest.String() {
		t.Errorf("pushed %+v", first)
	}
	done := 0
	for _, e := range *events {
		if e.Action == "push" && e.Status == "done" {
			done++
		}
	}
	if done != 4 {
		t.Errorf("%d blobs reported done, want 4: %+v", done, *events)
	}

	got := remoteImage(t, reg.host+"/app:v1")
	raw, err := got.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	want, _ := img.ConfigJSON()
	if !bytes.Equal(raw, want) {
		t.Errorf("pushed config differs from ConfigJSON:\n%s\n%s", raw, want)
	}
	m, err := got.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		if l.MediaType != types.OCILayer {
			t.Errorf("layer media type %s", l.MediaType)
		}
		b, err := os.ReadFile(c.Cache().BlobPath(l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		// ID1 ID2 CM=8, FLG=0 (no name, no comment), MTIME=0.
		if !bytes.Equal(b[:8], []byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0}) {
			t.Errorf("gzip header % x", b[:10])
		}
	}

	// Again, with new layer objects (as a new build makes them): each streamed once
	// (compressed again, to the same bytes); nothing uploaded.
	writes.Store(0)
	reg.reset()
	*events = nil
	again := mustPush(t, c, []PushImage{{Image: mk()}}, []string{reg.host + "/app:v1"}, defaultPush())
	if again.Digest != first.Digest {
		t.Errorf("second push: %s, first %s", again.Digest, first.Digest)
	}
	if got := writes.Load(); got != 3 {
		t.Errorf("second push streamed layers %d times, want 3", got)
	}
	for _, q := range reg.requests() {
		if q.method == "PUT" || q.method == "POST" || q.method == "PATCH" {
			t.Errorf("second push sent %s", q)
		}
	}
	exists := 0
	for _, e := range *events {
		if e.Status == "exists" && e.Ref == reg.host+"/app" {
			exists++
		}
	}
	if exists != 4 {
		t.Errorf("second push: %d blobs reported as existing, want 4: %+v", exists, *events)
	}

	// Another client, another cache: the same bytes.
	c2, _ := pushClient(t)
	other := mustPush(t, c2, []PushImage{{Image: mk()}}, []string{reg.host + "/elsewhere:v1"}, defaultPush())
	if other.Digest != first.Digest {
		t.Errorf("a second client pushed %s, the first %s", other.Digest, first.Digest)
	}
}

func TestPushCompressions(t *testing.T) {
	t.Parallel()
	reg := newPushRegistry(t)
	c, _ := pushClient(t)
	for _, tc := range []struct {
		name             string
		o                PushOptions
		manifest, config types.MediaType
		layer            types.MediaType
		magic            []byte
		err              string
	}{
		{name: "zstd", o: PushOptions{Compression: "zstd", Level: -1, OCIMediaTypes: true},
			manifest: types.OCIManifestSchema1, config: types.OCIConfigJSON, layer: types.OCILayerZStd, magic: []byte{0x28, 0xb5, 0x2f, 0xfd}},
		{name: "zstd-docker", o: PushOptions{Compression: "zstd", Level: -1}, err: "zstd compression requires oci-mediatypes=true"},
		{name: "docker", o: PushOptions{Level: -1},
			manifest: types.DockerManifestSchema2, config: types.DockerConfigJSON, layer: types.DockerLayer, magic: []byte{0x1f, 0x8b}},
		{name: "gzip-9", o: PushOptions{Compression: "gzip", Level: 9, OCIMediaTypes: true},
			manifest: types.OCIManifestSchema1, config: types.OCIConfigJSON, layer: types.OCILayer, magic: []byte{0x1f, 0x8b}},
		{name: "uncompressed", o: PushOptions{Compression: "uncompressed", Level: -1},
			manifest: types.DockerManifestSchema2, config: types.DockerConfigJSON, layer: types.DockerUncompressedLayer},
		{name: "bad-level", o: PushOptions{Compression: "gzip", Level: 10}, err: "out of range"},
		{name: "estargz", o: PushOptions{Compression: "estargz", Level: -1}, err: "not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img := testImage("amd64", testLayer(t, 7, nil))
			tag := reg.host + "/" + tc.name + ":latest"
			p, err := c.Push(context.Background(), []PushImage{{Image: img}}, []string{tag}, tc.o)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := remoteImage(t, tag)
			m, err := got.Manifest()
			if err != nil {
				t.Fatal(err)
			}
			if p.MediaType != tc.manifest || m.MediaType != tc.manifest || m.Config.MediaType != tc.config || m.Layers[0].MediaType != tc.layer {
				t.Errorf("media types %s %s %s %s", p.MediaType, m.MediaType, m.Config.MediaType, m.Layers[0].MediaType)
			}
			rc, err := got.Layers()
			if err != nil {
				t.Fatal(err)
			}
			r, err := rc[0].Compressed()
			if err != nil {
				t.Fatal(err)
			}
			head := make([]byte, 4)
			io.ReadFull(r, head)
			r.Close()
			if tc.magic != nil && !bytes.HasPrefix(head, tc.magic) {
				t.Errorf("blob starts % x, want % x", head, tc.magic)
			}
			diffID, _ := img.Layers[0].DiffID()
			if tc.layer == types.DockerUncompressedLayer && m.Layers[0].Digest.String() != string(diffID) {
				t.Errorf("uncompressed blob %s, diff_id %s", m.Layers[0].Digest, diffID)
			}
		})
	}
}

// TestPushBaseLayers: a base layer pulled from repository "base" keeps its blob,
// renamed to OCI's type, and is mounted into "app" rather than uploaded; forcing
// another compression recompresses it.
func TestPushBaseLayers(t *testing.T) {
	t.Parallel()
	reg := newPushRegistry(t)
	base, err := random.Image(2048, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(reg.host+"/base:1", name.Insecure)
	if err := remote.Write(ref, base); err != nil {
		t.Fatal(err)
	}
	c, events := pushClient(t)
	if _, err := c.Pull(context.Background(), reg.host+"/base:1", v1.Platform{OS: "linux", Architecture: "amd64"}); err != nil {
		t.Fatal(err)
	}
	bl, _ := base.Layers()
	baseDigest, _ := bl[0].Digest()
	baseMT, _ := bl[0].MediaType()
	if baseMT != types.DockerLayer {
		t.Fatalf("random base layer is %s", baseMT)
	}
	baseLayer := func() *layerfs.Layer {
		diffID, _ := bl[0].DiffID()
		rc, _ := bl[0].Uncompressed()
		raw, _ := io.ReadAll(rc)
		return layerfs.NewLayer(int64(len(raw)), layerfs.Digest(diffID.String()), func(w io.Writer) error {
			_, err := w.Write(raw)
			return err
		})
	}

	reg.reset()
	img := testImage("amd64", baseLayer(), testLayer(t, 11, nil))
	mustPush(t, c, []PushImage{{Image: img}}, []string{reg.host + "/app:1"}, defaultPush())
	mounts, baseUploads := 0, 0
	for _, q := range reg.requests() {
		if q.method == "POST" && q.status == 201 && q.query.Get("mount") == baseDigest.String() && q.query.Get("from") == "base" {
			mounts++
		}
		if q.method == "PUT" && strings.Contains(q.path, "/blobs/uploads/") && q.query.Get("digest") == baseDigest.String() {
			baseUploads++
		}
	}
	if mounts != 1 || baseUploads != 0 {
		t.Errorf("base layer: %d mounts, %d uploads; want 1 and 0: %v", mounts, baseUploads, reg.requests())
	}
	mounted := false
	for _, e := range *events {
		mounted = mounted || (e.Status == "mounted" && e.Digest == baseDigest.String())
	}
	if !mounted {
		t.Errorf("no mounted event: %+v", *events)
	}
	m, _ := remoteImage(t, reg.host+"/app:1").Manifest()
	if m.Layers[0].Digest != baseDigest || m.Layers[0].MediaType != types.OCILayer {
		t.Errorf("base layer pushed as %s %s, want %s %s", m.Layers[0].Digest, m.Layers[0].MediaType, baseDigest, types.OCILayer)
	}

	// zstd asked: the gzip base blob stays (buildx's default), unless forced.
	zs := PushOptions{Compression: "zstd", Level: -1, OCIMediaTypes: true}
	mustPush(t, c, []PushImage{{Image: testImage("amd64", baseLayer())}}, []string{reg.host + "/app:zstd"}, zs)
	if m, _ := remoteImage(t, reg.host+"/app:zstd").Manifest(); m.Layers[0].Digest != baseDigest {
		t.Errorf("zstd push without force changed the base blob: %s", m.Layers[0].MediaType)
	}
	zs.ForceCompression = true
	mustPush(t, c, []PushImage{{Image: testImage("amd64", baseLayer())}}, []string{reg.host + "/app:forced"}, zs)
	if m, _ := remoteImage(t, reg.host+"/app:forced").Manifest(); m.Layers[0].Digest == baseDigest || m.Layers[0].MediaType != types.OCILayerZStd {
		t.Errorf("forced zstd push kept %s %s", m.Layers[0].Digest, m.Layers[0].MediaType)
	}
}

// TestPushTagsLast: with several tags in two repositories of one registry and one
// of another, every blob and every manifest by digest is written everywhere before
// the first tag anywhere.
func TestPushTagsLast(t *testing.T) {
	t.Parallel()
	reg, reg2 := newPushRegistry(t), newPushRegistry(t)
	c, _ := pushClient(t)
	img := testImage("amd64", testLayer(t, 21, nil), testLayer(t, 22, nil))
	tags := []string{reg.host + "/app:v1", reg.host + "/app:latest", reg.host + "/mirror/app:v1", reg2.host + "/app:v1"}
	p := mustPush(t, c, []PushImage{{Image: img}}, tags, defaultPush())
	if len(p.Refs) != 4 || p.Refs[2] != reg.host+"/mirror/app:v1@"+p.Digest.String() {
		t.Errorf("refs %v", p.Refs)
	}
	var firstTag, lastDep int64 = -1, -1
	for _, q := range append(reg.requests(), reg2.requests()...) {
		isTagPut := q.method == "PUT" && strings.Contains(q.path, "/manifests/") && !strings.Contains(q.path, "/manifests/sha256:")
		switch {
		case isTagPut && (firstTag < 0 || q.seq < firstTag):
			firstTag = q.seq
		case q.method == "PUT" && !isTagPut:
			lastDep = max(lastDep, q.seq)
		}
	}
	if firstTag < 0 || lastDep < 0 || firstTag < lastDep {
		t.Errorf("first tag PUT at %d, last blob or digest PUT at %d: %v %v", firstTag, lastDep, reg.requests(), reg2.requests())
	}
	for _, tag := range tags {
		d, err := remoteImage(t, tag).Digest()
		if err != nil || d != p.Digest {
			t.Errorf("%s is %s (%v), want %s", tag, d, err, p.Digest)
		}
	}
	if reg.uploads("mirror/app") != 3 || reg2.uploads("app") != 3 {
		t.Errorf("mirror/app received %d blobs, the other registry %d, want 3", reg.uploads("mirror/app"), reg2.uploads("app"))
	}
}

// TestPushIndex: two platforms sharing a layer give an index whose children are
// written by digest before it; the shared layer is compressed once.
func TestPushIndex(t *testing.T) {
	t.Parallel()
	reg := newPushRegistry(t)
	c, _ := pushClient(t)
	var writes atomic.Int32
	shared := testLayer(t, 31, &writes)
	arm := &v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	imgs := []PushImage{{Image: testImage("amd64", shared, testLayer(t, 32, nil))}, {Image: testImage("arm64", shared), Platform: arm}}
	for _, oci := range []bool{true, false} {
		o := defaultPush()
		o.OCIMediaTypes = oci
		tag := fmt.Sprintf("%s/multi:oci-%v", reg.host, oci)
		p := mustPush(t, c, imgs, []string{tag}, o)
		wantType := types.OCIImageIndex
		if !oci {
			wantType = types.DockerManifestList
		}
		r, _ := name.ParseReference(tag, name.Insecure)
		idx, err := remote.Index(r)
		if err != nil {
			t.Fatal(err)
		}
		im, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		if p.MediaType != wantType || im.MediaType != wantType || len(im.Manifests) != 2 {
			t.Fatalf("index %s %+v", p.MediaType, im)
		}
		if pl := im.Manifests[0].Platform; pl == nil || pl.Architecture != "amd64" || pl.OS != "linux" {
			t.Errorf("first platform %+v", pl)
		}
		if pl := im.Manifests[1].Platform; pl == nil || !pl.Equals(*arm) {
			t.Errorf("second platform %+v", pl)
		}
		child, err := idx.Image(im.Manifests[1].Digest)
		if err != nil {
			t.Fatal(err)
		}
		if ls, err := child.Layers(); err != nil || len(ls) != 1 {
			t.Errorf("arm64 child: %d layers, %v", len(ls), err)
		}
	}
	if got := writes.Load(); got != 1 { // hashed while compressed, once for both images
		t.Errorf("the shared layer was streamed %d times, want 1", got)
	}
}

// TestPushRealRegistryAuth pushes to distribution's registry with htpasswd auth:
// refused with a hint to log in without credentials, accepted with the ones a
// DOCKER_CONFIG directory holds.
func TestPushRealRegistryAuth(t *testing.T) {
	reg := registrytest.Start(t, registrytest.Options{Users: map[string]string{"alice": "s3cret"}})
	img := testImage("amd64", testLayer(t, 41, nil), testLayer(t, 42, nil))
	tag := reg.Ref("team/app:1")

	anon, _ := pushClient(t)
	_, err := anon.Push(context.Background(), []PushImage{{Image: img}}, []string{tag}, defaultPush())
	t.Logf("anonymous push: %v", err)
	if err == nil || !strings.Contains(err.Error(), "docker login "+reg.Host) || !strings.Contains(err.Error(), tag) {
		t.Fatalf("anonymous push: %v; want an error naming %q with a login hint", err, tag)
	}

	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret"))
	cfg, _ := json.Marshal(map[string]any{"auths": map[string]any{reg.Host: map[string]string{"auth": auth}}})
	if err := os.WriteFile(filepath.Join(dir, "config.json"), cfg, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	c, err := New(Options{CacheDir: t.TempDir(), Config: &Config{}, CertsDirs: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	reg.ResetLog()
	p := mustPush(t, c, []PushImage{{Image: img}}, []string{tag}, defaultPush())
	if n := reg.BlobUploads("team/app"); n != 3 {
		t.Errorf("%d blobs uploaded, want 3", n)
	}
	if n := reg.ManifestPUTs("team/app"); n != 2 { // by digest, then the tag
		t.Errorf("%d manifest PUTs, want 2", n)
	}
	r, _ := name.ParseReference(tag, name.Insecure)
	desc, err := remote.Head(r, remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"}))
	if err != nil || desc.Digest != p.Digest {
		t.Errorf("the tag names %v (%v), want %s", desc, err, p.Digest)
	}

	reg.ResetLog()
	mustPush(t, c, []PushImage{{Image: img}}, []string{tag}, defaultPush())
	if n := reg.BlobUploads("team/app") + reg.ManifestPUTs("team/app"); n != 0 {
		t.Errorf("pushing again wrote %d blobs or manifests", n)
	}
}

// TestPushRefused: a registry that denies the upload gives an error naming the tag
// and the registry with a hint to log in; a push cancelled mid-upload leaves no tag.
func TestPushRefused(t *testing.T) {
	t.Parallel()
	reg := newPushRegistry(t)
	c, _ := pushClient(t)
	img := testImage("amd64", testLayer(t, 51, nil), testLayer(t, 52, nil))
	tag := reg.host + "/locked:1"
	reg.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost {
			return false
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		io.WriteString(w, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`)
		return true
	}
	_, err := c.Push(context.Background(), []PushImage{{Image: img}}, []string{tag}, defaultPush())
	if err == nil || !strings.Contains(err.Error(), `pushing "`+tag+`"`) || !strings.Contains(err.Error(), "DENIED") || !strings.Contains(err.Error(), "refused access") {
		t.Errorf("denied push: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg.mu.Lock()
	reg.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPatch {
			cancel()
		}
		return false
	}
	reg.mu.Unlock()
	tag = reg.host + "/cut:1"
	if _, err := c.Push(ctx, []PushImage{{Image: img}}, []string{tag}, defaultPush()); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("cancelled push: %v", err)
	}
	r, _ := name.ParseReference(tag, name.Insecure)
	if _, err := remote.Head(r); err == nil {
		t.Errorf("a cancelled push left the tag %s", tag)
	}
	for _, q := range reg.requests() {
		if q.method == "PUT" && strings.Contains(q.path, "/cut/manifests/") {
			t.Errorf("a cancelled push wrote a manifest: %s", q)
		}
	}
}
