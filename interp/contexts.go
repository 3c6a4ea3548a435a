package interp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/distribution/reference"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/baseimage"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// ImageSource serves image references that no --build-context names (FROM, COPY --from, docker-image:// contexts).
type ImageSource interface {
	Image(ctx context.Context, ref string, platform Platform) (*LocalImage, error)
}

// LocalImage is an image made available on local disk as one image manifest in an OCI image layout directory.
type LocalImage struct {
	Layout   string         // OCI image layout directory
	Manifest layerfs.Digest // digest of the image manifest (never an index) in it
	Name     string         // canonical reference for messages, e.g. "docker.io/library/busybox:1.36@sha256:..."
}

// ContextKind is what the value of a --build-context stands for.
type ContextKind int

const (
	// ContextDir is a local directory: its files, with no image config (buildx's
	// plain path form).
	ContextDir ContextKind = iota + 1
	// ContextFile is dfbuild's own form: a path to an image archive, an OCI layout or
	// unpacked image directory, or a root filesystem tarball.
	ContextFile
	// ContextDockerImage is docker-image://REF, served by Options.Images.
	ContextDockerImage
	// ContextOCILayout is oci-layout://PATH[:TAG|@DIGEST].
	ContextOCILayout
)

// BuildContext is a parsed --build-context value.
type BuildContext struct {
	Kind   ContextKind
	Value  string         // as given
	Path   string         // ContextDir, ContextFile, ContextOCILayout: the local path
	Ref    string         // ContextDockerImage: the reference; ContextOCILayout: the tag
	Digest layerfs.Digest // ContextOCILayout: the manifest or index digest, if given
}

// ContextForms lists the values --build-context takes, for help and error texts.
const ContextForms = "a directory; an image archive, OCI layout or root filesystem tarball (a path); " +
	"docker-image://REF; oci-layout://PATH[:TAG|@DIGEST]"

// ParseBuildContext reads a --build-context value the way buildx tells its forms
// apart (bx:build/opt.go, loadInputs): a scheme first, otherwise a local path, which
// must exist. Remote forms (git and http URLs, bake's target:) are refused.
func ParseBuildContext(value string) (BuildContext, error) {
	c := BuildContext{Value: value}
	bad := func(why string) error {
		return fmt.Errorf("%q: %s; a build context is %s", value, why, ContextForms)
	}
	switch {
	case strings.HasPrefix(value, "docker-image://"):
		c.Kind, c.Ref = ContextDockerImage, strings.TrimPrefix(value, "docker-image://")
		if c.Ref == "scratch" {
			return c, nil
		}
		if _, err := reference.ParseNormalizedNamed(c.Ref); err != nil {
			return c, bad(fmt.Sprintf("invalid image reference: %v", err))
		}
		return c, nil
	case strings.HasPrefix(value, "oci-layout://"):
		c.Kind = ContextOCILayout
		rest := strings.TrimPrefix(value, "oci-layout://")
		// As buildx's ocilayout.Parse: a digest after the last "@", a tag after the
		// last ":" of the last path element; the tag defaults to latest.
		if i := strings.LastIndex(rest, "@"); i >= 0 {
			c.Digest = layerfs.Digest(rest[i+1:])
			if err := c.Digest.Validate(); err != nil {
				return c, bad(fmt.Sprintf("invalid digest %q: %v", rest[i+1:], err))
			}
			rest = rest[:i]
		}
		if i := strings.LastIndex(rest, ":"); i > strings.LastIndex(rest, "/") {
			c.Ref, rest = rest[i+1:], rest[:i]
		}
		if c.Ref == "" {
			c.Ref = "latest"
		}
		c.Path = rest
		if fi, err := os.Stat(filepath.Join(rest, "index.json")); err != nil || !fi.Mode().IsRegular() {
			return c, bad(fmt.Sprintf("%q is not an OCI image layout directory (no index.json)", rest))
		}
		return c, nil
	case strings.HasPrefix(value, "target:"):
		return c, bad("target: contexts exist only in docker buildx bake")
	case strings.Contains(value, "://") || strings.HasPrefix(value, "git@"):
		return c, bad("remote contexts (git and http URLs) are not supported; dfbuild reads local files only")
	}
	c.Path = value
	fi, err := os.Stat(value)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return c, bad("no such file or directory")
		}
		return c, bad(err.Error())
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		// Reading a FIFO would wait for a writer forever (issue 11, fault 6).
		return c, bad(fmt.Sprintf("it is a %s, not a directory or a regular file", fileKind(fi.Mode())))
	}
	c.Kind = ContextFile
	if fi.IsDir() {
		// A directory that is an image layout (dfbuild's type=dir, an OCI layout) keeps
		// serving as that image, as it did before directories were contexts of their own.
		if ok, _ := baseimage.IsImage(value); !ok {
			c.Kind = ContextDir
		}
	}
	return c, nil
}

