package interp

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"
	"unicode"

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

// checksum is a parsed --checksum value.
type checksum struct {
	algo string
	hex  string
	hash func() hash.Hash
}

// parseChecksum reads ALGORITHM:HEX as go-digest's Parse reads it, for the
// algorithms it knows.
func parseChecksum(s string) (*checksum, error) {
	algo, h, ok := strings.Cut(s, ":")
	if !ok || algo == "" || h == "" {
		return nil, errors.New("invalid checksum digest format: it should be ALGORITHM:HEX, such as sha256:<64 hex digits>")
	}
	c := &checksum{algo: algo, hex: h}
	size := 0
	switch algo {
	case "sha256":
		c.hash, size = sha256.New, sha256.Size
	case "sha384":
		c.hash, size = sha512.New384, sha512.Size384
	case "sha512":
		c.hash, size = sha512.New, sha512.Size
	default:
		return nil, fmt.Errorf("unsupported digest algorithm %q: use sha256, sha384 or sha512", algo)
	}
	if len(h) != 2*size {
		return nil, fmt.Errorf("invalid checksum digest length: %s takes %d hex digits, not %d", algo, 2*size, len(h))
	}
	if _, err := hex.DecodeString(h); err != nil || strings.ToLower(h) != h {
		return nil, errors.New("invalid checksum digest format: the digits must be lower-case hex")
	}
	return c, nil
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

// fetchIdle is how long a download may go without receiving anything.
const fetchIdle = 2 * time.Minute

// fetchClient bounds the steps that could otherwise wait forever and refuses a
// redirect from https to plain http, which would drop the transport's protection.
var fetchClient = &http.Client{
	Transport: func() http.RoundTripper {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.TLSHandshakeTimeout = 30 * time.Second
		t.ResponseHeaderTimeout = fetchIdle
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

// idleReader pushes the fetch's idle deadline back on every read that gets data.
type idleReader struct {
	r     io.Reader
	timer *time.Timer
}

func (i *idleReader) Read(p []byte) (int, error) {
	n, err := i.r.Read(p)
	if n > 0 {
		i.timer.Reset(fetchIdle)
	}
	return n, err
}

// fetch downloads raw into the build's scratch directory and returns the file as a
// node that reads it from there. A --checksum that the body does not match is an
// error, as is an answer other than 2xx or 3xx.
func (b *builder) fetch(raw, sum string) (*layerfs.Node, error) {
	var want *checksum
	if sum != "" {
		var err error
		if want, err = parseChecksum(sum); err != nil {
			return nil, fmt.Errorf("--checksum=%s: %w", sum, err)
		}
	}
	// A server that stops sending fails the build after fetchIdle instead of holding
	// it forever: every read pushes the deadline back.
	ctx, cancel := context.WithCancel(b.ctx)
	defer cancel()
	idle := time.AfterFunc(fetchIdle, cancel)
	defer idle.Stop()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, raw, nil)
	if err != nil {
		return nil, fmt.Errorf("source %q: %w", raw, err)
	}
	req.Header.Set("User-Agent", "dfbuild")
	resp, err := fetchClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching %q: %w", raw, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return nil, fmt.Errorf("fetching %q: the server answered %s", raw, resp.Status)
	}
	f, err := os.CreateTemp(b.tmp, "url-*")
	if err != nil {
		return nil, fmt.Errorf("fetching %q: %w", raw, err)
	}
	defer f.Close()
	var h hash.Hash
	w := io.Writer(f)
	if want != nil {
		h = want.hash()
		w = io.MultiWriter(f, h)
	}
	size, err := io.Copy(w, &idleReader{r: resp.Body, timer: idle})
	if err != nil {
		if ctx.Err() != nil && b.ctx.Err() == nil {
			err = fmt.Errorf("no data for %s", fetchIdle)
		}
		return nil, fmt.Errorf("fetching %q: %w", raw, err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("fetching %q: %w", raw, err)
	}
	if want != nil {
		if got := hex.EncodeToString(h.Sum(nil)); got != want.hex {
			return nil, fmt.Errorf("fetching %q: --checksum mismatch: the content has digest %s:%s, not %s", raw, want.algo, got, sum)
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
	return &layerfs.Node{
		Type:    layerfs.TypeReg,
		Mode:    0o600,
		ModTime: mtime,
		Size:    size,
		Content: func() (io.ReadCloser, error) { return os.Open(name) },
	}, nil
}
