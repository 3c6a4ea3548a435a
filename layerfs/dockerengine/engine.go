package dockerengine

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// DefaultHost is the engine's address when nothing names another (moby
// client/client_unix.go DefaultDockerHost).
const DefaultHost = "unix:///var/run/docker.sock"

// The API versions this client speaks. /images/load has not changed in a way that
// matters here since 1.24, the oldest version current engines still accept.
const (
	MinAPIVersion = "1.24"
	MaxAPIVersion = "1.45"
)

// Client talks to one engine.
type Client struct {
	host string // as configured, for errors
	http *http.Client
	base string // scheme://authority the requests go to

	once    sync.Once
	version string
	verErr  error
}

// Endpoint is where an engine listens, and the TLS files to reach it with.
type Endpoint struct {
	Host string
	// TLSDir, if set, holds ca.pem, cert.pem and key.pem (any of them may be
	// missing); tcp:// connections then use TLS.
	TLSDir string
	// SkipTLSVerify turns off the check of the engine's certificate, as a context's
	// SkipTLSVerify does.
	SkipTLSVerify bool
}

// FindEndpoint resolves the engine as the docker CLI does, from the environment
// (DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH, DOCKER_CONTEXT, DOCKER_CONFIG)
// and the docker configuration directory.
func FindEndpoint() (Endpoint, error) {
	return findEndpoint(os.Getenv)
}

func findEndpoint(getenv func(string) string) (Endpoint, error) {
	configDir := getenv("DOCKER_CONFIG")
	if configDir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			home = ""
		}
		configDir = filepath.Join(home, ".docker")
	}
	if h := getenv("DOCKER_HOST"); h != "" {
		e := Endpoint{Host: h}
		// The docker CLI takes any non-empty DOCKER_TLS_VERIFY as "verify".
		if getenv("DOCKER_TLS_VERIFY") != "" {
			e.TLSDir = getenv("DOCKER_CERT_PATH")
			if e.TLSDir == "" {
				e.TLSDir = configDir
			}
		}
		return e, nil
	}
	name := getenv("DOCKER_CONTEXT")
	if name == "" {
		b, err := os.ReadFile(filepath.Join(configDir, "config.json"))
		if err == nil {
			var cfg struct {
				CurrentContext string `json:"currentContext"`
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				return Endpoint{}, fmt.Errorf("reading %s: %w", filepath.Join(configDir, "config.json"), err)
			}
			name = cfg.CurrentContext
		} else if !errors.Is(err, os.ErrNotExist) {
			return Endpoint{}, fmt.Errorf("reading the docker configuration: %w", err)
		}
	}
	if name == "" || name == "default" {
		return Endpoint{Host: DefaultHost}, nil
	}
	return contextEndpoint(configDir, name)
}

// contextEndpoint reads a named context's docker endpoint (docker/cli
// cli/context/store metadatastore.go: the directory is the hex sha256 of the name).
func contextEndpoint(configDir, name string) (Endpoint, error) {
	sum := sha256.Sum256([]byte(name))
	id := hex.EncodeToString(sum[:])
	meta := filepath.Join(configDir, "contexts", "meta", id, "meta.json")
	b, err := os.ReadFile(meta)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Endpoint{}, fmt.Errorf("docker context %q: not found (no %s)", name, meta)
		}
		return Endpoint{}, fmt.Errorf("docker context %q: %w", name, err)
	}
	var m struct {
		Endpoints map[string]struct {
			Host          string
			SkipTLSVerify bool
		}
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return Endpoint{}, fmt.Errorf("docker context %q: reading %s: %w", name, meta, err)
	}
	ep, ok := m.Endpoints["docker"]
	if !ok || ep.Host == "" {
		return Endpoint{}, fmt.Errorf("docker context %q: no docker endpoint in %s", name, meta)
	}
	e := Endpoint{Host: ep.Host, SkipTLSVerify: ep.SkipTLSVerify}
	tlsDir := filepath.Join(configDir, "contexts", "tls", id, "docker")
	if fi, err := os.Stat(tlsDir); err == nil && fi.IsDir() {
		e.TLSDir = tlsDir
	}
	return e, nil
}

