package registrytest

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs/imagetest"
	"golang.org/x/crypto/bcrypt"
)

// Binary is the registry program Start runs (Debian package docker-registry).
const Binary = "docker-registry"

// Realm is the htpasswd realm of a registry started with Users.
const Realm = "dfbuild-test"

// readyTimeout bounds the wait for /v2/ to answer; a registry that starts at all
// answers within a fraction of a second, so this only decides how long a broken
// setup takes to fail.
const readyTimeout = 15 * time.Second

// Options chooses how the registry is served.
type Options struct {
	// Users turns on htpasswd auth (bcrypt entries, realm Realm) when non-empty:
	// user name to password.
	Users map[string]string
	// TLS serves https with a certificate for IP:127.0.0.1 and DNS:localhost, signed
	// by a CA generated for this registry alone (see Registry.CACert).
	TLS bool
}

// Registry is a running registry process.
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of references to it.
	Host string
	// URL is "http://Host" or "https://Host".
	URL string
	// CACert is the PEM of the CA that signed the server certificate when TLS is on,
	// else nil; CAFile is a file holding it.
	CACert []byte
	CAFile string
	// Dir is the registry's storage root.
	Dir string

	pool   *x509.CertPool
	cmd    *exec.Cmd
	done   chan struct{} // closed once cmd.Wait returned
	stdout *syncBuffer
	stderr *syncBuffer

	tb     testing.TB
	client *http.Client // for flush's barrier requests

	mu      sync.Mutex
	logFrom int // offset in stdout where the current log starts (ResetLog)
	syncSeq int // the last barrier number (flush)
}

// Start starts a registry for tb; tb.Cleanup stops it and removes its files. It skips
// tb when docker-registry is missing, or fails it under CI=true.
func Start(tb testing.TB, o Options) *Registry {
	tb.Helper()
	_, err := exec.LookPath(Binary)
	imagetest.Require(tb, Binary, err)

	tmp := tb.TempDir()
	r := &Registry{Dir: filepath.Join(tmp, "storage"), tb: tb}
	if err := os.Mkdir(r.Dir, 0o755); err != nil {
		tb.Fatalf("making the registry storage: %v", err)
	}
	var extra strings.Builder
	if len(o.Users) > 0 {
		path := filepath.Join(tmp, "htpasswd")
		if err := writeHtpasswd(path, o.Users); err != nil {
			tb.Fatal(err)
		}
		fmt.Fprintf(&extra, "auth:\n  htpasswd:\n    realm: %q\n    path: %q\n", Realm, path)
	}
	var tlsConf string
	r.URL = "http://"
	if o.TLS {
		p, err := newPKI(tmp)
		if err != nil {
			tb.Fatalf("making the registry certificates: %v", err)
		}
		r.CACert, r.CAFile, r.pool = p.caPEM, p.caFile, x509.NewCertPool()
		r.pool.AppendCertsFromPEM(p.caPEM)
		tlsConf = fmt.Sprintf("  tls:\n    certificate: %q\n    key: %q\n", p.certFile, p.keyFile)
		r.URL = "https://"
	}

	// The free port is found by binding :0 and closing it, so another process may take
	// it before the registry binds it; a registry that exits while starting is
	// retried on a fresh port.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("finding a free port: %v", err)
		}
		host := fmt.Sprintf("127.0.0.1:%d", port)
		conf := filepath.Join(tmp, "config.yml")
		if err := os.WriteFile(conf, []byte(config(r.Dir, host, tlsConf, extra.String())), 0o644); err != nil {
			tb.Fatalf("writing the registry config: %v", err)
		}
		lastErr = r.start(tb, host, conf)
		if lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		tb.Fatalf("starting %s: %v", Binary, lastErr)
	}
	r.URL += r.Host
	r.client = &http.Client{Transport: r.Transport(), Timeout: readyTimeout}
	tb.Cleanup(r.client.CloseIdleConnections)
	r.ResetLog()
	return r
}

