package interp

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/baseimage"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// from starts a stage: from an earlier stage, FROM scratch, or an image served by
// --build-context or by a tarball in the build context.
func (b *builder) from(d *stageDef) (*stage, error) {
	platform, err := b.stagePlatform(d)
	if err != nil {
		return nil, err
	}
	if d.parent != nil {
		return d.parent.st.child(d), nil
	}
	if d.replaced != nil {
		return b.replacedStage(d, platform)
	}
	st := &stage{def: d, platform: platform, config: emptyConfig(platform)}
	if d.base == "scratch" {
		st.fs = layerfs.New()
		st.config.Config.WorkingDir = "/"
		st.config.Config.Env = []string{defaultPath}
		return st, nil
	}
	if later, ok := b.stagesByName[d.base]; ok && later.index > d.index {
		return nil, fmt.Errorf("%q names the stage defined later, at line %d: FROM can only start from an earlier stage", d.base, later.src.From.Location().Line)
	}
	base, err := b.loadImage(d.base, platform)
	if err != nil {
		return nil, err
	}
	if base.config != nil {
		// An image keeps its own config; its platform must be the one asked for, since
		// dfbuild cannot pick another variant of it.
		got := Platform{OS: base.config.OS, Arch: base.config.Architecture, Variant: base.config.Variant}
		if got.OS != "" && got.Arch != "" && (got.OS != platform.OS || got.Arch != platform.Arch) {
			return nil, fmt.Errorf("base image %q is for %s, but this stage builds for %s", d.base, got, platform)
		}
		st.config = cloneConfig(*base.config)
		st.config.Created = nil
	} else if base.empty {
		// A base with files but no config (a directory context, docker-image://scratch)
		// gets BuildKit's emptyImage config when FROM names it: WorkingDir "/" and the
		// PATH (resolveBaseImage in dockerfile2llb's convert.go).
		st.config.Config.WorkingDir = "/"
	}
	st.start(base)
	if _, ok := envList(st.config.Config.Env).get("PATH"); !ok {
		st.config.Config.Env = append(st.config.Config.Env, defaultPath)
	}
	return st, nil
}

// stagePlatform is the platform a stage builds for: its FROM --platform, expanded
// with the global scope like the base name, or the target platform.
func (b *builder) stagePlatform(d *stageDef) (Platform, error) {
	in := d.src.From
	if in.Platform == "" {
		return b.platform, nil
	}
	s, err := b.ex.Word(in.Platform, b.global)
	if err != nil {
		return Platform{}, fmt.Errorf("expanding --platform %q: %w", in.Platform, err)
	}
	if s == "" {
		return Platform{}, fmt.Errorf("empty platform value from expression %s", in.Platform)
	}
	p, err := ParsePlatform(s)
	if err != nil {
		return Platform{}, fmt.Errorf("--platform: %w", err)
	}
	return p, nil
}

// start gives a new stage the tree, layers and history of its base.
func (st *stage) start(base *baseImage) {
	st.fs = base.fs.Clone()
	for _, l := range base.layers {
		st.layers = append(st.layers, stageLayer{base: l, step: -1})
	}
	for _, h := range base.history {
		st.history = append(st.history, historyEntry{History: h})
	}
	if base.changes != nil {
		st.layers = append(st.layers, stageLayer{changes: base.changes, step: -1})
		st.history = append(st.history, historyEntry{History: image.History{Comment: base.comment}, new: true})
	}
}

// replacedStage is a stage a --build-context of its name replaces, as BuildKit
// replaces it (buildDispatchStates in dockerfile2llb's convert.go): none of its
// instructions run, its own base is never read, and it is the context as it is.
// An image keeps its config and platform; anything else has an empty config (no
// WorkingDir, no Env: a child stage adds the PATH), where dfbuild sets the os and
// architecture of the stage's platform so that the stage can also be the target.
func (b *builder) replacedStage(d *stageDef, platform Platform) (*stage, error) {
	base, err := b.loadContext(d.replaced, platform)
	if err != nil {
		return nil, err
	}
	st := &stage{def: d, platform: platform, config: emptyConfig(platform)}
	if base.config != nil {
		st.config = cloneConfig(*base.config)
		st.config.Created = nil
		if base.config.OS != "" && base.config.Architecture != "" {
			st.platform = Platform{OS: base.config.OS, Arch: base.config.Architecture, Variant: base.config.Variant}
		}
	}
	st.start(base)
	return st, nil
}