// FromEnv returns a client of the engine FindEndpoint finds.
func FromEnv() (*Client, error) {
	e, err := FindEndpoint()
	if err != nil {
		return nil, fmt.Errorf("finding the Docker Engine: %w", err)
	}
	return New(e)
}

// New returns a client of the engine at e. Nothing is dialled yet.
func New(e Endpoint) (*Client, error) {
	u, err := url.Parse(e.Host)
	if err != nil || u.Scheme == "" {
		return nil, fmt.Errorf("docker host %q: expected unix:///PATH or tcp://HOST:PORT", e.Host)
	}
	c := &Client{host: e.Host}
	tr := &http.Transport{DisableCompression: true}
	switch u.Scheme {
	case "unix":
		sock := u.Path
		if sock == "" {
			sock = u.Opaque
		}
		if sock == "" {
			return nil, fmt.Errorf("docker host %q: no socket path", e.Host)
		}
		var d net.Dialer
		tr.DialContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "unix", sock)
		}
		// Any host name works on a socket; moby's client uses this one (client.go
		// DummyHost).
		c.base = "http://api.moby.localhost"
	case "tcp", "http", "https":
		if u.Host == "" {
			return nil, fmt.Errorf("docker host %q: no address", e.Host)
		}
		scheme := "http"
		if e.TLSDir != "" || u.Scheme == "https" {
			cfg, err := tlsConfig(e)
			if err != nil {
				return nil, fmt.Errorf("docker host %q: %w", e.Host, err)
			}
			tr.TLSClientConfig = cfg
			scheme = "https"
		}
		c.base = scheme + "://" + u.Host
	default:
		return nil, fmt.Errorf("docker host %q: %s:// is not supported (use unix:// or tcp://)", e.Host, u.Scheme)
	}
	c.http = &http.Client{Transport: tr}
	return c, nil
}

// tlsConfig loads the engine's CA and the client's key pair from e.TLSDir, with the
// file names the docker CLI uses.
func tlsConfig(e Endpoint) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: e.SkipTLSVerify}
	if e.TLSDir == "" {
		return cfg, nil
	}
	ca, err := os.ReadFile(filepath.Join(e.TLSDir, "ca.pem"))
	if err == nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("no certificate in %s", filepath.Join(e.TLSDir, "ca.pem"))
		}
		cfg.RootCAs = pool
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	cert, key := filepath.Join(e.TLSDir, "cert.pem"), filepath.Join(e.TLSDir, "key.pem")
	if _, err := os.Stat(cert); err == nil {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("loading the client certificate: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// Host is the engine's address as configured.
func (c *Client) Host() string { return c.host }

// APIVersion negotiates the API version once (moby client.go negotiateAPIVersion):
// GET /_ping, whose Api-Version header is the engine's highest.
func (c *Client) APIVersion(ctx context.Context) (string, error) {
	c.once.Do(func() { c.version, c.verErr = c.ping(ctx) })
	return c.version, c.verErr
}

func (c *Client) ping(ctx context.Context) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/_ping", nil)
	if err != nil {
		return "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return "", c.reachErr(err)
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("the Docker Engine at %s answered %s to GET /_ping", c.host, resp.Status)
	}
	v := resp.Header.Get("Api-Version")
	if v == "" {
		// An engine that does not say is old enough to speak the lowest version.
		v = MinAPIVersion
	}
	if lessVersion(v, MinAPIVersion) {
		return "", fmt.Errorf("the Docker Engine at %s speaks API %s; dfbuild needs %s or later", c.host, v, MinAPIVersion)
	}
	if lessVersion(MaxAPIVersion, v) {
		v = MaxAPIVersion
	}
	return v, nil
}

// reachErr explains a failure to connect, with a hint for the usual causes.
func (c *Client) reachErr(err error) error {
	hint := ""
	switch {
	case errors.Is(err, syscall.ENOENT):
		hint = " (no socket there: is the Docker daemon running? DOCKER_HOST or docker context names another engine)"
	case errors.Is(err, syscall.ECONNREFUSED):
		hint = " (nothing listens there: is the Docker daemon running?)"
	case errors.Is(err, syscall.EACCES):
		hint = " (permission denied: is this user in the docker group?)"
	}
	return fmt.Errorf("cannot reach the Docker Engine at %s: %w%s", c.host, err, hint)
}

// Load streams an image archive (docker save's format, or an OCI archive) into the
// engine, and returns the engine's report, one line per image, such as "Loaded image:
// docker.io/library/hello:latest" or "Loaded image ID: sha256:…". The body is read
// until it ends; if the engine fails to read it, that error is returned.
func (c *Client) Load(ctx context.Context, archive io.Reader) ([]string, error) {
	v, err := c.APIVersion(ctx)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v"+v+"/images/load?quiet=1", io.NopCloser(archive))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-tar")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, c.reachErr(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("loading into the Docker Engine at %s: %s", c.host, responseError(resp))
	}
	return c.readMessages(resp.Body)
}

