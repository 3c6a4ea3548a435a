package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime"
	"sort"
	"strings"
	"sync"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/partial"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"golang.org/x/sync/errgroup"
)

// PushOptions are buildx's registry exporter options (-o type=image,push=true,...).
type PushOptions struct {
	// Compression is "gzip" (the default when empty), "zstd" or "uncompressed"
	// (buildx's compression=).
	Compression string
	// Level is compression-level=; -1 is the default (gzip 6, zstd 3, as BuildKit).
	// 0 is a level, so callers that take the option from the user pass -1 when it
	// is unset.
	Level int
	// OCIMediaTypes writes OCI manifests and media types (oci-mediatypes=); false
	// writes a Docker schema 2 manifest (or manifest list) with Docker's types.
	OCIMediaTypes bool
	// ForceCompression recompresses base layers whose blobs are in another
	// compression than the one asked for (force-compression=). Without it they keep
	// the blobs their registry served, as BuildKit keeps them.
	ForceCompression bool
}

// PushImage is one image of a push; Platform names it in an index (when nil, the
// config's os, architecture and variant do).
type PushImage struct {
	Image    *image.Image
	Platform *v1.Platform
}

// Pushed says what a push wrote.
type Pushed struct {
	// Digest, MediaType and Size describe the manifest (one image) or index (several)
	// every tag now names.
	Digest    v1.Hash
	MediaType types.MediaType
	Size      int64
	// Refs are "name:tag@digest", one a tag, in the order given.
	Refs []string
}

// Push uploads one image, or an index of several (one a platform), under every tag.
//
// Every layer is compressed once into the cache and recorded, so pushing it again
// compresses nothing; a blob the registry has is not sent; a base layer pulled from
// another repository of the same registry is mounted. Each target repository first
// receives every blob and the manifest by digest (for an index: each child, then the
// index); only then are the tags written, so an interrupted push leaves no tag
// naming an incomplete image, in any of the repositories.
func (c *Client) Push(ctx context.Context, images []PushImage, tags []string, o PushOptions) (*Pushed, error) {
	if len(images) == 0 {
		return nil, errors.New("pushing: no image")
	}
	if len(tags) == 0 {
		return nil, errors.New("pushing: no name to push to (give -t or name=)")
	}
	comp, err := newCompression(o.Compression, o.Level)
	if err != nil {
		return nil, fmt.Errorf("pushing %q: %w", tags[0], err)
	}
	if comp.kind == CompressionZstd && !o.OCIMediaTypes {
		// buildx/BuildKit refuse it too (exporter/containerimage opts Validate): Docker's
		// schema 2 has no zstd layer type that Docker pulls.
		return nil, fmt.Errorf("pushing %q: zstd compression requires oci-mediatypes=true", tags[0])
	}
	targets, err := c.pushTargets(tags)
	if err != nil {
		return nil, err
	}
	built, err := c.buildManifests(ctx, images, comp, o, tags[0])
	if err != nil {
		return nil, fmt.Errorf("pushing %q: %w", tags[0], err)
	}
	top := built.top()

	// One pusher a registry host: it remembers, per repository, which blobs and
	// manifests it wrote or found, so the tags below send only their manifest.
	pushers := map[string]*remote.Pusher{}
	obs := &pushObserver{sizes: built.sizes, report: c.report, seen: map[string]bool{}}
	pusherFor := func(host string) (*remote.Pusher, error) {
		if p, ok := pushers[host]; ok {
			return p, nil
		}
		opts, err := c.remoteOptions(ctx, host)
		if err != nil {
			return nil, err
		}
		rt, err := c.tr.forHost(host)
		if err != nil {
			return nil, err
		}
		opts = append(opts, remote.WithTransport(&observedTransport{base: rt, obs: obs}))
		p, err := remote.NewPusher(opts...)
		if err != nil {
			return nil, err
		}
		pushers[host] = p
		return p, nil
	}

	views := map[name.Repository]remote.Taggable{}
	for _, t := range targets {
		repo := t.tag.Context()
		if _, done := views[repo]; done {
			continue
		}
		view, err := built.forRepo(repo, c.report)
		if err != nil {
			return nil, fmt.Errorf("pushing %q: %w", t.given, err)
		}
		views[repo] = view
		p, err := pusherFor(repo.RegistryStr())
		if err != nil {
			return nil, fmt.Errorf("pushing %q: %w", t.given, err)
		}
		if err := p.Push(ctx, repo.Digest(top.Digest.String()), view); err != nil {
			return nil, fmt.Errorf("pushing %q: %w", t.given, explain(pushCause(ctx, err), repo.RegistryStr()))
		}
		// A manifest the repository already had means its blobs are there too, and
		// go-containerregistry checks none of them: say so, so every blob ends.
		obs.settle(repo.Name())
	}
	out := &Pushed{Digest: top.Digest, MediaType: top.MediaType, Size: top.Size}
	for _, t := range targets {
		repo := t.tag.Context()
		p, err := pusherFor(repo.RegistryStr())
		if err != nil {
			return nil, fmt.Errorf("pushing %q: %w", t.given, err)
		}
		if err := p.Push(ctx, t.tag, views[repo]); err != nil {
			return nil, fmt.Errorf("tagging %q: %w", t.given, explain(pushCause(ctx, err), repo.RegistryStr()))
		}
		out.Refs = append(out.Refs, t.tag.Name()+"@"+top.Digest.String())
	}
	return out, nil
}