// ContextKey reduces a context name, or a FROM or COPY --from name, to the key
// BuildKit matches them by (bk:frontend/dockerui/config.go, Client.NamedContext):
// normalised, then written the familiar way, without ":latest". "alpine",
// "docker.io/library/alpine:latest" are "alpine"; "alpine:3.20" stays, and a digest
// is kept whole.
func ContextKey(name string) (string, error) {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return "", fmt.Errorf("invalid context name %q: %w", name, err)
	}
	return strings.TrimSuffix(reference.FamiliarString(named), ":latest"), nil
}

// namedContext is one --build-context of the build.
type namedContext struct {
	name string // as given
	spec BuildContext
	used bool
}

func (nc *namedContext) flag() string { return "--build-context " + nc.name + "=" + nc.spec.Value }

// parseContexts reads Options.BuildContexts.
func parseContexts(in map[string]string) (map[string]*namedContext, error) {
	out := map[string]*namedContext{}
	names := make([]string, 0, len(in))
	for n := range in {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		key, err := ContextKey(n)
		if err != nil {
			return nil, fmt.Errorf("--build-context %s: %w", n, err)
		}
		spec, err := ParseBuildContext(in[n])
		if err != nil {
			return nil, fmt.Errorf("--build-context %s: %w", n, err)
		}
		if prev, ok := out[key]; ok {
			return nil, fmt.Errorf("--build-context %s and %s name the same context %q", prev.name, n, key)
		}
		out[key] = &namedContext{name: n, spec: spec}
	}
	return out, nil
}

// lookupContext finds the context that serves a name, as BuildKit looks one up for
// a stage name, a FROM name or a COPY --from image, and marks it used. "scratch"
// and "context" are never looked up (namedContextFunc's filter).
func (b *builder) lookupContext(name string) *namedContext {
	if name == "scratch" || name == "context" || len(b.contexts) == 0 {
		return nil
	}
	key, err := ContextKey(name)
	if err != nil {
		return nil
	}
	nc := b.contexts[key]
	if nc != nil {
		nc.used = true
	}
	return nc
}

