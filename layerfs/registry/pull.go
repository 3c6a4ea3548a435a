package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// Pulled is an image the cache holds whole: its manifest, config and layers.
type Pulled struct {
	// Layout is the cache's OCI image layout directory.
	Layout string
	// Manifest is the digest of the image manifest (for an index, of the platform's
	// child).
	Manifest v1.Hash
	// Digest is what the reference resolved to: the index or the manifest.
	Digest v1.Hash
	// Name is the reference, fully qualified and pinned: "index.docker.io/library/
	// busybox:1.36@sha256:...".
	Name string
	// Repository is where the image comes from (the registry, never a mirror).
	Repository name.Repository
	// FromCache is set when no registry was asked.
	FromCache bool
}

// source is a place to fetch a repository's manifests and blobs from: a mirror, or
// the registry itself.
type source struct {
	repo name.Repository
	host string
}

// sources are the mirrors of the repository's registry, in order, then the
// registry.
func (c *Client) sources(repo name.Repository) ([]source, error) {
	var out []source
	for _, m := range c.opts.Config.host(repo.RegistryStr()).Mirrors {
		host, path, _ := strings.Cut(m, "/")
		rs := repo.RepositoryStr()
		if path != "" {
			rs = path + "/" + rs
		}
		r, err := name.NewRepository(host+"/"+rs, c.tr.nameOptions(host)...)
		if err != nil {
			return nil, fmt.Errorf("mirror %q of %s: %w", m, repo.RegistryStr(), err)
		}
		out = append(out, source{repo: r, host: host})
	}
	return append(out, source{repo: repo, host: repo.RegistryStr()}), nil
}

// Pull makes the image ref names, for platform when it is an index, available in
// the cache, fetching what the cache lacks.
func (c *Client) Pull(ctx context.Context, ref string, platform v1.Platform) (*Pulled, error) {
	r, err := c.parse(ref)
	if err != nil {
		return nil, err
	}
	p, err := c.pull(ctx, r, platform, true)
	if err != nil {
		return nil, fmt.Errorf("pulling %q: %w", ref, err)
	}
	return p, nil
}

// Describe fetches only what describes the image ref names: its manifest and config,
// from the cache or the registry, and no layer. The manifest is stored in the cache,
// so a later Pull fetches only the layers.
func (c *Client) Describe(ctx context.Context, ref string, platform v1.Platform) (*Pulled, *v1.Manifest, []byte, error) {
	r, err := c.parse(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	p, err := c.pull(ctx, r, platform, false)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("reading %q: %w", ref, err)
	}
	raw, err := c.cache.ReadBlob(p.Manifest)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, nil, nil, err
	}
	cfg, err := c.cache.ReadBlob(m.Config.Digest)
	if err != nil {
		return nil, nil, nil, err
	}
	return p, m, cfg, nil
}

