package interp

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/parser"
)

// from starts a stage: FROM scratch, a rootfs tarball named by --build-context, or a
// rootfs tarball in the build context.
func (b *builder) from(in *parser.From) (*stage, error) {
	if in.Platform != "" {
		return nil, errors.New("FROM --platform is not supported yet")
	}
	// Base names are expanded with the global ARGs only; until ARG is supported that
	// environment is empty, but quotes and escapes are still processed as Docker does.
	name, err := b.ex.Word(in.Image, nil)
	if err != nil {
		return nil, fmt.Errorf("expanding the base name %q: %w", in.Image, err)
	}
	if name == "" {
		return nil, fmt.Errorf("base name (%s) should not be blank", in.Image)
	}
	for _, earlier := range b.file.Stages {
		if earlier.From == in {
			break
		}
		if earlier.From.Name != "" && strings.EqualFold(earlier.From.Name, name) {
			return nil, fmt.Errorf("FROM an earlier stage (%q) is not supported yet", name)
		}
	}
	st := &stage{name: in.Name, config: platformConfig()}
	if name == "scratch" {
		st.fs = layerfs.New()
		st.config.Config.WorkingDir = "/"
		return st, nil
	}
	file, label, err := b.baseTarball(name)
	if err != nil {
		return nil, err
	}
	fi, err := os.Stat(file)
	if err != nil {
		return nil, fmt.Errorf("reading the base %q: %w", label, err)
	}
	b.noteTime(fi.ModTime())
	root, err := layerfs.LoadRootfs(file, b.tmp)
	if err != nil {
		return nil, fmt.Errorf("reading the base tarball %s: %w", label, err)
	}
	st.fs = root.FS
	st.layers = []stageLayer{{base: root.Layer}}
	// The base is what `docker import` makes of the tarball: an image with one layer,
	// no config of its own and one history entry; the stage then adds BuildKit's PATH.
	st.history = []historyEntry{{History: image.History{Comment: "Imported from " + filepath.Base(file)}, new: true}}
	return st, nil
}

// baseTarball finds the file that serves a FROM name: a --build-context entry for
// the name (as written or normalised, like buildx matches it), or a file of that name
// in the build context.
func (b *builder) baseTarball(name string) (file, label string, err error) {
	candidates := []string{name}
	if t, err := image.ParseTag(name); err == nil {
		candidates = append(candidates, t.Familiar, t.Full, t.Name, strings.TrimSuffix(t.Familiar, ":latest"))
	}
	for _, c := range candidates {
		if p, ok := b.opts.BuildContexts[c]; ok {
			fi, err := os.Stat(p)
			if err != nil {
				return "", "", fmt.Errorf("build context %q: %w", c, err)
			}
			if fi.IsDir() {
				return "", "", fmt.Errorf("build context %q is a directory; as a base dfbuild takes a root filesystem tarball", c)
			}
			return p, fmt.Sprintf("%q (--build-context %s=%s)", name, c, p), nil
		}
	}
	if b.opts.ContextDir != "" {
		rel, err := b.source.resolve(name, true)
		if err == nil {
			if fi, err := b.source.lstat(rel); err == nil && fi.Mode().IsRegular() {
				return filepath.Join(b.opts.ContextDir, filepath.FromSlash(rel)), fmt.Sprintf("%q", name), nil
			}
		}
	}
	if why := b.source.excluded(name); b.opts.ContextDir != "" && why != "" {
		return "", "", fmt.Errorf("base image %q is not available: the file of that name in the build context is left out: %s", name, why)
	}
	return "", "", fmt.Errorf("base image %q is not available: dfbuild never pulls images; "+
		"serve it from a root filesystem tarball with --build-context %s=PATH, or name a tarball in the build context", name, name)
}
