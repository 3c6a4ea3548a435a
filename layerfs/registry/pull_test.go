package registry

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry is go-containerregistry's in-memory registry on 127.0.0.1 behind a
// handler that counts requests and can be told to misbehave.
type testRegistry struct {
	srv  *httptest.Server
	host string
	mu   sync.Mutex
	reqs []string // "METHOD PATH"
	// intercept, when set, may answer a request itself (return true).
	intercept func(w http.ResponseWriter, r *http.Request) bool
}

func newTestRegistry(t *testing.T) *testRegistry {
	t.Helper()
	tr := &testRegistry{}
	inner := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	tr.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tr.mu.Lock()
		tr.reqs = append(tr.reqs, r.Method+" "+r.URL.Path)
		icpt := tr.intercept
		tr.mu.Unlock()
		if icpt != nil && icpt(w, r) {
			return
		}
		inner.ServeHTTP(w, r)
	}))
	t.Cleanup(tr.srv.Close)
	tr.host = strings.TrimPrefix(tr.srv.URL, "http://")
	return tr
}

// count returns how many requests had the method and a path containing part.
func (tr *testRegistry) count(method, part string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, r := range tr.reqs {
		m, p, _ := strings.Cut(r, " ")
		if m == method && strings.Contains(p, part) {
			n++
		}
	}
	return n
}

func (tr *testRegistry) reset() {
	tr.mu.Lock()
	tr.reqs = nil
	tr.mu.Unlock()
}