// unusedContextWarnings names the contexts nothing looked up. BuildKit ignores them
// silently; a misspelt name would otherwise go unnoticed.
func (b *builder) unusedContextWarnings() []string {
	var out []string
	for _, key := range sortedKeys(b.contexts) {
		nc := b.contexts[key]
		if !nc.used {
			out = append(out, fmt.Sprintf("%s is not used: no stage, FROM or COPY --from names %q", nc.flag(), key))
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// loadContext loads the base a context stands for, once per platform.
func (b *builder) loadContext(nc *namedContext, platform Platform) (*baseImage, error) {
	key := "context " + nc.name + "@" + platform.String()
	if base, ok := b.bases[key]; ok {
		return base, nil
	}
	var base *baseImage
	var err error
	switch nc.spec.Kind {
	case ContextDir:
		base, err = b.loadDir(nc)
	case ContextFile:
		base, err = b.loadFile(nc.name, nc.spec.Path, fmt.Sprintf("%q", nc.spec.Path), platform)
	case ContextDockerImage:
		if nc.spec.Ref == "scratch" {
			// BuildKit: an empty filesystem and no config.
			base = &baseImage{fs: layerfs.New(), empty: true}
			break
		}
		if b.opts.Images == nil {
			return nil, fmt.Errorf("%s: no registry access is configured, so docker-image:// contexts cannot be served; "+
				"pass the image as a file (docker save, skopeo copy) or oci-layout://PATH", nc.flag())
		}
		base, err = b.pull(nc.spec.Ref, platform)
	case ContextOCILayout:
		base, err = b.loadLayout(nc, platform)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", nc.flag(), err)
	}
	b.bases[key] = base
	return base, nil
}

// loadDir reads a directory context into a tree, through the same contextSource as
// the build context: symlinks resolved inside it, its own .dockerignore applied (as
// BuildKit applies a named local context's, testNamedLocalContext), files owned by
// root. Its files become one layer.
func (b *builder) loadDir(nc *namedContext) (*baseImage, error) {
	dir := nc.spec.Path
	ignore, err := ReadIgnoreFile(dir, "")
	if err != nil {
		return nil, err
	}
	rl, err := openRootFS(dir)
	if err != nil {
		return nil, err
	}
	src, err := newContextSource(rl, dir, nil, ignore)
	if err != nil {
		return nil, fmt.Errorf("checking %s: %w", ignore.Name, err)
	}
	fi, err := src.lstat(".")
	if err != nil {
		return nil, err
	}
	tree := layerfs.New()
	c := &copier{b: b, dst: tree, src: src, notes: true}
	if err := c.copySource(source{name: ".", real: ".", info: fi}, "/", true, false); err != nil {
		return nil, fmt.Errorf("reading the directory: %w", err)
	}
	changes := tree.Commit()
	// The layer's history entry names the context, never its path, which differs
	// from machine to machine.
	return &baseImage{fs: tree, changes: changes, empty: true, comment: "--build-context " + nc.name}, nil
}

// loadLayout reads oci-layout://PATH[:TAG|@DIGEST]: the digest, or the tag looked up
// in index.json as BuildKit's ociindex does (containerd's name annotation, then the
// OCI ref name, then the only entry), and of an index the manifest for the platform.
func (b *builder) loadLayout(nc *namedContext, platform Platform) (*baseImage, error) {
	dir, want := nc.spec.Path, nc.spec.Digest
	var top ociDescriptor
	if want == "" {
		var idx ociIndex
		if err := readLayoutJSON(dir, "index.json", &idx); err != nil {
			return nil, err
		}
		found := false
		for _, ann := range []string{"io.containerd.image.name", "org.opencontainers.image.ref.name"} {
			for _, d := range idx.Manifests {
				if !found && d.Annotations[ann] == nc.spec.Ref {
					top, found = d, true
				}
			}
		}
		if !found && len(idx.Manifests) == 1 {
			top, found = idx.Manifests[0], true
		}
		if !found {
			return nil, fmt.Errorf("%s has no image tagged %q in index.json", dir, nc.spec.Ref)
		}
	} else {
		top = ociDescriptor{Digest: want}
		var probe struct {
			MediaType string          `json:"mediaType"`
			Manifests json.RawMessage `json:"manifests"`
		}
		if err := readLayoutJSON(dir, blobPath(want), &probe); err != nil {
			return nil, err
		}
		top.MediaType = probe.MediaType
		if probe.Manifests != nil && probe.MediaType == "" {
			top.MediaType = mediaTypeIndex
		}
	}
	manifest, err := pickManifest(dir, top, platform, 0)
	if err != nil {
		return nil, err
	}
	img, err := baseimage.LoadManifest(dir, manifest, b.tmp)
	if err != nil {
		return nil, err
	}
	return b.fromBase(img, manifest), nil
}

const (
	mediaTypeIndex      = "application/vnd.oci.image.index.v1+json"
	mediaTypeDockerList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      layerfs.Digest    `json:"digest"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *struct {
		OS      string `json:"os"`
		Arch    string `json:"architecture"`
		Variant string `json:"variant,omitempty"`
	} `json:"platform,omitempty"`
}

type ociIndex struct {
	Manifests []ociDescriptor `json:"manifests"`
}

// pickManifest follows an index down to the image manifest for the platform.
func pickManifest(dir string, d ociDescriptor, platform Platform, depth int) (layerfs.Digest, error) {
	if d.MediaType != mediaTypeIndex && d.MediaType != mediaTypeDockerList {
		return d.Digest, nil
	}
	if depth > 4 {
		return "", errors.New("indexes nested too deeply")
	}
	var idx ociIndex
	if err := readLayoutJSON(dir, blobPath(d.Digest), &idx); err != nil {
		return "", err
	}
	var have []string
	for _, m := range idx.Manifests {
		p := m.Platform
		if p == nil {
			continue
		}
		have = append(have, Platform{OS: p.OS, Arch: p.Arch, Variant: p.Variant}.String())
		if p.OS == platform.OS && p.Arch == platform.Arch && (p.Variant == "" || platform.Variant == "" || p.Variant == platform.Variant) {
			return pickManifest(dir, m, platform, depth+1)
		}
	}
	return "", fmt.Errorf("the index %s has no image for %s (it has %s)", d.Digest, platform, strings.Join(have, ", "))
}

func blobPath(d layerfs.Digest) string {
	alg, hex, _ := strings.Cut(string(d), ":")
	return filepath.Join("blobs", alg, hex)
}

func readLayoutJSON(dir, name string, v any) error {
	if strings.Contains(name, "..") {
		return fmt.Errorf("invalid blob name %q", name)
	}
	f, err := openRegularFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) && name != "index.json" {
		return fmt.Errorf("the layout %s has no blob %s", dir, strings.ReplaceAll(strings.TrimPrefix(name, "blobs/"), "/", ":"))
	}
	if err != nil {
		return err
	}
	defer f.Close()
	if err := json.NewDecoder(f).Decode(v); err != nil {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return nil
}

// pull asks Options.Images for an image.
func (b *builder) pull(ref string, platform Platform) (*baseImage, error) {
	li, err := b.opts.Images.Image(b.ctx, ref, platform)
	if err != nil {
		return nil, err // the source names the reference and its step
	}
	img, err := baseimage.LoadManifest(li.Layout, li.Manifest, b.tmp)
	if err != nil {
		return nil, fmt.Errorf("loading %s: %w", li.Name, err)
	}
	return b.fromBase(img, li.Manifest), nil
}

// fromBase turns a loaded image into a base, which the build closes at its end.
func (b *builder) fromBase(img *baseimage.Base, manifest layerfs.Digest) *baseImage {
	b.closers = append(b.closers, img.Close)
	cf := img.Config
	return &baseImage{fs: img.FS, layers: img.Layers, config: &cf, history: cloneHistory(cf.History), manifest: manifest}
}

func cloneHistory(h []image.History) []image.History { return append([]image.History(nil), h...) }

// pinnedDigest returns the digest a name is pinned to (name@sha256:...), or "".
func pinnedDigest(name string) layerfs.Digest {
	named, err := reference.ParseNormalizedNamed(name)
	if err != nil {
		return ""
	}
	if d, ok := named.(reference.Digested); ok {
		return layerfs.Digest(d.Digest().String())
	}
	return ""
}
