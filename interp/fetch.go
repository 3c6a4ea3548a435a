package interp

import (
	"bytes"
	"context"
	_ "crypto/sha256" // go-digest's algorithms need their hashes linked in
	_ "crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/opencontainers/go-digest"

	"github.com/dfbuild/dfbuild/layerfs"
)

// isHTTPSource tells whether an ADD source is a URL to download, as BuildKit's
// frontend decides it: it starts with http:// or https:// and is not a Git
// repository.
func isHTTPSource(src string) bool {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		return false
	}
	return !isGitSource(src)
}

var (
	// gitScheme and gitSCP are the forms BuildKit's gitutil.ParseURL takes for a Git
	// remote: a URL with a scheme, or the scp-like user@host:path.
	gitScheme = regexp.MustCompile(`^([a-zA-Z0-9]+)://`)
	gitSCP    = regexp.MustCompile(`^([a-zA-Z0-9-_]+)@([a-zA-Z0-9-.]+):(.*?)(?:\?(.*?))?(?:#(.*))?$`)
)

// isGitSource tells whether a source names a Git repository, as BuildKit's
// dfgitutil.ParseGitRef decides it: a git:// or ssh:// URL, an http(s) URL whose
// path ends in .git, or user@host:path.
func isGitSource(src string) bool {
	if m := gitScheme.FindStringSubmatch(src); m != nil {
		switch strings.ToLower(m[1]) {
		case "git", "ssh":
			_, err := url.Parse(src)
			return err == nil
		case "http", "https":
			u, err := url.Parse(src)
			return err == nil && strings.HasSuffix(u.Path, ".git")
		}
		return false
	}
	return gitSCP.MatchString(src)
}

// parseChecksum reads a --checksum value, ALGORITHM:HEX, with go-digest (which
// BuildKit reads it with) for the algorithms it knows, in dfbuild's words.
func parseChecksum(s string) (digest.Digest, error) {
	d, err := digest.Parse(s)
	algo, h, _ := strings.Cut(s, ":")
	switch {
	case err == nil:
		return d, nil
	case errors.Is(err, digest.ErrDigestUnsupported) || (algo != "" && h != "" && !digest.Algorithm(algo).Available()):
		return "", fmt.Errorf("unsupported digest algorithm %q: use sha256, sha384 or sha512", algo)
	case errors.Is(err, digest.ErrDigestInvalidLength):
		return "", fmt.Errorf("invalid checksum digest length: %s takes %d hex digits, not %d", algo, 2*d.Algorithm().Size(), len(h))
	case algo != "" && h != "":
		return "", errors.New("invalid checksum digest format: the digits must be lower-case hex")
	}
	return "", errors.New("invalid checksum digest format: it should be ALGORITHM:HEX, such as sha256:<64 hex digits>")
}

// urlFileName is the name ADD gives a download, as BuildKit's frontend and http
// source name it: the last element of the URL's path, or __unnamed__.
func urlFileName(raw string) string {
	name := "__unnamed__"
	if u, err := url.Parse(raw); err == nil {
		if base := path.Base(u.Path); base != "." && base != "/" {
			name = base
		}
	}
	// BuildKit's pathutil.SafeFileName.
	name = filepath.Base(filepath.FromSlash(strings.TrimSpace(name)))
	if name == "" || name == "." || name == ".." || strings.IndexFunc(name, unicode.IsControl) >= 0 {
		return "download"
	}
	return name
}

// urlArg downloads a URL source of ADD into a tree of its own, the way BuildKit's
// http source makes it: one file, mode 0600, owned by root, its mtime the
// Last-Modified header or the Unix epoch. It is extracted only with --unpack=true.
func (b *builder) urlArg(j *copyJob, raw string) (copyArg, error) {
	name := urlFileName(raw)
	n, err := b.fetch(raw, j.checksum)
	if err != nil {
		return copyArg{}, err
	}
	f := layerfs.New()
	if err := f.Put("/"+name, n); err != nil {
		return copyArg{}, fmt.Errorf("source %q: %w", raw, err)
	}
	tree := newImageSource(f, fmt.Sprintf("the download of %q", raw))
	m, err := lookupSource(tree, name)
	if err != nil {
		return copyArg{}, fmt.Errorf("source %q: %w", raw, err)
	}
	a := copyArg{written: raw, tree: tree, unpack: j.unpack == "true"}
	if a.unpack {
		if m.archive, err = isArchive(tree, m); err != nil {
			return copyArg{}, fmt.Errorf("source %q: %w", raw, err)
		}
	}
	a.matches = []source{m}
	return a, nil
}