// push writes img to the registry under ref (relative to its host).
func (tr *testRegistry) push(t *testing.T, ref string, img v1.Image) name.Reference {
	t.Helper()
	r, err := name.ParseReference(tr.host+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	return r
}

func randomImage(t *testing.T, platform v1.Platform) v1.Image {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = platform.OS, platform.Architecture, platform.Variant
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func newTestClient(t *testing.T, cache string, mod func(*Options)) *Client {
	t.Helper()
	o := Options{CacheDir: cache, Config: &Config{}, CertsDirs: []string{}, Keychain: nil}
	if mod != nil {
		mod(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var amd64 = v1.Platform{OS: "linux", Architecture: "amd64"}

func digestOf(t *testing.T, img v1.Image) v1.Hash {
	t.Helper()
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// TestPullCache checks the cache's promises: a tag is served from the cache once
// pulled, --pull asks again, a digest needs no network once cached, and nothing is
// downloaded twice.
func TestPullCache(t *testing.T) {
	reg := newTestRegistry(t)
	img := randomImage(t, amd64)
	reg.push(t, "base:1", img)
	cache := t.TempDir()
	ctx := context.Background()

	reg.reset()
	p, err := newTestClient(t, cache, nil).Pull(ctx, reg.host+"/base:1", amd64)
	if err != nil {
		t.Fatal(err)
	}
	want := digestOf(t, img)
	if p.Manifest != want || p.Digest != want || p.FromCache {
		t.Errorf("pulled %+v, want manifest %s from the registry", p, want)
	}
	if got := reg.count("GET", "/blobs/"); got != 3 {
		t.Errorf("first pull: %d blob GETs, want 3 (config and two layers)", got)
	}
	if !strings.HasSuffix(p.Name, "/base:1@"+want.String()) {
		t.Errorf("pinned name %q", p.Name)
	}
	for _, d := range []string{want.Hex} {
		if _, err := os.Stat(filepath.Join(cache, "blobs", "sha256", d)); err != nil {
			t.Error(err)
		}
	}

	// Cached tag: no request at all.
	reg.reset()
	p2, err := newTestClient(t, cache, nil).Pull(ctx, reg.host+"/base:1", amd64)
	if err != nil {
		t.Fatal(err)
	}
	if !p2.FromCache || p2.Manifest != want {
		t.Errorf("second pull: %+v", p2)
	}
	if n := len(reg.reqs); n != 0 {
		t.Errorf("second pull made %d requests: %v", n, reg.reqs)
	}

	// The tag moves: the cache keeps the old image until --pull.
	img2 := randomImage(t, amd64)
	reg.push(t, "base:1", img2)
	p3, err := newTestClient(t, cache, nil).Pull(ctx, reg.host+"/base:1", amd64)
	if err != nil || p3.Manifest != want {
		t.Fatalf("cached tag after the registry moved it: %+v, %v", p3, err)
	}
	reg.reset()
	p4, err := newTestClient(t, cache, func(o *Options) { o.Refresh = true }).Pull(ctx, reg.host+"/base:1", amd64)
	if err != nil || p4.Manifest != digestOf(t, img2) {
		t.Fatalf("--pull: %+v, %v", p4, err)
	}
	if got := reg.count("GET", "/manifests/1"); got != 1 {
		t.Errorf("--pull: %d manifest GETs", got)
	}

	// By digest, with the server gone: served from the cache.
	reg.srv.Close()
	p5, err := newTestClient(t, cache, nil).Pull(ctx, reg.host+"/base@"+want.String(), amd64)
	if err != nil || !p5.FromCache || p5.Manifest != want {
		t.Fatalf("digest from the cache, offline: %+v, %v", p5, err)
	}
}

// TestPullDigestWins checks that in name:tag@digest the digest is pulled, whatever
// the tag names.
func TestPullDigestWins(t *testing.T) {
	reg := newTestRegistry(t)
	a, b := randomImage(t, amd64), randomImage(t, amd64)
	reg.push(t, "app:1", a)
	reg.push(t, "app:2", b)
	p, err := newTestClient(t, t.TempDir(), nil).Pull(context.Background(), reg.host+"/app:1@"+digestOf(t, b).String(), amd64)
	if err != nil {
		t.Fatal(err)
	}
	if p.Manifest != digestOf(t, b) {
		t.Errorf("pulled %s, want the digest's image %s", p.Manifest, digestOf(t, b))
	}
}

// TestPullIndex checks that the build's platform is taken from an index, and that a
// missing one lists those the index has.
func TestPullIndex(t *testing.T) {
	reg := newTestRegistry(t)
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"}
	armv7 := v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"}
	imgs := map[string]v1.Image{}
	idx := v1.ImageIndex(empty.Index)
	for _, p := range []v1.Platform{amd64, arm64, armv7} {
		img := randomImage(t, p)
		imgs[formatPlatform(p)] = img
		p := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &p}})
	}
	r, _ := name.ParseReference(reg.host+"/multi:1", name.Insecure)
	if err := remote.WriteIndex(r, idx); err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, t.TempDir(), nil)
	for _, tc := range []struct {
		want v1.Platform
		img  string
	}{
		{amd64, "linux/amd64"},
		{v1.Platform{OS: "linux", Architecture: "arm64"}, "linux/arm64/v8"}, // the default variant
		{armv7, "linux/arm/v7"},
	} {
		p, err := c.Pull(context.Background(), reg.host+"/multi:1", tc.want)
		if err != nil {
			t.Fatal(err)
		}
		if p.Manifest != digestOf(t, imgs[tc.img]) {
			t.Errorf("%s: pulled %s, want the %s image", formatPlatform(tc.want), p.Manifest, tc.img)
		}
		idxDigest, _ := idx.Digest()
		if p.Digest != idxDigest {
			t.Errorf("%s: resolved to %s, want the index %s", formatPlatform(tc.want), p.Digest, idxDigest)
		}
	}
	_, err := c.Pull(context.Background(), reg.host+"/multi:1", v1.Platform{OS: "linux", Architecture: "s390x"})
	if err == nil || !strings.Contains(err.Error(), "no image for linux/s390x: the index has linux/amd64, linux/arm/v7, linux/arm64/v8") {
		t.Errorf("missing platform: %v", err)
	}
}

// TestPullBadBlob checks that a blob with other bytes than its digest is refused and
// leaves nothing in the cache, and that a corrupted cache entry is fetched again.
func TestPullBadBlob(t *testing.T) {
	reg := newTestRegistry(t)
	img := randomImage(t, amd64)
	reg.push(t, "bad:1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	reg.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ld.String()) {
			sz, _ := layers[0].Size()
			w.Header().Set("Content-Length", itoa(sz))
			w.WriteHeader(http.StatusOK)
			w.Write(make([]byte, sz))
			return true
		}
		return false
	}
	cache := t.TempDir()
	c := newTestClient(t, cache, nil)
	_, err := c.Pull(context.Background(), reg.host+"/bad:1", amd64)
	if err == nil || !strings.Contains(err.Error(), ld.String()) {
		t.Fatalf("a corrupt blob: %v", err)
	}
	if _, err := os.Stat(filepath.Join(cache, "blobs", "sha256", ld.Hex)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the corrupt blob was kept: %v", err)
	}
	leftovers, _ := filepath.Glob(filepath.Join(cache, "blobs", "sha256", ".tmp-*"))
	if len(leftovers) != 0 {
		t.Errorf("temporary files left: %v", leftovers)
	}
	if _, ok := c.cache.lookup(reg.host + "/bad:1"); ok {
		t.Error("the tag was recorded although the pull failed")
	}

	// Now the registry behaves; pull, then corrupt the cached blob: it is fetched
	// again.
	reg.intercept = nil
	if _, err := c.Pull(context.Background(), reg.host+"/bad:1", amd64); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(cache, "blobs", "sha256", ld.Hex), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	reg.reset()
	if _, err := c.Pull(context.Background(), reg.host+"/bad:1", amd64); err != nil {
		t.Fatal(err)
	}
	if got := reg.count("GET", ld.String()); got != 1 {
		t.Errorf("the corrupted blob was fetched %d times, want 1", got)
	}
}

func itoa(n int64) string {
	return strings.TrimSpace(strings.Repeat(" ", 0) + func() string {
		b := []byte{}
		if n == 0 {
			return "0"
		}
		for n > 0 {
			b = append([]byte{byte('0' + n%10)}, b...)
			n /= 10
		}
		return string(b)
	}())
}

// TestPullMirror checks that a mirror serves a registry's image under its real name.
func TestPullMirror(t *testing.T) {
	reg := newTestRegistry(t)
	img := randomImage(t, amd64)
	reg.push(t, "distroless/static:nonroot", img)
	cfgFile := filepath.Join(t.TempDir(), "buildkitd.toml")
	os.WriteFile(cfgFile, []byte("debug = true\n[registry.\"gcr.io\"]\n  mirrors = [\""+reg.host+"\"]\n"), 0o644)
	cfg, err := LoadConfig(cfgFile, true)
	if err != nil {
		t.Fatal(err)
	}
	c := newTestClient(t, t.TempDir(), func(o *Options) { o.Config = cfg })
	p, err := c.Pull(context.Background(), "gcr.io/distroless/static:nonroot", amd64)
	if err != nil {
		t.Fatal(err)
	}
	if p.Manifest != digestOf(t, img) || !strings.HasPrefix(p.Name, "gcr.io/distroless/static:nonroot@") {
		t.Errorf("pulled %+v", p)
	}
	// A Docker Hub mirror with a path prefix.
	reg.push(t, "hub/library/busybox:1", img)
	os.WriteFile(cfgFile, []byte("[registry.\"docker.io\"]\n  mirrors = [\"http://"+reg.host+"/hub\"]\n"), 0o644)
	cfg, err = LoadConfig(cfgFile, true)
	if err != nil {
		t.Fatal(err)
	}
	c = newTestClient(t, t.TempDir(), func(o *Options) { o.Config = cfg })
	if p, err = c.Pull(context.Background(), "busybox:1", amd64); err != nil || p.Manifest != digestOf(t, img) {
		t.Fatalf("hub mirror: %+v, %v", p, err)
	}
}

// TestPullErrors checks what a user is told when a pull fails.
func TestPullErrors(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "app:1", randomImage(t, amd64))
	ctx := context.Background()

	reg.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if strings.Contains(r.URL.Path, "/private/") {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		return false
	}
	c := newTestClient(t, t.TempDir(), nil)
	if _, err := c.Pull(ctx, reg.host+"/private/app:1", amd64); err == nil || !strings.Contains(err.Error(), "docker login "+reg.host) {
		t.Errorf("401: %v", err)
	}
	if _, err := c.Pull(ctx, reg.host+"/app:nope", amd64); err == nil || !strings.Contains(err.Error(), `pulling "`+reg.host+`/app:nope"`) || !strings.Contains(err.Error(), "MANIFEST_UNKNOWN") {
		t.Errorf("unknown manifest: %v", err)
	}

	// A refused connection names the registry, quickly.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	if _, err := c.Pull(ctx, closed+"/app:1", amd64); err == nil || !strings.Contains(err.Error(), closed) {
		t.Errorf("refused: %v", err)
	}

	// A registry that stops sending a blob hits the idle timeout.
	reg.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
			return true
		}
		return false
	}
	c = newTestClient(t, t.TempDir(), func(o *Options) { o.IdleTimeout = 200 * time.Millisecond })
	saved := retryBackoff
	retryBackoff = 10 * time.Millisecond
	defer func() { retryBackoff = saved }()
	if _, err := c.Pull(ctx, reg.host+"/app:1", amd64); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Errorf("stall: %v", err)
	}
}