// pull resolves r and fetches what the cache lacks: the manifest and config, and
// the layers when layers is set.
func (c *Client) pull(ctx context.Context, r name.Reference, platform v1.Platform, layers bool) (*Pulled, error) {
	srcs, err := c.sources(r.Context())
	if err != nil {
		return nil, err
	}
	p := &Pulled{Layout: c.cache.Dir, Repository: r.Context(), FromCache: true}
	top, fetched, err := c.resolve(ctx, r, srcs)
	if err != nil {
		return nil, err
	}
	if fetched {
		p.FromCache = false
	}
	var manifestDesc v1.Descriptor
	switch types.MediaType(top.MediaType) {
	case types.OCIImageIndex, types.DockerManifestList:
		raw, err := c.cache.ReadBlob(top.Digest)
		if err != nil {
			return nil, err
		}
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("reading the index %s: %w", top.Digest, err)
		}
		if manifestDesc, err = choosePlatform(idx, platform); err != nil {
			return nil, err
		}
		fetched, err := c.ensureManifest(ctx, r.Context().Digest(manifestDesc.Digest.String()), manifestDesc.Digest, srcs)
		if err != nil {
			return nil, err
		}
		if fetched {
			p.FromCache = false
		}
	case types.DockerManifestSchema1, types.DockerManifestSchema1Signed:
		return nil, fmt.Errorf("the image has a schema 1 manifest, which Docker no longer pulls either")
	default:
		manifestDesc = top
	}
	raw, err := c.cache.ReadBlob(manifestDesc.Digest)
	if err != nil {
		return nil, err
	}
	m, err := v1.ParseManifest(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("reading the manifest %s: %w", manifestDesc.Digest, err)
	}
	var cfg v1.ConfigFile
	blobs := append([]v1.Descriptor{m.Config}, m.Layers...)
	if !layers {
		blobs = blobs[:1]
	}
	fetched, err = c.ensureBlobs(ctx, r, blobs, srcs)
	if err != nil {
		return nil, err
	}
	if fetched {
		p.FromCache = false
	}
	cb, err := c.cache.ReadBlob(m.Config.Digest)
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, fmt.Errorf("reading the config %s: %w", m.Config.Digest, err)
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("the manifest lists %d layers but the config %d diff_ids", len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	if !layers {
		p.Manifest, p.Digest = manifestDesc.Digest, top.Digest
		p.Name = pinned(r, top.Digest)
		return p, nil
	}
	for i, l := range m.Layers {
		rec := LayerRecord{DiffID: cfg.RootFS.DiffIDs[i], Descriptor: v1.Descriptor{MediaType: l.MediaType, Digest: l.Digest, Size: l.Size}, Repository: r.Context().Name()}
		if err := c.cache.RecordLayer(KindPulled, rec); err != nil {
			return nil, err
		}
	}
	if _, isTag := r.(name.Tag); isTag {
		if err := c.cache.setRef(r.Name(), top); err != nil {
			return nil, err
		}
	}
	p.Manifest, p.Digest = manifestDesc.Digest, top.Digest
	p.Name = pinned(r, top.Digest)
	return p, nil
}

// pinned spells a reference with the digest it resolved to.
func pinned(r name.Reference, d v1.Hash) string {
	if t, ok := r.(name.Tag); ok {
		return t.Name() + "@" + d.String()
	}
	return r.Context().Name() + "@" + d.String()
}

// resolve finds what a reference names: from the cache when it can (a digest whose
// blob is there, a tag pulled before unless Refresh), else from the first source
// that answers, whose manifest or index it stores.
func (c *Client) resolve(ctx context.Context, r name.Reference, srcs []source) (desc v1.Descriptor, fetched bool, err error) {
	switch ref := r.(type) {
	case name.Digest:
		d, err := v1.NewHash(ref.DigestStr())
		if err != nil {
			return v1.Descriptor{}, false, err
		}
		if raw, err := c.cache.ReadBlob(d); err == nil {
			return v1.Descriptor{MediaType: mediaTypeOf(raw), Digest: d, Size: int64(len(raw))}, false, nil
		}
	case name.Tag:
		if !c.opts.Refresh {
			if d, ok := c.cache.lookup(r.Name()); ok {
				if _, err := c.cache.ReadBlob(d.Digest); err == nil {
					return v1.Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, false, nil
				}
			}
		}
	}
	var errs []error
	for _, s := range srcs {
		ref := retarget(r, s.repo)
		opts, err := c.remoteOptions(ctx, s.host)
		if err != nil {
			return v1.Descriptor{}, false, err
		}
		desc, err := remote.Get(ref, opts...)
		if err != nil {
			if ctx.Err() != nil {
				return v1.Descriptor{}, false, ctx.Err()
			}
			errs = append(errs, explain(err, s.host))
			continue
		}
		if dr, ok := r.(name.Digest); ok && desc.Digest.String() != dr.DigestStr() {
			// go-containerregistry checks this too; a mirror must not serve other bytes.
			errs = append(errs, fmt.Errorf("%s served %s for %s", s.host, desc.Digest, dr.DigestStr()))
			continue
		}
		if err := c.cache.putSmall(ctx, desc.Digest, desc.Manifest); err != nil {
			return v1.Descriptor{}, false, err
		}
		return v1.Descriptor{MediaType: desc.MediaType, Digest: desc.Digest, Size: desc.Size}, true, nil
	}
	return v1.Descriptor{}, false, errors.Join(errs...)
}

// retarget names r's tag or digest in another repository (a mirror's).
func retarget(r name.Reference, repo name.Repository) name.Reference {
	switch ref := r.(type) {
	case name.Digest:
		return repo.Digest(ref.DigestStr())
	case name.Tag:
		return repo.Tag(ref.TagStr())
	}
	return r
}

