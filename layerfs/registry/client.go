package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Options configure a Client. The zero value reads everything from where docker
// and buildx read it.
type Options struct {
	// CacheDir is the blob cache (an OCI image layout); "" is DefaultCacheDir().
	CacheDir string
	// Config holds mirrors and trust; nil reads nothing.
	Config *Config
	// CertsDirs are searched for HOST[:PORT]/*.crt; nil is DefaultCertsDirs().
	CertsDirs []string
	// Keychain finds credentials; nil is DefaultKeychain().
	Keychain authn.Keychain
	// Transport is the base HTTP transport; nil is one with bounded timeouts.
	Transport http.RoundTripper
	// Refresh asks the registry again for references by tag that the cache already
	// resolved (docker build --pull).
	Refresh bool
	// Progress, when set, is told how transfers go. It is called from several
	// goroutines.
	Progress func(Event)
	// IdleTimeout fails a transfer that receives or sends nothing for this long; 0
	// is DefaultIdleTimeout.
	IdleTimeout time.Duration
}

// DefaultIdleTimeout is how long a blob transfer may stall before it fails.
const DefaultIdleTimeout = 60 * time.Second

// Event reports the progress of one blob transfer.
type Event struct {
	Action string // "pull" or "push"
	Ref    string // the image reference the blob belongs to
	Digest string // the blob
	Total  int64  // its size, when known
	Done   int64  // bytes moved so far
	Status string // "" or "compressing" while it moves; then "cached", "exists", "mounted" or "done"
}

// Client pulls and pushes through one cache, one set of transports and one
// keychain.
type Client struct {
	opts  Options
	cache *Cache
	tr    *transports
	kc    authn.Keychain
}

// DefaultCacheDir is $XDG_CACHE_HOME/dfbuild, by default ~/.cache/dfbuild.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "dfbuild"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the cache directory: %w (set XDG_CACHE_HOME)", err)
	}
	return filepath.Join(home, ".cache", "dfbuild"), nil
}

// New returns a client. It touches no network and creates the cache only when the
// first blob is written.
func New(o Options) (*Client, error) {
	if o.CacheDir == "" {
		d, err := DefaultCacheDir()
		if err != nil {
			return nil, err
		}
		o.CacheDir = d
	}
	if o.CertsDirs == nil {
		o.CertsDirs = DefaultCertsDirs()
	}
	if o.Keychain == nil {
		o.Keychain = DefaultKeychain()
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = DefaultIdleTimeout
	}
	tr, err := newTransports(o.Transport, o.Config, o.CertsDirs)
	if err != nil {
		return nil, err
	}
	return &Client{opts: o, cache: &Cache{Dir: o.CacheDir}, tr: tr, kc: o.Keychain}, nil
}

// Cache returns the client's blob cache.
func (c *Client) Cache() *Cache { return c.cache }

// parse reads a reference as docker does: docker.io/library/ and :latest by
// default; "name:tag@digest" is the digest.
func (c *Client) parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid image reference %q: %w", ref, err)
	}
	if opts := c.tr.nameOptions(r.Context().RegistryStr()); len(opts) > 0 {
		return name.ParseReference(ref, opts...)
	}
	return r, nil
}

// remoteOptions are the options of every call to one registry host.
func (c *Client) remoteOptions(ctx context.Context, host string) ([]remote.Option, error) {
	rt, err := c.tr.forHost(host)
	if err != nil {
		return nil, err
	}
	return []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(rt),
		remote.WithAuthFromKeychain(c.kc),
		remote.WithUserAgent("dfbuild"),
		remote.WithJobs(4),
	}, nil
}

// explain adds what a user can do to a registry error: log in after a 401 or 403,
// check the name after a 404, and names the registry whatever happened.
func explain(err error, host string) error {
	if err == nil {
		return nil
	}
	var te *transport.Error
	if errors.As(err, &te) {
		switch te.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden:
			return fmt.Errorf("%w (registry %s refused access: log in with `docker login %s`, or put credentials in $DOCKER_CONFIG/config.json or REGISTRY_AUTH_FILE)", err, host, loginHost(host))
		case http.StatusNotFound:
			return fmt.Errorf("%w (registry %s has no such image)", err, host)
		}
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	switch {
	case errors.As(err, &dnsErr):
		return fmt.Errorf("registry %s cannot be reached: %w", host, err)
	case errors.As(err, &opErr):
		return fmt.Errorf("registry %s cannot be reached: %w", host, err)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, errIdle):
		return fmt.Errorf("registry %s timed out: %w", host, err)
	}
	if strings.Contains(err.Error(), "server gave HTTP response to HTTPS client") {
		return fmt.Errorf("%w (registry %s speaks plain HTTP: mark it http = true in %s)", err, host, DefaultConfigPath())
	}
	return err
}

func loginHost(host string) string {
	if host == "index.docker.io" {
		return "docker.io"
	}
	return host
}

// errIdle is the cause of a transfer cancelled for stalling.
var errIdle = errors.New("no data for too long")

// idleReader fails a body that delivers nothing for d: each Read pushes the
// deadline on, and when it passes, cancel stops the request underneath.
type idleReader struct {
	r      io.Reader
	timer  *time.Timer
	d      time.Duration
	cancel context.CancelCauseFunc
}

func newIdleReader(r io.Reader, d time.Duration, cancel context.CancelCauseFunc) *idleReader {
	ir := &idleReader{r: r, d: d, cancel: cancel}
	ir.timer = time.AfterFunc(d, func() { cancel(fmt.Errorf("%w (%s)", errIdle, d)) })
	return ir
}

func (ir *idleReader) Read(p []byte) (int, error) {
	n, err := ir.r.Read(p)
	if n > 0 {
		ir.timer.Reset(ir.d)
	}
	return n, err
}

func (ir *idleReader) stop() { ir.timer.Stop() }
