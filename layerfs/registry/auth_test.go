package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
)

// TestPullTokenAuth checks the bearer-token flow Docker Hub and distribution's token
// server use: a 401 names a realm, the client trades its credentials there for a
// token, and sends that token.
func TestPullTokenAuth(t *testing.T) {
	reg := newTestRegistry(t)
	reg.push(t, "private/app:1", randomImage(t, amd64))
	const token = "t0k3n"
	var tokenRequests atomic.Int32
	reg.intercept = func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path == "/token" {
			user, pass, ok := r.BasicAuth()
			if !ok || user != "ci" || pass != "pw" {
				w.WriteHeader(http.StatusUnauthorized)
				return true
			}
			if !strings.Contains(r.URL.Query().Get("scope"), "repository:private/app:pull") {
				t.Errorf("token scope %q", r.URL.Query().Get("scope"))
			}
			tokenRequests.Add(1)
			json.NewEncoder(w).Encode(map[string]string{"token": token})
			return true
		}
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+reg.host+`/token",service="test-registry"`)
			w.WriteHeader(http.StatusUnauthorized)
			return true
		}
		return false
	}
	// Anonymous: refused, with the hint.
	c := newTestClient(t, t.TempDir(), func(o *Options) { o.Keychain = authn.NewMultiKeychain() })
	if _, err := c.Pull(context.Background(), reg.host+"/private/app:1", amd64); err == nil || !strings.Contains(err.Error(), "docker login") {
		t.Fatalf("anonymous: %v", err)
	}
	// Credentials from a docker config.json: a token is fetched and used.
	dir := t.TempDir()
	cfg := `{"auths":{"` + reg.host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte("ci:pw")) + `"}}}`
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	t.Setenv("REGISTRY_AUTH_FILE", "")
	c = newTestClient(t, t.TempDir(), func(o *Options) { o.Keychain = DefaultKeychain() })
	if _, err := c.Pull(context.Background(), reg.host+"/private/app:1", amd64); err != nil {
		t.Fatalf("with credentials: %v", err)
	}
	if tokenRequests.Load() == 0 {
		t.Error("no token was requested")
	}
}

// TestAuthFile checks podman's auth.json lookups, most specific key first.
func TestAuthFile(t *testing.T) {
	dir := t.TempDir()
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	f := filepath.Join(dir, "auth.json")
	os.WriteFile(f, []byte(`{"auths":{"reg.example:5000":{"auth":"`+enc("host:1")+`"},"reg.example:5000/team":{"auth":"`+enc("team:2")+`"},"docker.io":{"auth":"`+enc("hub:3")+`"}}}`), 0o600)
	a := &authFile{path: f}
	for ref, want := range map[string]string{
		"reg.example:5000/team/app": "team",
		"reg.example:5000/other":    "host",
		"busybox":                   "hub",
		"quay.io/x/y":               "",
	} {
		r, err := newTestClient(t, t.TempDir(), nil).parse(ref)
		if err != nil {
			t.Fatal(err)
		}
		au, err := a.Resolve(r.Context())
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := au.Authorization()
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Username != want {
			t.Errorf("%s: user %q, want %q", ref, cfg.Username, want)
		}
	}
}