// mediaTypeOf reads the mediaType field of a manifest or index.
func mediaTypeOf(raw []byte) types.MediaType {
	var m struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(raw, &m) != nil {
		return ""
	}
	if m.MediaType == "" && m.Manifests != nil {
		return types.OCIImageIndex
	}
	return m.MediaType
}

// ensureManifest puts a child manifest of an index into the cache; it tells
// whether it had to be fetched.
func (c *Client) ensureManifest(ctx context.Context, ref name.Digest, d v1.Hash, srcs []source) (bool, error) {
	if _, err := c.cache.ReadBlob(d); err == nil {
		return false, nil
	}
	_, _, err := c.resolve(ctx, ref, srcs)
	return true, err
}

// ensureBlobs fetches the blobs the cache lacks, a few at a time, each verified
// before it is kept; it tells whether any was fetched.
func (c *Client) ensureBlobs(ctx context.Context, r name.Reference, blobs []v1.Descriptor, srcs []source) (bool, error) {
	var mu sync.Mutex
	fetched := false
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(3)
	for _, b := range blobs {
		if c.cache.HasBlob(b.Digest, b.Size) {
			c.report(Event{Action: "pull", Ref: r.String(), Digest: b.Digest.String(), Total: b.Size, Done: b.Size, Status: "cached"})
			continue
		}
		mu.Lock()
		fetched = true
		mu.Unlock()
		g.Go(func() error { return c.fetchBlob(gctx, r, b, srcs) })
	}
	return fetched, g.Wait()
}

// fetchBlob downloads one blob into the cache from the first source that serves
// it, retrying a transfer cut short (a reset connection) with backoff.
func (c *Client) fetchBlob(ctx context.Context, r name.Reference, b v1.Descriptor, srcs []source) error {
	var errs []error
	for _, s := range srcs {
		backoff := retryBackoff
		for attempt := 1; ; attempt++ {
			err := c.fetchBlobFrom(ctx, r, b, s)
			if err == nil {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
			err = explain(err, s.host)
			if attempt == 3 || !retryable(err) {
				errs = append(errs, fmt.Errorf("blob %s: %w", b.Digest, err))
				break
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
				return ctx.Err()
			}
			backoff *= 3
		}
	}
	return errors.Join(errs...)
}

// retryable tells a transfer cut short from an answer that will not change.
func retryable(err error) bool {
	var mismatch *digestMismatch
	if errors.As(err, &mismatch) {
		return false
	}
	s := err.Error()
	for _, permanent := range []string{"UNAUTHORIZED", "DENIED", "NOT_FOUND", "BLOB_UNKNOWN", "unexpected status code 404", "unexpected status code 401", "unexpected status code 403"} {
		if strings.Contains(s, permanent) {
			return false
		}
	}
	return true
}

type digestMismatch struct{ err error }

func (d *digestMismatch) Error() string { return d.err.Error() }

func (c *Client) fetchBlobFrom(ctx context.Context, r name.Reference, b v1.Descriptor, s source) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	opts, err := c.remoteOptions(ctx, s.host)
	if err != nil {
		return err
	}
	l, err := remote.Layer(s.repo.Digest(b.Digest.String()), opts...)
	if err != nil {
		return err
	}
	rc, err := l.Compressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	ir := newIdleReader(rc, c.opts.IdleTimeout, cancel)
	defer ir.stop()
	ev := Event{Action: "pull", Ref: r.String(), Digest: b.Digest.String(), Total: b.Size}
	err = c.cache.PutBlob(ctx, b.Digest, b.Size, ir, func(n int64) {
		ev.Done = n
		c.report(ev)
	})
	if err != nil {
		if cause := context.Cause(ctx); cause != nil && errors.Is(cause, errIdle) {
			return cause
		}
		if strings.Contains(err.Error(), "received bytes with digest") || strings.Contains(err.Error(), "received ") {
			return &digestMismatch{err}
		}
		return err
	}
	ev.Status = "done"
	c.report(ev)
	return nil
}

func (c *Client) report(e Event) {
	if c.opts.Progress != nil {
		c.opts.Progress(e)
	}
}

// retryBackoff is the wait before the second try of a blob; each later wait is
// three times longer (go-containerregistry's own backoff).
var retryBackoff = time.Second