// child starts a stage FROM this one: its tree (a copy, so this stage stays as it
// ended for COPY --from), layers, history, config and ARGs carry over; ONBUILD
// triggers fire in the child and are not inherited.
func (st *stage) child(d *stageDef) *stage {
	c := &stage{
		def:      d,
		platform: st.platform,
		fs:       st.fs.Clone(),
		config:   cloneConfig(st.config),
		layers:   slices.Clone(st.layers),
		history:  slices.Clone(st.history),
		args:     slices.Clone(st.args),
	}
	// A stage replaced by a directory has no PATH; BuildKit sets it in every stage it
	// dispatches ("make sure that PATH is always set", dispatchStages).
	if _, ok := envList(c.config.Config.Env).get("PATH"); !ok {
		c.config.Config.Env = append(c.config.Config.Env, defaultPath)
	}
	return c
}

// baseImage is a FROM base loaded once: a root filesystem tarball (as `docker
// import` makes an image of it), an image, or a directory context.
type baseImage struct {
	fs      *layerfs.FS
	layers  []*layerfs.Layer
	config  *image.ConfigFile // nil for a root filesystem tarball or a directory
	history []image.History
	// changes are the files of a directory context, made a layer (with comment as its
	// history) when the image is finished.
	changes *layerfs.Changes
	comment string
	// empty marks a base with no config of its own that FROM gives BuildKit's
	// emptyImage config: a directory, docker-image://scratch.
	empty bool
	// manifest is the digest of the image manifest, when the image came from one
	// (oci-layout://, the registry): a digest-pinned FROM is checked against it.
	manifest layerfs.Digest
}

// loadImage reads the base that a name stands for, once per build: each stage that
// uses it works on its own copy of the tree. A --build-context of the name wins, then
// a file of that name in the build context, then the registry (Options.Images).
func (b *builder) loadImage(name string, platform Platform) (*baseImage, error) {
	if nc := b.lookupContext(name); nc != nil {
		base, err := b.loadContext(nc, platform)
		if err != nil {
			return nil, err
		}
		b.checkPin(name, base, nc.flag())
		return base, nil
	}
	// One name may serve several platforms (an OCI index): each is loaded once.
	key := name + "@" + platform.String()
	if base, ok := b.bases[key]; ok {
		return base, nil
	}
	file, label, err := b.contextFile(name)
	if err != nil {
		return nil, err
	}
	var base *baseImage
	switch {
	case file != "":
		base, err = b.loadFile(name, file, label, platform)
	case b.opts.Images != nil:
		base, err = b.pull(name, platform)
		if err == nil {
			b.checkPin(name, base, "the registry")
		}
	default:
		key, kerr := ContextKey(name)
		if kerr != nil {
			key = name
		}
		err = fmt.Errorf("base image %q is not available: no registry access is configured, so dfbuild does not pull it; "+
			"serve it with --build-context %s=VALUE (%s), or name a tarball in the build context", name, key, ContextForms)
	}
	if err != nil {
		return nil, err
	}
	b.bases[key] = base
	return base, nil
}

// checkPin warns, once per name, when a name pinned to a digest is served by an
// image whose manifest has another digest: the build does not use what the
// Dockerfile pinned.
func (b *builder) checkPin(name string, base *baseImage, by string) {
	pin := pinnedDigest(name)
	if pin == "" || base.manifest == "" || base.manifest == pin || b.pinWarned[name] {
		return
	}
	b.pinWarned[name] = true
	b.res.Warnings = append(b.res.Warnings, fmt.Sprintf("%q is pinned to %s, but %s serves an image whose manifest digest is %s",
		name, pin, by, base.manifest))
}

