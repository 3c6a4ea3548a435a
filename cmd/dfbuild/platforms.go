package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/registry"
)

// platformImage is one platform's image of a build.
type platformImage struct {
	Platform interp.Platform
	Image    *image.Image
	Result   *interp.Result // the steps that made it
}

// buildResult is what a build made: one image, or one a platform when --platform
// lists several (then Multi is set, and the output is an image index). Close it once
// the images are written.
type buildResult struct {
	Platforms []platformImage
	Multi     bool
	Warnings  []string
	close     func() error
}

// Close releases the build's scratch files.
func (r *buildResult) Close() error { return r.close() }

// pushImages is what registry.Client.Push takes for this result: one image, whose
// config names its platform, or one a platform, each named in the index by the
// platform asked for, as BuildKit names them (the requested platform, not the
// config's).
func (r *buildResult) pushImages() []registry.PushImage {
	var out []registry.PushImage
	for _, pi := range r.Platforms {
		img := registry.PushImage{Image: pi.Image}
		if r.Multi {
			img.Platform = &v1.Platform{OS: pi.Platform.OS, Architecture: pi.Platform.Arch, Variant: pi.Platform.Variant}
		}
		out = append(out, img)
	}
	return out
}

// archiveImages is the result as dockerarchive's index writer takes it.
func (r *buildResult) archiveImages() []dockerarchive.PlatformImage {
	var out []dockerarchive.PlatformImage
	for _, pi := range r.Platforms {
		out = append(out, dockerarchive.PlatformImage{Image: pi.Image,
			Platform: dockerarchive.Platform{OS: pi.Platform.OS, Architecture: pi.Platform.Arch, Variant: pi.Platform.Variant}})
	}
	return out
}

// buildAll runs the build for every platform --platform lists (once, for one
// platform or none, as build does).
func (p *plan) buildAll(ctx context.Context, stdin io.Reader, o buildOptions, progress func(interp.Step)) (*buildResult, error) {
	if len(p.platforms) <= 1 {
		res, err := p.build(ctx, stdin, o, progress)
		if err != nil {
			return nil, err
		}
		pl := interp.HostPlatform()
		if p.platform != nil {
			pl = *p.platform
		}
		return &buildResult{Platforms: []platformImage{{pl, res.Image, res}}, Warnings: res.Warnings, close: res.Close}, nil
	}
	f, opts, err := p.prepare(stdin, o, progress)
	if err != nil {
		return nil, err
	}
	mr, err := interp.BuildPlatforms(ctx, f, opts, p.platforms)
	if err != nil {
		return nil, err
	}
	r := &buildResult{Multi: true, Warnings: mr.Warnings, close: mr.Close}
	for i, res := range mr.Results {
		r.Platforms = append(r.Platforms, platformImage{mr.Platforms[i], res.Image, res})
	}
	return r, nil
}

// checkPlatformOutputs refuses, before anything is built, the outputs that cannot
// hold several platforms, with the words buildx uses (build/opt.go): a Docker archive
// names one image per tag, and Docker Engine 20.10's image store holds no index.
func checkPlatformOutputs(o buildOptions, p *plan) error {
	if len(p.platforms) < 2 {
		return nil
	}
	list := make([]string, len(p.platforms))
	for i, pl := range p.platforms {
		list[i] = pl.String()
	}
	what := fmt.Sprintf("--platform %s", strings.Join(list, ","))
	if o.out.load {
		return usagef("--load with %s: Multi-platform build is not supported for the docker driver (as buildx says): "+
			"the Docker Engine's classic image store cannot hold an image index; write it with -o type=oci,dest=FILE, "+
			"or --load one platform at a time", what)
	}
	if o.append {
		return usagef("--append with %s: --append adds one image to an archive; write the image index with -o type=oci,dest=FILE", what)
	}
	if p.push != nil && !p.fileNamed {
		return nil // --push alone: the registry holds the index
	}
	typ := outputDocker
	if strings.Contains(o.output, "=") {
		for _, kv := range strings.Split(o.output, ",") {
			if k, v, _ := strings.Cut(kv, "="); strings.TrimSpace(k) == "type" {
				typ = v
			}
		}
	}
	dest := p.dest
	if dest == "" || dest == stdoutDest {
		dest = "FILE"
	}
	switch typ {
	case "oci", "registry", "image":
		// An OCI layout, or a registry: each holds an index (the push names it).
		return nil
	case outputDir:
		return usagef("--output %q with %s: type=dir holds one image and cannot name several platforms; "+
			"write the image index with -o type=oci,dest=FILE", o.output, what)
	}
	out := "the default output (a Docker archive)"
	if o.output != "" {
		out = fmt.Sprintf("--output %q", o.output)
	}
	return usagef("%s with %s: docker exporter does not support exporting manifest lists, use the oci exporter instead "+
		"(as buildx says): a Docker archive cannot name several platforms under one tag; write -o type=oci,dest=%s", out, what, dest)
}