// config renders the registry's YAML. log.level error keeps stderr to the failures
// that explain a broken test; the access log stays on stdout for Requests.
func config(dir, host, tlsConf, extra string) string {
	return fmt.Sprintf(`version: 0.1
log:
  level: error
  formatter: text
storage:
  filesystem:
    rootdirectory: %q
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %q
  secret: "dfbuild-registrytest"
%s%s`, dir, host, tlsConf, extra)
}

// start runs one registry process on host and waits until /v2/ answers. On an error
// the process is already gone.
func (r *Registry) start(tb testing.TB, host, conf string) error {
	r.Host = host
	r.stdout, r.stderr = &syncBuffer{}, &syncBuffer{}
	cmd := exec.Command(Binary, "serve", conf)
	cmd.Env = registryEnv()
	cmd.Stdout, cmd.Stderr = r.stdout, r.stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", Binary, err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	stop := func() {
		_ = cmd.Process.Kill()
		<-done
	}

	if err := r.waitReady(done); err != nil {
		stop()
		if waitErr != nil {
			err = fmt.Errorf("%w (%v)", err, waitErr)
		}
		return fmt.Errorf("%w; stderr: %s", err, bytes.TrimSpace(r.stderr.Bytes()))
	}
	r.cmd, r.done = cmd, done
	tb.Cleanup(stop)
	return nil
}

// waitReady polls GET /v2/ until it answers 200, or 401 under auth, the process
// exits, or readyTimeout passes.
func (r *Registry) waitReady(exited <-chan struct{}) error {
	scheme := "http://"
	if r.pool != nil {
		scheme = "https://"
	}
	client := &http.Client{Transport: r.Transport(), Timeout: 2 * time.Second}
	defer client.CloseIdleConnections()
	deadline := time.Now().Add(readyTimeout)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return errors.New("the registry exited while starting")
		default:
		}
		resp, err := client.Get(scheme + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/: %s", resp.Status)
		}
		last = err
		select {
		case <-exited:
			return errors.New("the registry exited while starting")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("the registry did not answer within %v: %w", readyTimeout, last)
}

// registryEnv is the environment without REGISTRY_* variables, which distribution
// reads as overrides of the config file (configuration/parser.go).
func registryEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "REGISTRY_") {
			env = append(env, kv)
		}
	}
	return env
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// writeHtpasswd writes bcrypt entries at MinCost: distribution checks the password
// on every request (registry/auth/htpasswd), and the default cost would make each
// request of a test slow.
func writeHtpasswd(path string, users map[string]string) error {
	names := make([]string, 0, len(users))
	for u := range users {
		if u == "" || strings.ContainsAny(u, ":\n") {
			return fmt.Errorf("writing htpasswd: bad user name %q", u)
		}
		names = append(names, u)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, u := range names {
		h, err := bcrypt.GenerateFromPassword([]byte(users[u]), bcrypt.MinCost)
		if err != nil {
			return fmt.Errorf("hashing the password of %q: %w", u, err)
		}
		fmt.Fprintf(&b, "%s:%s\n", u, h)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		return fmt.Errorf("writing htpasswd: %w", err)
	}
	return nil
}

// Pool returns a pool holding only the registry's CA, or nil without TLS.
func (r *Registry) Pool() *x509.CertPool { return r.pool }

// Transport returns a new transport (a clone of http.DefaultTransport) that trusts
// the registry's CA when TLS is on; give it to remote.WithTransport.
func (r *Registry) Transport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	if r.pool != nil {
		t.TLSClientConfig = &tls.Config{RootCAs: r.pool}
	}
	return t
}

// Ref returns the reference "Host/repo" (repo may carry a :tag or @digest).
func (r *Registry) Ref(repo string) string { return r.Host + "/" + repo }

// Running reports whether the registry process is still alive.
func (r *Registry) Running() bool {
	select {
	case <-r.done:
		return false
	default:
		return true
	}
}

// Stderr returns what the registry logged so far (errors only).
func (r *Registry) Stderr() string { return r.stderr.String() }