// pushCause prefers the context's error to what a cancelled request reported.
func pushCause(ctx context.Context, err error) error {
	if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	return err
}

type pushTarget struct {
	given string
	tag   name.Tag
}

// pushTargets parses the names to push to; each must be a tag (a name alone is
// :latest), given once.
func (c *Client) pushTargets(tags []string) ([]pushTarget, error) {
	var out []pushTarget
	seen := map[string]bool{}
	for _, t := range tags {
		r, err := c.parse(t)
		if err != nil {
			return nil, fmt.Errorf("pushing: %w", err)
		}
		tag, ok := r.(name.Tag)
		if !ok {
			return nil, fmt.Errorf("pushing %q: a push names a tag, not a digest", t)
		}
		if seen[tag.Name()] {
			continue
		}
		seen[tag.Name()] = true
		out = append(out, pushTarget{given: t, tag: tag})
	}
	return out, nil
}

// pushJobs is how many layers are compressed at once: one writer a core (each
// writer is single-threaded), at most 4 gzip writers and 2 zstd encoders to keep a
// push under 64 MiB. Measured compressing two 256 MiB layers at once: gzip level 6
// peaked at 6 MiB of heap, zstd level 3 at 40 MiB (an encoder keeps its 8 MiB
// window and history buffers; a smaller window would change the bytes).
func pushJobs(comp compression) int {
	limit := 4
	if comp.kind == CompressionZstd {
		limit = 2
	}
	return min(max(runtime.GOMAXPROCS(0), 1), limit)
}

// layerBlob is the blob a layer is pushed as, and the repository it was pulled
// from when it is a base layer kept as its registry served it.
type layerBlob struct {
	*blob
	source string // "host/repo", or ""
}

// builtImage is one image's manifest and blobs, independent of where it goes.
type builtImage struct {
	manifest   []byte
	desc       v1.Descriptor // the manifest's
	config     []byte
	configDesc v1.Descriptor
	layers     []layerBlob
}

// built is what a push sends: one image, or an index of them.
type built struct {
	images []*builtImage
	index  []byte // nil for one image
	desc   v1.Descriptor
	sizes  map[string]int64 // blob digest to size, for progress
}

func (b *built) top() v1.Descriptor { return b.desc }

