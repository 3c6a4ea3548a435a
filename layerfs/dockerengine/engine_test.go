package dockerengine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// fakeEngine serves the two calls the client makes on a unix socket in a short
// temporary directory (socket paths are limited to about 100 bytes).
type fakeEngine struct {
	host       string
	apiVersion string
	reply      func(w http.ResponseWriter, body []byte)

	mu       sync.Mutex
	requests []string // "METHOD PATH?QUERY Content-Type"
	body     []byte
}

func newFakeEngine(t *testing.T, apiVersion string, reply func(w http.ResponseWriter, body []byte)) *fakeEngine {
	t.Helper()
	dir, err := os.MkdirTemp("", "de")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeEngine{host: "unix://" + sock, apiVersion: apiVersion, reply: reply}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			// The client aborted its upload, as LoadFrom does when the archive fails
			// (TestLoadFrom); whether the request got here first is up to the
			// scheduler, so it is neither an error nor recorded.
			return
		}
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI()+" "+r.Header.Get("Content-Type"))
		f.mu.Unlock()
		if r.URL.Path == "/_ping" {
			if f.apiVersion != "" {
				w.Header().Set("Api-Version", f.apiVersion)
			}
			io.WriteString(w, "OK")
			return
		}
		f.mu.Lock()
		f.body = body
		f.mu.Unlock()
		f.reply(w, body)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return f
}

func (f *fakeEngine) client(t *testing.T) *Client {
	t.Helper()
	c, err := New(Endpoint{Host: f.host})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func loaded(w http.ResponseWriter, _ []byte) {
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"stream":"Loaded image: docker.io/library/app:1\n"}`+"\n"+`{"stream":"Loaded image ID: sha256:abc\n"}`+"\n")
}

func TestLoad(t *testing.T) {
	t.Parallel()
	cases := []struct {
		server, used string
	}{
		{"1.41", "1.41"}, // Engine 20.10
		{"1.47", MaxAPIVersion},
		{"", MinAPIVersion},
	}
	for _, c := range cases {
		t.Run("api "+c.server, func(t *testing.T) {
			t.Parallel()
			f := newFakeEngine(t, c.server, loaded)
			lines, err := f.client(t).Load(context.Background(), strings.NewReader("the archive"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(lines, "|"); got != "Loaded image: docker.io/library/app:1|Loaded image ID: sha256:abc" {
				t.Errorf("lines %q", got)
			}
			want := []string{"GET /_ping ", "POST /v" + c.used + "/images/load?quiet=1 application/x-tar"}
			if strings.Join(f.requests, "\n") != strings.Join(want, "\n") {
				t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(f.requests, "\n"), strings.Join(want, "\n"))
			}
			if string(f.body) != "the archive" {
				t.Errorf("body %q", f.body)
			}
		})
	}
}

func TestLoadErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name       string
		apiVersion string
		reply      func(w http.ResponseWriter, body []byte)
		want       string
	}{
		{"error inside the 200", "1.41", func(w http.ResponseWriter, _ []byte) {
			io.WriteString(w, `{"stream":"Loading layer\n"}`+"\n"+`{"errorDetail":{"message":"unexpected EOF"},"error":"unexpected EOF"}`+"\n")
		}, "could not load the image: unexpected EOF"},
		{"error after a success line", "1.41", func(w http.ResponseWriter, _ []byte) {
			io.WriteString(w, `{"stream":"Loaded image: a:1\n"}`+"\n"+`{"error":"no space left on device"}`+"\n")
		}, "no space left on device"},
		{"status 500", "1.41", func(w http.ResponseWriter, _ []byte) {
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"message":"invalid tar header"}`)
		}, "500 Internal Server Error: invalid tar header"},
		{"old engine", "1.12", loaded, "speaks API 1.12"},
		{"garbled reply", "1.41", func(w http.ResponseWriter, _ []byte) { io.WriteString(w, "{not json") }, "reading the reply"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeEngine(t, c.apiVersion, c.reply)
			_, err := f.client(t).Load(context.Background(), strings.NewReader("x"))
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), f.host) {
				t.Errorf("err = %v, want one with %q and %q", err, c.want, f.host)
			}
		})
	}
}

