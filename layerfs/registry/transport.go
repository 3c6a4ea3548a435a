package registry

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
)

// DefaultCertsDirs are the directories whose HOST[:PORT] subdirectory holds extra
// certificates for that registry, as Docker reads them (moby registry.CertsDir):
// *.crt files are certificate authorities, *.cert with the matching *.key a client
// certificate. The second is rootless Docker's.
func DefaultCertsDirs() []string {
	dirs := []string{"/etc/docker/certs.d"}
	cfg := os.Getenv("XDG_CONFIG_HOME")
	if cfg == "" {
		if home, err := os.UserHomeDir(); err == nil {
			cfg = filepath.Join(home, ".config")
		}
	}
	if cfg != "" {
		dirs = append(dirs, filepath.Join(cfg, "docker", "certs.d"))
	}
	return dirs
}

// transports builds one HTTP transport a registry host, with the trust that host's
// configuration and certificate directories give it.
type transports struct {
	base     *http.Transport
	config   *Config
	certDirs []string
	mu       sync.Mutex
	byHost   map[string]http.RoundTripper
}

func newTransports(base http.RoundTripper, c *Config, certDirs []string) (*transports, error) {
	t := &transports{config: c, certDirs: certDirs, byHost: map[string]http.RoundTripper{}}
	switch b := base.(type) {
	case nil:
		t.base = defaultTransport()
	case *http.Transport:
		t.base = b
	default:
		// A caller's own round tripper (tests) is used as it is for every host.
		t.byHost[""] = b
	}
	return t, nil
}

// defaultTransport bounds each phase of a request, so an unknown host or a refused
// connection fails quickly and a registry that stops answering is noticed; the body
// of a blob has its own idle timeout (idleReader).
func defaultTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
	}
}

// forHost returns the transport for a registry host.
func (t *transports) forHost(host string) (http.RoundTripper, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rt, ok := t.byHost[""]; ok {
		return rt, nil
	}
	if rt, ok := t.byHost[host]; ok {
		return rt, nil
	}
	hc := t.config.host(host)
	tr := t.base.Clone()
	tlsc := &tls.Config{MinVersion: tls.VersionTLS12}
	if tr.TLSClientConfig != nil {
		tlsc = tr.TLSClientConfig.Clone()
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if tlsc.RootCAs != nil {
		pool = tlsc.RootCAs
	}
	added := false
	for _, ca := range hc.CA {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("registry %s: reading the CA %s: %w", host, ca, err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("registry %s: %s holds no PEM certificate", host, ca)
		}
		added = true
	}
	for _, dir := range t.certDirs {
		d := filepath.Join(dir, host)
		entries, err := os.ReadDir(d)
		if err != nil {
			continue // no directory for this host
		}
		for _, e := range entries {
			p := filepath.Join(d, e.Name())
			switch {
			case strings.HasSuffix(e.Name(), ".crt"):
				pem, err := os.ReadFile(p)
				if err != nil {
					return nil, fmt.Errorf("registry %s: reading %s: %w", host, p, err)
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("registry %s: %s holds no PEM certificate", host, p)
				}
				added = true
			case strings.HasSuffix(e.Name(), ".cert"):
				key := strings.TrimSuffix(p, ".cert") + ".key"
				pair, err := tls.LoadX509KeyPair(p, key)
				if err != nil {
					return nil, fmt.Errorf("registry %s: client certificate %s (with %s): %w", host, p, key, err)
				}
				tlsc.Certificates = append(tlsc.Certificates, pair)
			}
		}
	}
	if added || tlsc.RootCAs != nil {
		tlsc.RootCAs = pool
	}
	if hc.Insecure {
		tlsc.InsecureSkipVerify = true
	}
	tr.TLSClientConfig = tlsc
	t.byHost[host] = tr
	return tr, nil
}

// plainHTTPAllowed tells whether a host may be reached over plain HTTP: a loopback
// host (as containerd's MatchLocalhost and go-containerregistry decide), or one
// configured with http or insecure.
func (t *transports) plainHTTPAllowed(host string) bool {
	hc := t.config.host(host)
	return hc.HTTP || hc.Insecure || isLoopback(host)
}

func isLoopback(host string) bool {
	h := host
	if hh, _, err := net.SplitHostPort(host); err == nil {
		h = hh
	}
	h = strings.Trim(h, "[]")
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// nameOptions are the options to parse a reference to host with.
func (t *transports) nameOptions(host string) []name.Option {
	if t.plainHTTPAllowed(host) {
		return []name.Option{name.Insecure}
	}
	return nil
}