// buildManifests compresses (or finds) every layer's blob and writes the manifests.
func (c *Client) buildManifests(ctx context.Context, images []PushImage, comp compression, o PushOptions, ref string) (*built, error) {
	// A layer may be in several images of an index; each is made once.
	blobs := map[*layerfs.Layer]*layerBlob{}
	var order []*layerfs.Layer
	for i, pi := range images {
		if pi.Image == nil {
			return nil, fmt.Errorf("image %d is missing", i+1)
		}
		for _, l := range pi.Image.Layers {
			if _, ok := blobs[l]; !ok {
				blobs[l] = nil
				order = append(order, l)
			}
		}
	}
	var mu sync.Mutex
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(pushJobs(comp))
	for _, l := range order {
		g.Go(func() error {
			lb, err := c.layerBlob(gctx, l, comp, o, ref)
			if err != nil {
				return err
			}
			mu.Lock()
			blobs[l] = lb
			mu.Unlock()
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}

	b := &built{sizes: map[string]int64{}}
	manifestType, configType, indexType := types.DockerManifestSchema2, types.DockerConfigJSON, types.DockerManifestList
	if o.OCIMediaTypes {
		manifestType, configType, indexType = types.OCIManifestSchema1, types.OCIConfigJSON, types.OCIImageIndex
	}
	for i, pi := range images {
		cfg, err := pi.Image.ConfigJSON()
		if err != nil {
			return nil, fmt.Errorf("image %d: writing its config: %w", i+1, err)
		}
		bi := &builtImage{config: cfg, configDesc: v1.Descriptor{MediaType: configType, Size: int64(len(cfg)), Digest: sha256Hash(cfg)}}
		m := v1.Manifest{SchemaVersion: 2, MediaType: manifestType, Config: bi.configDesc, Layers: []v1.Descriptor{}}
		for _, l := range pi.Image.Layers {
			lb := blobs[l]
			bi.layers = append(bi.layers, *lb)
			m.Layers = append(m.Layers, v1.Descriptor{MediaType: lb.mediaType, Size: lb.size, Digest: lb.digest})
			b.sizes[lb.digest.String()] = lb.size
		}
		b.sizes[bi.configDesc.Digest.String()] = bi.configDesc.Size
		if bi.manifest, err = json.Marshal(m); err != nil {
			return nil, err
		}
		bi.desc = v1.Descriptor{MediaType: manifestType, Size: int64(len(bi.manifest)), Digest: sha256Hash(bi.manifest)}
		b.images = append(b.images, bi)
	}
	if len(images) == 1 {
		b.desc = b.images[0].desc
		return b, nil
	}
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: indexType}
	seen := map[string]int{}
	for i, pi := range images {
		p := pi.Platform
		if p == nil {
			cf := pi.Image.Config
			p = &v1.Platform{OS: cf.OS, Architecture: cf.Architecture, Variant: cf.Variant}
		}
		if p.OS == "" || p.Architecture == "" {
			return nil, fmt.Errorf("image %d of the index has no platform", i+1)
		}
		key := formatPlatform(*p)
		if j, dup := seen[key]; dup {
			return nil, fmt.Errorf("images %d and %d are both for %s", j+1, i+1, key)
		}
		seen[key] = i
		d := b.images[i].desc
		d.Platform = p
		idx.Manifests = append(idx.Manifests, d)
	}
	var err error
	if b.index, err = json.Marshal(idx); err != nil {
		return nil, err
	}
	b.desc = v1.Descriptor{MediaType: indexType, Size: int64(len(b.index)), Digest: sha256Hash(b.index)}
	return b, nil
}

func sha256Hash(b []byte) v1.Hash {
	sum := sha256.Sum256(b)
	return v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(sum[:])}
}