// LoadFrom is Load with the archive written by write into a pipe, so that it streams
// straight into the request. write's error comes first: when the archive fails, the
// engine's complaint about a cut-off body is only its consequence.
func (c *Client) LoadFrom(ctx context.Context, write func(w io.Writer) error) ([]string, error) {
	// Negotiate before anything is written, so an absent engine costs no work.
	if _, err := c.APIVersion(ctx); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	werr := make(chan error, 1)
	go func() {
		err := write(pw)
		pw.CloseWithError(err) // nil closes it cleanly
		werr <- err
	}()
	lines, err := c.Load(ctx, pr)
	// The engine may stop reading early (a failed load); unblock the writer.
	pr.CloseWithError(errStoppedReading)
	if wErr := <-werr; wErr != nil && !errors.Is(wErr, errStoppedReading) {
		return nil, wErr
	}
	return lines, err
}

var errStoppedReading = errors.New("the Docker Engine stopped reading the archive")

// message is one JSON object of the engine's progress stream (moby
// pkg/jsonmessage.JSONMessage).
type message struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
}

func (c *Client) readMessages(body io.Reader) ([]string, error) {
	dec := json.NewDecoder(bufio.NewReader(body))
	var lines []string
	var failure error
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("reading the reply of the Docker Engine at %s: %w", c.host, err)
		}
		msg := m.Error
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			msg = m.ErrorDetail.Message
		}
		if msg != "" && failure == nil {
			failure = fmt.Errorf("the Docker Engine at %s could not load the image: %s", c.host, msg)
		}
		for _, s := range []string{m.Stream, m.Status} {
			for _, l := range strings.Split(s, "\n") {
				if l = strings.TrimSpace(l); l != "" {
					lines = append(lines, l)
				}
			}
		}
	}
	if failure != nil {
		return nil, failure
	}
	return lines, nil
}

// responseError is the engine's {"message": ...} error body, or the status.
func responseError(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	var e struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(b, &e) == nil && e.Message != "" {
		return fmt.Sprintf("%s: %s", resp.Status, e.Message)
	}
	if s := strings.TrimSpace(string(b)); s != "" {
		return fmt.Sprintf("%s: %s", resp.Status, s)
	}
	return resp.Status
}

// lessVersion compares API versions such as "1.41" numerically, part by part.
func lessVersion(a, b string) bool {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(as) || i < len(bs); i++ {
		var x, y int
		if i < len(as) {
			x, _ = strconv.Atoi(as[i])
		}
		if i < len(bs) {
			y, _ = strconv.Atoi(bs[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}