// Download limits of ADD <url>. Without them an endless body filled the disk and a
// server sending one byte now and then held the build forever (issue 11, fault 8).
const (
	// DefaultAddMaxSize bounds each download (Options.AddMaxSize, --add-max-size):
	// a larger body, or a Content-Length announcing one, is an error.
	DefaultAddMaxSize int64 = 4 << 30
	// DefaultAddTimeout bounds each download from the request to its last byte
	// (Options.AddTimeout, --add-timeout).
	DefaultAddTimeout = time.Hour
	// fetchIdle is how long a server may take to answer, and fetchMinBytes is how
	// much it must send in every fetchIdle after that: a trickle is as stuck as a
	// silent server, only slower to notice.
	fetchIdle     = 2 * time.Minute
	fetchMinBytes = 16 << 10
)

// downloadLimits are the bounds of one download.
type downloadLimits struct {
	maxSize  int64
	timeout  time.Duration
	window   time.Duration // fetchIdle; tests shorten it
	minBytes int64
}

// fetchWindow is fetchIdle, a variable so that tests can shorten it.
var fetchWindow = fetchIdle

func (b *builder) downloadLimits() downloadLimits {
	l := downloadLimits{maxSize: b.opts.AddMaxSize, timeout: b.opts.AddTimeout, window: fetchWindow, minBytes: fetchMinBytes}
	if l.maxSize <= 0 {
		l.maxSize = DefaultAddMaxSize
	}
	if l.timeout <= 0 {
		l.timeout = DefaultAddTimeout
	}
	return l
}

// fetchClient bounds the steps that could otherwise wait forever and refuses a
// redirect from https to plain http, which would drop the transport's protection.
var fetchClient = &http.Client{
	Transport: func() http.RoundTripper {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSHandshakeTimeout = 30 * time.Second
		t.ResponseHeaderTimeout = fetchIdle
		// One request per connection: bytes a server sends past a Content-Length
		// are then dropped with the connection, instead of being read as the next
		// answer, which net/http reports by printing to the process's log. Each
		// connection counts the bytes it reads (countingConn), so that a body longer
		// than its Content-Length is seen and refused; HTTPS is dialled here too, to
		// count what TLS decrypted, which keeps downloads on HTTP/1.1.
		t.DisableKeepAlives = true
		dialer := &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}
		t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countingConn{Conn: c}, nil
		}
		t.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			host, _, _ := net.SplitHostPort(addr)
			cfg := &tls.Config{ServerName: host, NextProtos: []string{"http/1.1"}, RootCAs: fetchRoots}
			tc := tls.Client(raw, cfg)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			return &countingConn{Conn: tc}, nil
		}
		return t
	}(),
	CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		if via[len(via)-1].URL.Scheme == "https" && req.URL.Scheme != "https" {
			return fmt.Errorf("refusing the redirect from https to %s", req.URL.Redacted())
		}
		return nil
	},
}

// fetchRoots are the certificate authorities downloads trust: the system's (nil);
// tests set their own.
var fetchRoots *x509.CertPool

// countingConn counts the bytes read from a connection, and keeps the first ones, in
// which the response header ends. net/http stops reading a body at its
// Content-Length and drops the rest with the connection, silently. So once the
// header and Content-Length bytes have arrived, the connection looks once more
// (for up to probeWait) for bytes past them; any are a body longer than announced.
type countingConn struct {
	net.Conn
	mu      sync.Mutex
	n       int64
	head    []byte // the first bytes read, up to headLimit
	probed  bool
	pending []byte // bytes the probe read, handed out by the next Read
	over    int64  // bytes seen past the announced body
}

const (
	headLimit = 64 << 10
	probeWait = 200 * time.Millisecond
)

func (c *countingConn) Read(p []byte) (int, error) {
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		c.pending = c.pending[n:]
		return n, nil
	}
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n += int64(n)
	if room := headLimit - len(c.head); room > 0 {
		c.head = append(c.head, p[:min(n, room)]...)
	}
	if end, cl, ok := c.framing(); ok && !c.probed && c.n >= end+cl {
		c.probed = true
		c.over = c.n - end - cl
		if c.over == 0 {
			// Nothing past the body yet: look once more, briefly.
			buf := make([]byte, 4096)
			c.Conn.SetReadDeadline(time.Now().Add(probeWait))
			k, _ := c.Conn.Read(buf)
			c.Conn.SetReadDeadline(time.Time{})
			c.over, c.pending = int64(k), buf[:k]
		}
	}
	return n, err
}

// framing finds where the response header ends and the Content-Length it
// announces, once both are among the first bytes.
func (c *countingConn) framing() (end, cl int64, ok bool) {
	i := bytes.Index(c.head, []byte("\r\n\r\n"))
	if i < 0 {
		return 0, 0, false
	}
	for _, line := range strings.Split(string(c.head[:i]), "\r\n")[1:] {
		k, v, found := strings.Cut(line, ":")
		if found && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil || n < 0 {
				return 0, 0, false
			}
			return int64(i + 4), n, true
		}
	}
	return 0, 0, false
}

// extra returns how many bytes past the announced body the connection saw.
func (c *countingConn) extra() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.over
}