// layerBlob chooses a layer's blob. A base layer a registry served keeps that blob
// (renamed between Docker's and OCI's media types), as BuildKit keeps base blobs
// unless force-compression asks for another compression than theirs
// (cache/remote.go getRemote, compression's NeedsConversion, which ignores the
// level). One exception: a zstd base in a Docker manifest is compressed again,
// because Docker's schema 2 has no zstd type (BuildKit would keep the OCI type in
// the Docker manifest). Any other layer is compressed, once: the cache records it.
func (c *Client) layerBlob(ctx context.Context, l *layerfs.Layer, comp compression, o PushOptions, ref string) (*layerBlob, error) {
	d, known := l.KnownDiffID()
	if !known && comp.kind != CompressionUncompressed {
		// A layer just built: its diff_id is learnt in the pass that compresses it,
		// so the layer is read once, not once to hash it and again to compress it.
		// Only such a layer can be new to the cache.
		b, err := c.compressLayer(ctx, l, v1.Hash{}, comp, o.OCIMediaTypes, ref)
		if err != nil {
			return nil, err
		}
		return &layerBlob{blob: b}, nil
	}
	if !known {
		var err error
		if d, err = l.DiffID(); err != nil {
			return nil, fmt.Errorf("hashing a layer: %w", err)
		}
	}
	diffID, err := v1.NewHash(string(d))
	if err != nil {
		return nil, err
	}
	if rec, ok := c.cache.LookupLayer(KindPulled, diffID); ok {
		kind, _ := layerKind(rec.Descriptor.MediaType)
		keep := !(o.ForceCompression && kind != comp.kind) && !(kind == CompressionZstd && !o.OCIMediaTypes)
		if keep {
			rd := rec.Descriptor
			return &layerBlob{
				blob:   &blob{digest: rd.Digest, size: rd.Size, diffID: diffID, mediaType: convertMediaType(rd.MediaType, o.OCIMediaTypes), open: c.cache.openCached(rd.Digest, rd.Size)},
				source: rec.Repository,
			}, nil
		}
	}
	b, err := c.compressLayer(ctx, l, diffID, comp, o.OCIMediaTypes, ref)
	if err != nil {
		return nil, err
	}
	return &layerBlob{blob: b}, nil
}

// forRepo is what is pushed to one repository: the same manifests, with base
// layers from another repository of the same registry marked for a mount.
func (b *built) forRepo(repo name.Repository, report func(Event)) (remote.Taggable, error) {
	var imgs []*pushImage
	for _, bi := range b.images {
		pi := &pushImage{b: bi}
		for _, lb := range bi.layers {
			bl := *lb.blob
			ev := Event{Action: "push", Ref: repo.Name(), Digest: bl.digest.String(), Total: bl.size}
			bl.read = func(done int64) {
				e := ev
				e.Done = done
				report(e)
			}
			l, err := partial.CompressedToLayer(&bl)
			if err != nil {
				return nil, err
			}
			if lb.source != "" {
				src, err := name.NewRepository(lb.source, name.Insecure)
				if err == nil && src.RegistryStr() == repo.RegistryStr() && src.RepositoryStr() != repo.RepositoryStr() {
					l = &remote.MountableLayer{Layer: l, Reference: src.Digest(bl.digest.String())}
				}
			}
			pi.layers = append(pi.layers, l)
		}
		imgs = append(imgs, pi)
	}
	if b.index == nil {
		return imgs[0], nil
	}
	return &pushIndex{raw: b.index, desc: b.desc, images: imgs}, nil
}

// pushImage is a v1.Image whose manifest and config are exactly the bytes built,
// and whose layers report their digests without reading anything.
type pushImage struct {
	b      *builtImage
	layers []v1.Layer
}

var _ v1.Image = (*pushImage)(nil)

func (p *pushImage) Layers() ([]v1.Layer, error)         { return p.layers, nil }
func (p *pushImage) MediaType() (types.MediaType, error) { return p.b.desc.MediaType, nil }
func (p *pushImage) Size() (int64, error)                { return p.b.desc.Size, nil }
func (p *pushImage) ConfigName() (v1.Hash, error)        { return p.b.configDesc.Digest, nil }
func (p *pushImage) RawConfigFile() ([]byte, error)      { return p.b.config, nil }
func (p *pushImage) Digest() (v1.Hash, error)            { return p.b.desc.Digest, nil }
func (p *pushImage) RawManifest() ([]byte, error)        { return p.b.manifest, nil }
func (p *pushImage) ConfigFile() (*v1.ConfigFile, error) {
	return v1.ParseConfigFile(bytes.NewReader(p.b.config))
}
func (p *pushImage) Manifest() (*v1.Manifest, error) {
	return v1.ParseManifest(bytes.NewReader(p.b.manifest))
}
func (p *pushImage) ConfigLayer() (v1.Layer, error) { return partial.ConfigLayer(configOnly{p.b}) }
func (p *pushImage) LayerByDiffID(h v1.Hash) (v1.Layer, error) {
	for i, lb := range p.b.layers {
		if lb.diffID == h {
			return p.layers[i], nil
		}
	}
	return nil, fmt.Errorf("no layer with diff_id %s", h)
}

