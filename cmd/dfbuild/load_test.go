package main

import (
	"bytes"
	"context"
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

// TestLoadFakeEngine runs --load against a fake engine on a unix socket: the body it
// receives is the archive -o writes, byte for byte, the engine's lines are printed,
// and an error the engine reports inside its 200 reply fails the build.
func TestLoadFakeEngine(t *testing.T) {
	dir, err := os.MkdirTemp("", "dfb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "docker.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var got []byte
	var paths []string
	fail := false
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		paths = append(paths, r.Method+" "+r.URL.RequestURI())
		if r.URL.Path == "/_ping" {
			w.Header().Set("Api-Version", "1.41")
			return
		}
		got = body
		if fail {
			io.WriteString(w, `{"errorDetail":{"message":"no space left on device"},"error":"no space left on device"}`+"\n")
			return
		}
		io.WriteString(w, `{"stream":"Loaded image: docker.io/library/app:1\n"}`+"\n")
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	t.Setenv("DOCKER_HOST", "unix://"+sock)
	t.Setenv("SOURCE_DATE_EPOCH", "0")

	ctxDir := t.TempDir()
	os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte("FROM scratch\nCOPY a.txt /\nCOPY b.txt /\n"), 0o644)
	os.WriteFile(filepath.Join(ctxDir, "a.txt"), []byte("a\n"), 0o644)
	os.WriteFile(filepath.Join(ctxDir, "b.txt"), []byte("b\n"), 0o644)
	run := func(o buildOptions) (string, error) {
		var stdout, stderr bytes.Buffer
		o.contextDir, o.tags = ctxDir, []string{"app:1"}
		err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr, o)
		return stdout.String(), err
	}
	want := filepath.Join(t.TempDir(), "want.tar")
	if _, err := run(buildOptions{output: want}); err != nil {
		t.Fatal(err)
	}
	wantBytes, _ := os.ReadFile(want)

	// --load alone: streamed, no file.
	out, err := run(buildOptions{out: outputOptions{load: true}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, wantBytes) {
		t.Errorf("the engine got %d bytes, -o writes %d; they differ", len(got), len(wantBytes))
	}
	if !strings.Contains(out, "\nLoaded image: docker.io/library/app:1\n") || strings.Contains(out, "Wrote") {
		t.Errorf("stdout:\n%s", out)
	}
	if ents, _ := os.ReadDir(ctxDir); len(ents) != 3 {
		t.Errorf("--load wrote into the context: %v", ents)
	}
	if strings.Join(paths, ",") != "GET /_ping,POST /v1.41/images/load?quiet=1" {
		t.Errorf("requests %v", paths)
	}

	// --load and -o: both, the engine getting the file's bytes.
	got = nil
	both := filepath.Join(t.TempDir(), "both.tar")
	if out, err = run(buildOptions{output: both, out: outputOptions{load: true}}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(both); !bytes.Equal(b, wantBytes) || !bytes.Equal(got, wantBytes) {
		t.Error("--load with -o: the file or the loaded bytes differ from -o alone")
	}
	if !strings.Contains(out, "Wrote "+both) || !strings.Contains(out, "Loaded image:") {
		t.Errorf("stdout:\n%s", out)
	}
	// -q prints the ID only.
	if out, err = run(buildOptions{out: outputOptions{load: true, quiet: true}}); err != nil || !strings.HasPrefix(out, "sha256:") || strings.Count(out, "\n") != 1 {
		t.Errorf("-q --load: %q, %v", out, err)
	}

	// The engine's error inside a 200 is the build's error.
	mu.Lock()
	fail = true
	mu.Unlock()
	_, err = run(buildOptions{out: outputOptions{load: true}})
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), sock) {
		t.Errorf("err = %v", err)
	}
}
