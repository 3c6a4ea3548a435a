package registrytest

import (
	"context"
	"crypto/tls"
	"io"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestParseLine(t *testing.T) {
	for _, tc := range []struct {
		line string
		want Request
		ok   bool
	}{
		{
			line: `127.0.0.1 - - [03/Dec/2026:18:58:56 +0000] "GET /v2/ HTTP/1.1" 401 87 "" "go-containerregistry/v0.22.1"`,
			want: Request{Method: "GET", Path: "/v2/", Status: 401},
			ok:   true,
		},
		{
			line: `127.0.0.1 - alice [03/Dec/2026:18:58:56 +0000] "POST /v2/b/blobs/uploads/?from=a&mount=sha256%3Aab HTTP/1.1" 201 0 "" "x"`,
			want: Request{Method: "POST", Path: "/v2/b/blobs/uploads/", Query: "from=a&mount=sha256%3Aab", Status: 201, User: "alice"},
			ok:   true,
		},
		{
			line: `127.0.0.1 - - [03/Dec/2026:18:58:56 +0000] "GET /v2/?a=b\"c HTTP/1.1" 200 2 "" "curl/7.88.1"`,
			want: Request{Method: "GET", Path: "/v2/", Query: `a=b\"c`, Status: 200},
			ok:   true,
		},
		{line: `time="2026-12-03T18:58:56Z" level=error msg="x"`},
		{line: ``},
	} {
		got, ok := parseLine(tc.line)
		got.Line = ""
		if ok != tc.ok || got != tc.want {
			t.Errorf("parseLine(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.ok)
		}
	}
}

func TestRepo(t *testing.T) {
	for path, want := range map[string]string{
		"/v2/":                               "",
		"/v2/_catalog":                       "",
		"/v2/a/b/blobs/sha256:00":            "a/b",
		"/v2/a/blobs/uploads/123":            "a",
		"/v2/a/manifests/latest":             "a",
		"/v2/a/tags/list":                    "a",
		"/v2/x/blobs/y/manifests/sha256:abc": "x/blobs/y",
	} {
		if got := (Request{Path: path}).Repo(); got != want {
			t.Errorf("Repo of %q = %q, want %q", path, got, want)
		}
	}
}

// get sends GET /v2/ with optional basic auth and returns the status.
func get(t *testing.T, r *Registry, user, pass string) int {
	t.Helper()
	req, err := http.NewRequest("GET", r.URL+"/v2/", nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	c := &http.Client{Transport: r.Transport()}
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("GET /v2/: %v", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func TestStartPlain(t *testing.T) {
	t.Parallel()
	r := Start(t, Options{})
	if r.CACert != nil || r.CAFile != "" || r.URL != "http://"+r.Host {
		t.Errorf("plain registry: CACert %v, CAFile %q, URL %q", r.CACert != nil, r.CAFile, r.URL)
	}
	if got := get(t, r, "", ""); got != 200 {
		t.Errorf("GET /v2/ = %d, want 200", got)
	}
	reqs := r.Requests()
	if len(reqs) != 1 || reqs[0].Path != "/v2/" || reqs[0].Status != 200 {
		t.Errorf("Requests() = %+v, want one GET /v2/ 200 (the readiness probes are not logged)", reqs)
	}
	r.ResetLog()
	if reqs := r.Requests(); len(reqs) != 0 {
		t.Errorf("Requests() after ResetLog = %+v", reqs)
	}
}

func TestStartAuth(t *testing.T) {
	t.Parallel()
	r := Start(t, Options{Users: map[string]string{"alice": "s3cret", "bob": "hunter2"}})
	if got := get(t, r, "", ""); got != 401 {
		t.Errorf("GET /v2/ without credentials = %d, want 401", got)
	}
	if got := get(t, r, "alice", "wrong"); got != 401 {
		t.Errorf("GET /v2/ with a wrong password = %d, want 401", got)
	}
	if got := get(t, r, "bob", "hunter2"); got != 200 {
		t.Errorf("GET /v2/ with credentials = %d, want 200", got)
	}

	ref, err := name.ParseReference(r.Ref("auth/img:v1"))
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err == nil {
		t.Error("anonymous push succeeded against an htpasswd registry")
	}
	if err := remote.Write(ref, img, remote.WithAuth(&authn.Basic{Username: "alice", Password: "s3cret"})); err != nil {
		t.Fatalf("pushing with credentials: %v", err)
	}
	if got := r.ManifestPUTs("auth/img"); got != 1 {
		t.Errorf("ManifestPUTs = %d, want 1", got)
	}
}

// TestStartTLS pushes and pulls a random image over https, trusting only the
// returned CA, and checks the access-log counts.
func TestStartTLS(t *testing.T) {
	t.Parallel()
	r := Start(t, Options{TLS: true})
	if len(r.CACert) == 0 || r.CAFile == "" || r.URL != "https://"+r.Host {
		t.Fatalf("TLS registry: CACert %d bytes, CAFile %q, URL %q", len(r.CACert), r.CAFile, r.URL)
	}
	if got := get(t, r, "", ""); got != 200 {
		t.Errorf("GET /v2/ = %d, want 200", got)
	}
	// Without the CA the handshake must fail: the certificate is not a public one.
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{}}}
	if resp, err := c.Get(r.URL + "/v2/"); err == nil {
		resp.Body.Close()
		t.Error("GET /v2/ verified without the registry's CA")
	}
	c.CloseIdleConnections()
	r.ResetLog()

	const layers = 3
	img, err := random.Image(256, layers)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(r.Ref("tls/img:v1"))
	if err != nil {
		t.Fatal(err)
	}
	opts := []remote.Option{remote.WithTransport(r.Transport()), remote.WithContext(context.Background())}
	if err := remote.Write(ref, img, opts...); err != nil {
		t.Fatalf("pushing: %v", err)
	}
	// Layers and config are uploaded; the manifest is PUT once.
	if got := r.BlobUploads("tls/img"); got != layers+1 {
		t.Errorf("BlobUploads = %d, want %d", got, layers+1)
	}
	if got := r.BlobHEADs("tls/img"); got != layers+1 {
		t.Errorf("BlobHEADs = %d, want %d", got, layers+1)
	}
	if got := r.ManifestPUTs("tls/img"); got != 1 {
		t.Errorf("ManifestPUTs = %d, want 1", got)
	}
	if got := r.BlobGETs("tls/img"); got != 0 {
		t.Errorf("BlobGETs after a push = %d, want 0", got)
	}

	r.ResetLog()
	pulled, err := remote.Image(ref, opts...)
	if err != nil {
		t.Fatalf("pulling: %v", err)
	}
	ls, err := pulled.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range ls {
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		_, err = io.Copy(io.Discard, rc)
		rc.Close()
		if err != nil {
			t.Fatalf("reading a layer: %v", err)
		}
	}
	// The config blob is fetched by remote.Image's Layers (it reads the config file
	// for the diffIDs) or not at all; the layers are fetched once each.
	if got := r.BlobGETs("tls/img"); got < layers || got > layers+1 {
		t.Errorf("BlobGETs after pulling = %d, want %d or %d", got, layers, layers+1)
	}

	// A copy to another repository mounts every blob instead of uploading it.
	r.ResetLog()
	dst, err := name.ParseReference(r.Ref("tls/copy:v1"))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(dst, pulled, opts...); err != nil {
		t.Fatalf("copying: %v", err)
	}
	if got, up := r.Mounts("tls/copy"), r.BlobUploads("tls/copy"); got != layers+1 || up != 0 {
		t.Errorf("copy: Mounts = %d, BlobUploads = %d; want %d and 0", got, up, layers+1)
	}
	if !r.Running() {
		t.Errorf("the registry exited; stderr: %s", r.Stderr())
	}
}