// loadFile reads a base from a file or image directory: an image archive or layout,
// or a root filesystem tarball.
func (b *builder) loadFile(name, file, label string, platform Platform) (*baseImage, error) {
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("reading the base %s: %w", label, err)
	}
	if !fi.IsDir() && !fi.Mode().IsRegular() {
		// Reading a FIFO would wait for a writer forever (issue 11, fault 6).
		return nil, fmt.Errorf("reading the base %s: it is a %s, not a regular file or directory", label, fileKind(fi.Mode()))
	}
	b.noteTime(fi.ModTime())
	isImage, err := baseimage.IsImage(file)
	if err != nil {
		return nil, fmt.Errorf("reading the base %s: %w", label, err)
	}
	if isImage {
		return b.loadArchive(name, file, label, platform)
	}
	if fi.IsDir() {
		return nil, fmt.Errorf("the base %s is a directory but not an OCI layout or unpacked image", label)
	}
	return b.loadRootfs(file, label)
}

// loadRootfs reads a root filesystem tarball as the base `docker import` makes of
// it: one layer, no config of its own and one history entry, stamped with the
// build time.
func (b *builder) loadRootfs(file, label string) (*baseImage, error) {
	root, err := layerfs.LoadRootfs(file, b.tmp)
	if err != nil {
		return nil, fmt.Errorf("reading the base tarball %s: %w", label, err)
	}
	return &baseImage{
		fs:      root.FS,
		layers:  []*layerfs.Layer{root.Layer},
		history: []image.History{{Comment: "Imported from " + filepath.Base(file)}},
	}, nil
}

// loadArchive reads an image from an image archive or OCI layout: the image the
// FROM name tags in it, or the only image it holds. Of a multi-platform image, the
// stage's platform is taken.
func (b *builder) loadArchive(name, file, label string, platform Platform) (*baseImage, error) {
	keep := func(cf *image.ConfigFile) bool {
		return cf.OS == platform.OS && cf.Architecture == platform.Arch &&
			(cf.Variant == "" || platform.Variant == "" || cf.Variant == platform.Variant)
	}
	img, err := baseimage.LoadMatching(file, name, b.tmp, keep)
	if err != nil {
		// A name mapped by --build-context need not be a tag in the archive: an
		// archive of one image serves whatever name maps to it.
		if one, err2 := baseimage.LoadMatching(file, "", b.tmp, keep); err2 == nil {
			img, err = one, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("reading the base image %s: %w", label, err)
	}
	return b.fromBase(img, ""), nil
}

// contextFile finds a file in the build context named like a FROM name: "" when
// there is none.
func (b *builder) contextFile(name string) (file, label string, err error) {
	if b.opts.ContextDir == "" {
		return "", "", nil
	}
	rel, err := b.source.resolve(name, true)
	if err == nil {
		if fi, err := b.source.lstat(rel); err == nil && fi.Mode().IsRegular() {
			return filepath.Join(b.opts.ContextDir, filepath.FromSlash(rel)), fmt.Sprintf("%q", name), nil
		}
	}
	if why := b.source.excluded(name); why != "" {
		return "", "", fmt.Errorf("base image %q is not available: the file of that name in the build context is left out: %s", name, why)
	}
	return "", "", nil
}

// emptyConfig is the config of an empty image for a platform (BuildKit's
// emptyImage); FROM scratch adds the WorkingDir "/" and the PATH.
func emptyConfig(p Platform) image.ConfigFile {
	return image.ConfigFile{Architecture: p.Arch, OS: p.OS, Variant: p.Variant}
}

// cloneConfig copies a config deeply enough that a stage changing its slices and
// maps leaves the stage or image it came from alone.
func cloneConfig(cf image.ConfigFile) image.ConfigFile {
	c := cf
	c.Config.Env = slices.Clone(cf.Config.Env)
	c.Config.Entrypoint = slices.Clone(cf.Config.Entrypoint)
	c.Config.Cmd = slices.Clone(cf.Config.Cmd)
	c.Config.Shell = slices.Clone(cf.Config.Shell)
	c.Config.OnBuild = slices.Clone(cf.Config.OnBuild)
	c.Config.ExposedPorts = cloneMap(cf.Config.ExposedPorts)
	c.Config.Volumes = cloneMap(cf.Config.Volumes)
	c.Config.Labels = cloneMap(cf.Config.Labels)
	if cf.Config.Healthcheck != nil {
		h := *cf.Config.Healthcheck
		h.Test = slices.Clone(h.Test)
		c.Config.Healthcheck = &h
	}
	c.History = slices.Clone(cf.History)
	return c
}

func cloneMap[M ~map[K]V, K comparable, V any](m M) M {
	if m == nil {
		return nil
	}
	out := make(M, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