func TestLoadFrom(t *testing.T) {
	t.Parallel()
	f := newFakeEngine(t, "1.41", loaded)
	c := f.client(t)
	lines, err := c.LoadFrom(context.Background(), func(w io.Writer) error {
		_, err := io.WriteString(w, strings.Repeat("x", 1<<20))
		return err
	})
	if err != nil || len(lines) != 2 {
		t.Fatalf("lines %q, err %v", lines, err)
	}
	if len(f.body) != 1<<20 {
		t.Errorf("the engine got %d bytes", len(f.body))
	}
	// A failing archive is the error, not the engine's complaint about the body.
	_, err = c.LoadFrom(context.Background(), func(w io.Writer) error {
		io.WriteString(w, "partial")
		return errors.New("layer on fire")
	})
	if err == nil || err.Error() != "layer on fire" {
		t.Errorf("err = %v, want the writer's", err)
	}
}

func TestNoEngine(t *testing.T) {
	t.Parallel()
	host := "unix://" + filepath.Join(t.TempDir(), "docker.sock")
	c, err := New(Endpoint{Host: host})
	if err != nil {
		t.Fatal(err)
	}
	wrote := false
	_, err = c.LoadFrom(context.Background(), func(w io.Writer) error { wrote = true; return nil })
	if err == nil || !strings.Contains(err.Error(), host) || !strings.Contains(err.Error(), "is the Docker daemon running?") {
		t.Errorf("err = %v", err)
	}
	if wrote {
		t.Error("the archive was written with no engine to take it")
	}
	for _, bad := range []string{"ssh://me@host", "npipe:////./pipe/docker_engine", "/var/run/docker.sock", "tcp://"} {
		if _, err := New(Endpoint{Host: bad}); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("New(%q): err = %v", bad, err)
		}
	}
}

func TestFindEndpoint(t *testing.T) {
	t.Parallel()
	cfg := t.TempDir()
	writeContext := func(name, host string) {
		sum := sha256.Sum256([]byte(name))
		dir := filepath.Join(cfg, "contexts", "meta", hex.EncodeToString(sum[:]))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		meta := `{"Name":"` + name + `","Metadata":{},"Endpoints":{"docker":{"Host":"` + host + `","SkipTLSVerify":false}}}`
		if err := os.WriteFile(filepath.Join(dir, "meta.json"), []byte(meta), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeContext("remote", "tcp://127.0.0.1:2375")
	writeContext("rootless", "unix:///run/user/1000/docker.sock")
	current := t.TempDir()
	os.WriteFile(filepath.Join(current, "config.json"), []byte(`{"auths":{},"currentContext":"rootless"}`), 0o644)
	os.Rename(filepath.Join(cfg, "contexts"), filepath.Join(current, "contexts"))
	empty := t.TempDir()

	cases := []struct {
		name string
		env  map[string]string
		want Endpoint
		err  string
	}{
		{"nothing set", map[string]string{"DOCKER_CONFIG": empty}, Endpoint{Host: DefaultHost}, ""},
		{"DOCKER_HOST", map[string]string{"DOCKER_CONFIG": current, "DOCKER_HOST": "tcp://127.0.0.1:1"}, Endpoint{Host: "tcp://127.0.0.1:1"}, ""},
		{"DOCKER_HOST wins over DOCKER_CONTEXT", map[string]string{"DOCKER_CONFIG": current, "DOCKER_HOST": "unix:///x.sock", "DOCKER_CONTEXT": "remote"}, Endpoint{Host: "unix:///x.sock"}, ""},
		{"TLS", map[string]string{"DOCKER_CONFIG": empty, "DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1", "DOCKER_CERT_PATH": "/certs"}, Endpoint{Host: "tcp://127.0.0.1:2376", TLSDir: "/certs"}, ""},
		{"TLS in the config directory", map[string]string{"DOCKER_CONFIG": empty, "DOCKER_HOST": "tcp://127.0.0.1:2376", "DOCKER_TLS_VERIFY": "1"}, Endpoint{Host: "tcp://127.0.0.1:2376", TLSDir: empty}, ""},
		{"currentContext", map[string]string{"DOCKER_CONFIG": current}, Endpoint{Host: "unix:///run/user/1000/docker.sock"}, ""},
		{"DOCKER_CONTEXT wins over currentContext", map[string]string{"DOCKER_CONFIG": current, "DOCKER_CONTEXT": "remote"}, Endpoint{Host: "tcp://127.0.0.1:2375"}, ""},
		{"DOCKER_CONTEXT=default", map[string]string{"DOCKER_CONFIG": current, "DOCKER_CONTEXT": "default"}, Endpoint{Host: DefaultHost}, ""},
		{"unknown context", map[string]string{"DOCKER_CONFIG": current, "DOCKER_CONTEXT": "nope"}, Endpoint{}, `docker context "nope": not found`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := findEndpoint(func(k string) string { return c.env[k] })
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Errorf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