// TestPullRetry checks that a connection reset in the middle of a blob is retried.
func TestPullRetry(t *testing.T) {
	reg := newTestRegistry(t)
	img := randomImage(t, amd64)
	reg.push(t, "app:1", img)
	layers, _ := img.Layers()
	ld, _ := layers[0].Digest()
	var cut atomic.Int32
	reg.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.HasSuffix(r.URL.Path, ld.String()) && cut.Add(1) == 1 {
			sz, _ := layers[0].Size()
			w.Header().Set("Content-Length", itoa(sz))
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return true
		}
		return false
	}
	saved := retryBackoff
	retryBackoff = 10 * time.Millisecond
	defer func() { retryBackoff = saved }()
	if _, err := newTestClient(t, t.TempDir(), nil).Pull(context.Background(), reg.host+"/app:1", amd64); err != nil {
		t.Fatalf("a reset mid-blob was not retried: %v", err)
	}
	if cut.Load() < 2 {
		t.Errorf("the blob was fetched %d times", cut.Load())
	}
}

// TestPullConcurrent checks that builds pulling at once share the cache safely.
func TestPullConcurrent(t *testing.T) {
	reg := newTestRegistry(t)
	var want []v1.Hash
	for i := 0; i < 4; i++ {
		img := randomImage(t, amd64)
		reg.push(t, "app:"+itoa(int64(i)), img)
		want = append(want, digestOf(t, img))
	}
	cache := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			_, err := newTestClient(t, cache, nil).Pull(context.Background(), reg.host+"/app:"+itoa(int64(i%4)), amd64)
			errs <- err
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	c := &Cache{Dir: cache}
	for i, d := range want {
		got, ok := c.lookup(reg.host + "/app:" + itoa(int64(i)))
		if !ok || got.Digest != d {
			t.Errorf("app:%d: index has %v %v, want %s", i, got.Digest, ok, d)
		}
	}
	freed, err := c.Prune()
	if err != nil || freed == 0 {
		t.Errorf("prune: %d, %v", freed, err)
	}
	if _, ok := c.lookup(reg.host + "/app:0"); ok {
		t.Error("prune left the index")
	}
}