// rateReader pushes the download's slowness deadline back each time another
// minBytes arrived.
type rateReader struct {
	r      io.Reader
	timer  *time.Timer
	window time.Duration
	min    int64
	got    int64 // since the deadline was last pushed back
}

func (i *rateReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if i.got += int64(n); i.got >= i.min {
		i.got = 0
		i.timer.Reset(i.window)
	}
	return n, err
}

// fetch downloads raw into the build's scratch directory and returns the file as a
// node that reads it from there. A --checksum that the body does not match is an
// error, as is an answer other than 2xx or 3xx, a body over the size limit or other
// than its Content-Length, a download over the time limit and a server too slow.
func (b *builder) fetch(raw, sum string) (*layerfs.Node, error) {
	var want digest.Digest
	if sum != "" {
		var err error
		if want, err = parseChecksum(sum); err != nil {
			return nil, fmt.Errorf("--checksum=%s: %w", sum, err)
		}
	}
	lim := b.downloadLimits()
	// Each limit cancels the download with its own cause, so the error says which
	// one it was; an interrupt of the build stays the build's own error.
	ctx, cancel := context.WithCancelCause(b.ctx)
	defer cancel(nil)
	var answered atomic.Bool
	overall := time.AfterFunc(lim.timeout, func() {
		cancel(fmt.Errorf("timed out: the download took longer than %s (--add-timeout)", lim.timeout))
	})
	defer overall.Stop()
	slow := time.AfterFunc(lim.window, func() {
		if !answered.Load() {
			cancel(fmt.Errorf("timed out: the server did not answer in %s", lim.window))
			return
		}
		cancel(fmt.Errorf("timed out: the server sent less than %d KiB in %s", lim.minBytes>>10, lim.window))
	})
	defer slow.Stop()
	fail := func(err error) error {
		if b.ctx.Err() == nil && ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return fmt.Errorf("fetching %q: %w", raw, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", raw, err)
	}
	req.Header.Set("User-Agent", "dfbuild")
	var conn net.Conn // the connection of the last request (after redirects)
	req = req.WithContext(httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) { conn = info.Conn },
	}))
	resp, err := fetchClient.Do(req)
	if err != nil {
		return nil, fail(err)
	}
	answered.Store(true)
	slow.Reset(lim.window)
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return nil, fmt.Errorf("fetching %q: the server answered %s", raw, resp.Status)
	}
	if resp.ContentLength > lim.maxSize {
		return nil, fmt.Errorf("fetching %q: the server announces %d bytes, over the limit of %d (--add-max-size)", raw, resp.ContentLength, lim.maxSize)
	}
	f, err := os.CreateTemp(b.tmp, "url-*")
	if err != nil {
		return nil, fmt.Errorf("fetching %q: %w", raw, err)
	}
	kept := false
	defer func() {
		f.Close()
		if !kept {
			os.Remove(f.Name())
		}
	}()
	var h hash.Hash
	w := io.Writer(f)
	if want != "" {
		h = want.Algorithm().Hash()
		w = io.MultiWriter(f, h)
	}
	// One byte past the limit tells a body at the limit from one over it.
	body := &rateReader{r: resp.Body, timer: slow, window: lim.window, min: lim.minBytes}
	size, err := io.Copy(w, io.LimitReader(body, lim.maxSize+1))
	if err != nil {
		return nil, fail(err)
	}
	if size > lim.maxSize {
		return nil, fmt.Errorf("fetching %q: the body is over the limit of %d bytes (--add-max-size)", raw, lim.maxSize)
	}
	if resp.ContentLength >= 0 && size != resp.ContentLength {
		return nil, fmt.Errorf("fetching %q: the body has %d bytes, but its Content-Length says %d", raw, size, resp.ContentLength)
	}
	if cc, ok := conn.(*countingConn); ok && resp.ContentLength >= 0 && resp.Header.Get("Content-Encoding") == "" {
		if n := cc.extra(); n > 0 {
			return nil, fmt.Errorf("fetching %q: the server sent more than its Content-Length of %d bytes (at least %d more)", raw, resp.ContentLength, n)
		}
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("fetching %q: %w", raw, err)
	}
	if want != "" {
		if got := digest.NewDigest(want.Algorithm(), h); got != want {
			return nil, fmt.Errorf("fetching %q: --checksum mismatch: the content has digest %s, not %s", raw, got, sum)
		}
	}
	mtime := time.Unix(0, 0).UTC()
	if lm := resp.Header.Get("Last-Modified"); lm != "" {
		if t, err := http.ParseTime(lm); err == nil {
			mtime = t
		}
	}
	b.noteTime(mtime)
	name := f.Name()
	kept = true
	return &layerfs.Node{
		Type:    layerfs.TypeReg,
		Mode:    0o600,
		ModTime: mtime,
		Size:    size,
		Content: func() (io.ReadCloser, error) { return os.Open(name) },
	}, nil
}