// buildIndex builds every platform and writes the image index (-o type=oci).
func buildIndex(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, o buildOptions, p *plan, s sinks, prog *progress) error {
	r, err := p.buildAll(ctx, stdin, o, prog.step)
	if err != nil {
		return err
	}
	defer r.Close()
	for _, w := range r.Warnings {
		prog.warn(w)
	}
	var names []string
	for _, t := range p.tags {
		names = append(names, t.Full)
	}
	label := p.dest
	if s.stdout {
		label = "standard output"
	}
	var written *dockerarchive.IndexResult
	if s.file {
		// Layers are not matched to steps here: several images share them.
		tctx := dockerarchive.WithTrace(ctx, prog.trace(label, -1, nil))
		if s.stdout {
			written, err = dockerarchive.WriteIndexStream(tctx, stdout, r.archiveImages(), p.tags)
		} else {
			written, err = dockerarchive.WriteIndexFile(tctx, p.dest, r.archiveImages(), p.tags)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", label, err)
		}
	}
	var pushed *registry.Pushed
	if p.push != nil {
		prog.note("pushing")
		if pushed, err = p.pushImages(ctx, r.pushImages()); err != nil {
			return err
		}
	}
	index := ""
	switch {
	case pushed != nil:
		// The registry's index names compressed layers: its digest is the one a
		// pull by digest finds, and what buildx reports after a push.
		index = pushed.Digest.String()
	case written != nil:
		index = string(written.Index)
	}
	if written == nil && pushed == nil {
		// Nothing was written: the images are named by their configs.
		for _, pi := range r.Platforms {
			id, err := pi.Image.ID()
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s %s\n", pi.Platform, id)
		}
		return nil
	}
	if err := writeIndexRecords(o, index, names); err != nil {
		return err
	}
	if !s.file {
		label = "the registry"
	}
	prog.finish(layerfs.Digest(index), names, label)
	out := stdout
	if s.stdout {
		out = stderr
	}
	if o.out.quiet {
		fmt.Fprintln(out, index)
		return nil
	}
	fmt.Fprintf(out, "Image index %s\n", index)
	for i, pi := range r.Platforms {
		id, err := pi.Image.ID()
		if err != nil {
			return err
		}
		if written != nil {
			fmt.Fprintf(out, "  %-14s manifest %s, image %s\n", pi.Platform, written.Images[i].Manifest, id)
		} else {
			fmt.Fprintf(out, "  %-14s image %s\n", pi.Platform, id)
		}
	}
	for _, t := range p.tags {
		fmt.Fprintf(out, "Tagged %s\n", t.Familiar)
	}
	if pushed != nil {
		for _, ref := range pushed.Refs {
			fmt.Fprintf(out, "Pushed %s\n", ref)
		}
	}
	if s.file && !s.stdout {
		fmt.Fprintf(out, "Wrote %s (an OCI image layout of %d platforms)\n", p.dest, len(r.Platforms))
	}
	return nil
}

// writeIndexRecords writes --iidfile and --metadata-file for an image index, as buildx
// writes them for a multi-platform build: the index digest is the image's ID and its
// containerimage.digest; there is no single config digest.
func writeIndexRecords(o buildOptions, index string, names []string) error {
	if o.iidFile != "" {
		if err := layerfs.WriteFileAtomic(o.iidFile, []byte(index)); err != nil {
			return fmt.Errorf("writing the image ID to %s: %w", o.iidFile, err)
		}
	}
	if o.metadataFile != "" {
		m := map[string]string{"containerimage.digest": index}
		if len(names) > 0 {
			m["image.name"] = strings.Join(names, ",")
		}
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return fmt.Errorf("encoding the metadata for %s: %w", o.metadataFile, err)
		}
		if err := layerfs.WriteFileAtomic(o.metadataFile, b); err != nil {
			return fmt.Errorf("writing the metadata to %s: %w", o.metadataFile, err)
		}
	}
	return nil
}
