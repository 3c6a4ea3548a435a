//go:build linux

package main

// The differential suites' calls to the Docker Engine for everything but the reference
// builds (those stay `docker build`, the reference's own command line): save, load,
// inspect, and the create, export and removal of a container, straight through the
// Engine API on its unix socket. A docker CLI process costs about 80 ms of CPU before
// it sends its one request, and the suites make two thousand such calls: on two cores
// that was a minute of the run. The bytes are the engine's either way (the CLI copies
// the response to its file or stdout). An engine reached otherwise than by a unix
// socket (tcp://, a docker context naming one) is reached through the CLI, as before.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/dfbuild/dfbuild/layerfs/dockerengine"
)

// e2eAPI is a client of the engine's socket; nil means the CLI.
type e2eAPI struct {
	http *http.Client
	load *dockerengine.Client
}

var (
	e2eAPIOnce   sync.Once
	e2eAPIClient *e2eAPI
)

// e2eEngine returns the socket client, or nil when the engine is not on a unix socket.
func e2eEngine() *e2eAPI {
	e2eAPIOnce.Do(func() {
		e, err := dockerengine.FindEndpoint()
		if err != nil {
			return
		}
		u, err := url.Parse(e.Host)
		if err != nil || u.Scheme != "unix" || u.Path == "" {
			return
		}
		lc, err := dockerengine.New(e)
		if err != nil {
			return
		}
		var d net.Dialer
		tr := &http.Transport{DisableCompression: true, MaxIdleConnsPerHost: 32,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) { return d.DialContext(ctx, "unix", u.Path) }}
		e2eAPIClient = &e2eAPI{http: &http.Client{Transport: tr}, load: lc}
	})
	return e2eAPIClient
}

// do sends one request (no API version in the path: the engine's own) and returns
// the response if its status is 2xx; otherwise an error quoting the engine's message.
// The request is cancelled after ten minutes, as the CLI commands were.
func (a *e2eAPI) do(method, path string, body any, what string) (*http.Response, context.CancelFunc, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://api.moby.localhost"+path, rd)
	if err != nil {
		cancel()
		return nil, nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.http.Do(req)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("%s: %w", what, err)
	}
	if resp.StatusCode/100 != 2 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body.Close()
		cancel()
		var m struct{ Message string }
		if json.Unmarshal(msg, &m) == nil && m.Message != "" {
			msg = []byte(m.Message)
		}
		return nil, nil, fmt.Errorf("%s: %s: %s", what, resp.Status, strings.TrimSpace(string(msg)))
	}
	return resp, cancel, nil
}

// e2eEngineCreate is `docker create --name NAME --network none --entrypoint
// /not-run REF`: a container that never runs, for export.
func e2eEngineCreate(ref, name string) error {
	a := e2eEngine()
	if a == nil {
		_, _, err := e2eExec(nil, nil, "docker", "create", "--name", name, "--network", "none", "--entrypoint", "/not-run", ref)
		return err
	}
	body := map[string]any{"Image": ref, "Entrypoint": []string{"/not-run"}, "HostConfig": map[string]any{"NetworkMode": "none"}}
	resp, cancel, err := a.do(http.MethodPost, "/containers/create?name="+url.QueryEscape(name), body, "docker create "+ref)
	if err != nil {
		return err
	}
	defer cancel()
	io.Copy(io.Discard, resp.Body)
	return resp.Body.Close()
}

// e2eEngineRemove is `docker rm -f NAME...`; it removes every container it can and
// returns the first error.
func e2eEngineRemove(names ...string) error {
	a := e2eEngine()
	if a == nil {
		_, _, err := e2eExec(nil, nil, "docker", append([]string{"rm", "-f"}, names...)...)
		return err
	}
	var first error
	for _, n := range names {
		resp, cancel, err := a.do(http.MethodDelete, "/containers/"+url.PathEscape(n)+"?force=1", nil, "docker rm "+n)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		cancel()
	}
	return first
}

// e2eEngineExport streams `docker export NAME` to read.
func e2eEngineExport(name string, read func(io.Reader) error) error {
	a := e2eEngine()
	if a == nil {
		return e2eCLIStream(read, "export", name)
	}
	resp, cancel, err := a.do(http.MethodGet, "/containers/"+url.PathEscape(name)+"/export", nil, "docker export "+name)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	rerr := read(resp.Body)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return fmt.Errorf("docker export %s: %w", name, err)
	}
	return rerr
}

// e2eEngineSave is `docker save -o FILE REF`.
func e2eEngineSave(ref, file string) error {
	a := e2eEngine()
	if a == nil {
		_, _, err := e2eExec(nil, nil, "docker", "save", "-o", file, ref)
		return err
	}
	resp, cancel, err := a.do(http.MethodGet, "/images/get?names="+url.QueryEscape(ref), nil, "docker save "+ref)
	if err != nil {
		return err
	}
	defer cancel()
	defer resp.Body.Close()
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("docker save %s: %w", ref, err)
	}
	return f.Close()
}

// e2eEngineLoad is `docker load -i FILE`; it returns what docker load prints, a
// "Loaded image: REF" line per tag.
func e2eEngineLoad(file string) (string, error) {
	a := e2eEngine()
	if a == nil {
		out, _, err := e2eExec(nil, nil, "docker", "load", "-i", file)
		return out, err
	}
	f, err := os.Open(file)
	if err != nil {
		return "", err
	}
	defer f.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	lines, err := a.load.Load(ctx, f)
	if err != nil {
		return "", fmt.Errorf("docker load -i %s: %w", filepath.Base(file), err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.TrimRight(l, "\n") + "\n")
	}
	return b.String(), nil
}

// e2eEngineInspect is `docker image inspect REF...`: a JSON array of the images.
func e2eEngineInspect(refs ...string) (string, error) {
	a := e2eEngine()
	if a == nil {
		out, _, err := e2eExec(nil, nil, "docker", append([]string{"image", "inspect"}, refs...)...)
		return out, err
	}
	var all []json.RawMessage
	for _, ref := range refs {
		resp, cancel, err := a.do(http.MethodGet, "/images/"+url.PathEscape(ref)+"/json", nil, "docker image inspect "+ref)
		if err != nil {
			return "", err
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil {
			return "", fmt.Errorf("docker image inspect %s: %w", ref, err)
		}
		all = append(all, b)
	}
	out, err := json.Marshal(all)
	return string(out), err
}

// e2eCLIStream runs docker ARGS and hands its standard output to read.
func e2eCLIStream(read func(io.Reader) error, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "docker", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	rerr := read(out)
	io.Copy(io.Discard, out)
	if err := cmd.Wait(); err != nil {
		return fmt.Errorf("docker %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return rerr
}