// TestPullCancel checks that an interrupted pull (Ctrl-C cancels the build's context)
// leaves the cache as it was: no partial blob, no temporary file, no tag.
func TestPullCancel(t *testing.T) {
	reg := newTestRegistry(t)
	img := randomImage(t, amd64)
	reg.push(t, "app:1", img)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			w.Header().Set("Content-Length", "100000")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("some bytes"))
			w.(http.Flusher).Flush()
			cancel() // the user presses Ctrl-C while the blob streams
			<-r.Context().Done()
			return true
		}
		return false
	}
	cache := t.TempDir()
	_, err := newTestClient(t, cache, nil).Pull(ctx, reg.host+"/app:1", amd64)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("want the cancellation, got %v", err)
	}
	blobs, _ := filepath.Glob(filepath.Join(cache, "blobs", "sha256", "*"))
	hidden, _ := filepath.Glob(filepath.Join(cache, "blobs", "sha256", ".*"))
	for _, b := range append(blobs, hidden...) {
		raw, _ := os.ReadFile(b)
		if strings.Contains(string(raw), "some bytes") || strings.HasPrefix(filepath.Base(b), ".tmp") {
			t.Errorf("a partial blob was left: %s", b)
		}
	}
	if _, ok := (&Cache{Dir: cache}).lookup(reg.host + "/app:1"); ok {
		t.Error("the interrupted pull recorded the tag")
	}
}