func (p *pushImage) LayerByDigest(h v1.Hash) (v1.Layer, error) {
	if h == p.b.configDesc.Digest {
		return p.ConfigLayer()
	}
	for i, lb := range p.b.layers {
		if lb.digest == h {
			return p.layers[i], nil
		}
	}
	return nil, fmt.Errorf("no layer with digest %s", h)
}

// configOnly hands partial.ConfigLayer the config bytes alone, so it does not find
// pushImage's own ConfigLayer and loop.
type configOnly struct{ b *builtImage }

func (c configOnly) RawConfigFile() ([]byte, error) { return c.b.config, nil }

// pushIndex is a v1.ImageIndex of pushImages with the index bytes built.
type pushIndex struct {
	raw    []byte
	desc   v1.Descriptor
	images []*pushImage
}

var _ v1.ImageIndex = (*pushIndex)(nil)

func (p *pushIndex) MediaType() (types.MediaType, error) { return p.desc.MediaType, nil }
func (p *pushIndex) Digest() (v1.Hash, error)            { return p.desc.Digest, nil }
func (p *pushIndex) Size() (int64, error)                { return p.desc.Size, nil }
func (p *pushIndex) RawManifest() ([]byte, error)        { return p.raw, nil }
func (p *pushIndex) IndexManifest() (*v1.IndexManifest, error) {
	return v1.ParseIndexManifest(bytes.NewReader(p.raw))
}

func (p *pushIndex) Image(h v1.Hash) (v1.Image, error) {
	for _, img := range p.images {
		if img.b.desc.Digest == h {
			return img, nil
		}
	}
	return nil, fmt.Errorf("no image with digest %s in the index", h)
}

func (p *pushIndex) ImageIndex(h v1.Hash) (v1.ImageIndex, error) {
	return nil, fmt.Errorf("no index with digest %s in the index", h)
}

// pushObserver reports what the registry said about each blob of a push: found
// (HEAD 200), mounted (POST ?mount= 201) or stored (PUT of the upload 201).
// go-containerregistry decides these itself and tells only a logger.
type pushObserver struct {
	sizes  map[string]int64 // read only
	report func(Event)
	mu     sync.Mutex
	seen   map[string]bool // "host/repo@digest" reported
}

type observedTransport struct {
	base http.RoundTripper
	obs  *pushObserver
}

func (t *observedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	repo, rest, ok := strings.Cut(strings.TrimPrefix(req.URL.Path, "/v2/"), "/blobs/")
	if !ok {
		return resp, nil
	}
	var digest, status string
	switch {
	case req.Method == http.MethodHead && resp.StatusCode == http.StatusOK:
		digest, status = rest, "exists"
	case req.Method == http.MethodPost && resp.StatusCode == http.StatusCreated:
		digest, status = req.URL.Query().Get("mount"), "mounted"
	case req.Method == http.MethodPut && resp.StatusCode == http.StatusCreated:
		digest, status = req.URL.Query().Get("digest"), "done"
	default:
		return resp, nil
	}
	t.obs.blob(req.URL.Host+"/"+repo, digest, status)
	return resp, nil
}

func (o *pushObserver) blob(repo, digest, status string) {
	size, known := o.sizes[digest]
	if !known {
		return
	}
	o.mu.Lock()
	o.seen[repo+"@"+digest] = true
	o.mu.Unlock()
	o.report(Event{Action: "push", Ref: repo, Digest: digest, Total: size, Done: size, Status: status})
}

// settle reports "exists" for the blobs of a repository that nothing was said of.
func (o *pushObserver) settle(repo string) {
	ds := make([]string, 0, len(o.sizes))
	for d := range o.sizes {
		ds = append(ds, d)
	}
	sort.Strings(ds)
	for _, d := range ds {
		o.mu.Lock()
		seen := o.seen[repo+"@"+d]
		o.mu.Unlock()
		if !seen {
			o.blob(repo, d, "exists")
		}
	}
}
