package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/registry"
	"github.com/dfbuild/dfbuild/parser"
)

type buildOptions struct {
	contextDir    string
	file          string
	tags          []string
	output        string
	buildContexts []string
	buildArgs     []string
	labels        []string
	target        string
	platform      string
	append        bool
	progress      string
	iidFile       string
	metadataFile  string
	out           outputOptions // --load, -q and the no-op flags: output.go
	reg           registryOptions
	limits        limitOptions // --add-max-size, --add-timeout: limits.go
}

// plan is what the flags say, checked before any work starts.
type plan struct {
	tags       []image.Tag
	typ        string // outputDocker or outputDir
	dest       string
	contexts   map[string]string
	buildArgs  map[string]string
	labels     map[string]string
	platform   *interp.Platform  // the first of platforms
	platforms  []interp.Platform // --platform's list; several make an image index
	epoch      *time.Time
	dockerfile string             // the name errors use, known once build has read it
	images     interp.ImageSource // registries, through the cache: registry.go
	registry   *registry.Client   // the client behind images, which also pushes
	push       *pushSpec          // --push or -o type=registry|image: push.go
	fileNamed  bool               // -o names an archive, a directory or standard output
}

// buildContextHelp is the --build-context help of build and explain.
var buildContextHelp = "NAME=VALUE, as docker buildx --build-context: serve FROM NAME and COPY --from=NAME, or replace the stage NAME, with VALUE: " +
	interp.ContextForms + " (repeatable)"

// newPlan checks the flags: tags, output, build contexts, SOURCE_DATE_EPOCH and the
// context directory. Its errors are usage errors.
func newPlan(o buildOptions) (*plan, error) {
	p := &plan{contexts: map[string]string{}}
	seen := map[string]bool{}
	for _, s := range o.tags {
		t, err := image.ParseTag(s)
		if err != nil {
			return nil, usageError{err}
		}
		// "-t app -t app:latest" names one tag; the archive lists it once.
		if !seen[t.Full] {
			seen[t.Full] = true
			p.tags = append(p.tags, t)
		}
	}
	var err error
	ps, isPush, err := parseRegistryOutput(o.output)
	if err != nil {
		return nil, err
	}
	switch {
	case isPush:
		// The image goes to the registry only; -o named no file.
		p.push, o.output = ps, ""
		p.typ = outputDocker
	case o.reg.push:
		p.push = &pushSpec{opts: registry.PushOptions{Level: -1, OCIMediaTypes: true}}
	}
	if p.push != nil && len(p.push.names) == 0 && len(p.tags) == 0 {
		return nil, usagef("pushing needs a name: give -t NAME, or name= in -o type=registry")
	}
	p.fileNamed = o.output != ""
	if !isPush {
		if p.typ, p.dest, err = outputPath(o.output, p.tags); err != nil {
			return nil, err
		}
	}
	for _, bc := range o.buildContexts {
		// As buildx: the name is a valid image reference, the value one of its forms.
		name, value, ok := strings.Cut(bc, "=")
		if !ok || name == "" || value == "" {
			return nil, usagef("--build-context %q: expected NAME=VALUE, where VALUE is %s", bc, interp.ContextForms)
		}
		if _, err := interp.ContextKey(name); err != nil {
			return nil, usagef("--build-context %q: %w", bc, err)
		}
		if _, err := interp.ParseBuildContext(value); err != nil {
			return nil, usagef("--build-context %s: %w", name, err)
		}
		p.contexts[name] = value
	}
	if p.epoch, err = sourceDateEpoch(os.LookupEnv("SOURCE_DATE_EPOCH")); err != nil {
		return nil, usageError{err}
	}
	p.buildArgs = map[string]string{}
	for _, a := range o.buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if k == "" {
			return nil, usagef("--build-arg %q: expected KEY=VALUE or KEY", a)
		}
		if !ok {
			// As docker buildx: KEY alone takes the value from the environment, and is
			// left out when the environment does not have it.
			if v, ok = os.LookupEnv(k); !ok {
				continue
			}
		}
		p.buildArgs[k] = v
	}
	// BuildKit takes SOURCE_DATE_EPOCH as a build argument too; it wins over the
	// environment.
	if v, ok := p.buildArgs["SOURCE_DATE_EPOCH"]; ok {
		if p.epoch, err = sourceDateEpoch(v, true); err != nil {
			return nil, usagef("--build-arg %w", err)
		}
	}
	p.labels = map[string]string{}
	for _, l := range o.labels {
		k, v, _ := strings.Cut(l, "=")
		if k == "" {
			return nil, usagef("--label %q: expected KEY=VALUE", l)
		}
		p.labels[k] = v
	}
	if o.platform != "" {
		// As buildx: a comma-separated list, each platform built (platforms.go).
		pl, err := interp.ParsePlatforms(o.platform)
		if err != nil {
			return nil, usagef("--platform: %w", err)
		}
		p.platform, p.platforms = &pl[0], pl
	}
	if fi, err := os.Stat(o.contextDir); err != nil || !fi.IsDir() {
		return nil, usagef("build context %q is not a directory", o.contextDir)
	}
	return p, nil
}

// build parses the Dockerfile and runs it; the output itself is left to the caller.
// The result must be closed.
func (p *plan) build(ctx context.Context, stdin io.Reader, o buildOptions, progress func(interp.Step)) (*interp.Result, error) {
	f, opts, err := p.prepare(stdin, o, progress)
	if err != nil {
		return nil, err
	}
	return interp.Build(ctx, f, opts)
}

// prepare reads and parses the Dockerfile and its ignore file, and returns them with
// the build's options.
func (p *plan) prepare(stdin io.Reader, o buildOptions, progress func(interp.Step)) (*parser.File, interp.Options, error) {
	df, name, mtime, err := readDockerfile(stdin, o)
	if err != nil {
		return nil, interp.Options{}, err
	}
	p.dockerfile = name
	f, err := parser.Parse(bytes.NewReader(df), name)
	if err != nil {
		return nil, interp.Options{}, err
	}
	// A Dockerfile from standard input has no file of its own to sit next to.
	dockerfile := name
	if o.file == "-" {
		dockerfile = ""
	}
	ignore, err := interp.ReadIgnoreFile(o.contextDir, dockerfile)
	if err != nil {
		return nil, interp.Options{}, err
	}
	return f, interp.Options{
		ContextDir:        o.contextDir,
		Ignore:            ignore,
		Hide:              insideContext(o.contextDir, p.dest),
		BuildContexts:     p.contexts,
		SourceDateEpoch:   p.epoch,
		DockerfileModTime: mtime,
		BuildArgs:         p.buildArgs,
		Target:            o.target,
		Labels:            p.labels,
		Platform:          p.platform,
		Progress:          progress,
		Images:            p.images,
		AddMaxSize:        int64(o.limits.addMaxSize),
		AddTimeout:        o.limits.addTimeout,
	}, nil
}

func runBuild(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, o buildOptions) error {
	p, err := newPlan(o)
	if err != nil {
		return err
	}
	if err := checkPlatformOutputs(o, p); err != nil {
		return err
	}
	sinks, err := checkOutputs(o, p)
	if err != nil {
		return err
	}
	if sinks.file && p.typ == outputDir {
		// Refuse a directory that is not dfbuild's before building, not after.
		if err := dockerarchive.CheckDirDest(p.dest); err != nil {
			return fmt.Errorf("writing %s: %w", p.dest, err)
		}
	}
	if err := checkFileDest(sinks, p); err != nil {
		return err
	}
	mode := o.progress
	if o.out.quiet {
		mode = "quiet"
	}
	prog, err := newProgress(stderr, mode)
	if err != nil {
		return err
	}
	for _, n := range noopNotes(o.out.noops) {
		prog.notice(n)
	}
	if err := p.useRegistries(o.reg, prog); err != nil {
		return err
	}
	if o.out.load {
		if sinks.engine, err = connectEngine(ctx); err != nil {
			return err
		}
	}
	if len(p.platforms) > 1 {
		return buildIndex(ctx, stdin, stdout, stderr, o, p, sinks, prog)
	}
	res, err := p.build(ctx, stdin, o, prog.step)
	if err != nil {
		return err
	}
	defer res.Close()
	for _, w := range res.Warnings {
		prog.warn(w)
	}
	return export(ctx, stdout, stderr, o, p, sinks, prog, res)
}

// The kinds of output, as -o type= names them.
const (
	outputDocker = "docker" // one archive file (also a valid type=oci tarball)
	outputDir    = "dir"    // the image unpacked in a directory: dockerarchive.WriteDir
)

// outputPath decides what is written where: -o PATH or -o type=docker,dest=PATH
// (buildx's form) for an archive, -o type=dir,dest=DIR for the unpacked image; by
// default an archive named after the first tag's last path element plus ".tar".
func outputPath(spec string, tags []image.Tag) (typ, dest string, err error) {
	if spec == "" {
		if len(tags) == 0 {
			return outputDocker, "image.tar", nil
		}
		return outputDocker, path.Base(tags[0].Name) + ".tar", nil
	}
	if !strings.Contains(spec, "=") {
		// "-o -" is standard output, as in buildx.
		return outputDocker, spec, nil
	}
	for _, kv := range strings.Split(spec, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch strings.TrimSpace(k) {
		case "type":
			typ = v
		case "dest":
			dest = v
		default:
			return "", "", usagef("--output %q: unknown key %q (expected type and dest)", spec, k)
		}
	}
	// The archive is both buildx's type=docker and type=oci tarball. type=tar (a plain
	// filesystem export) and type=local or type=image are other things, not written yet.
	switch typ {
	case "", "docker", "oci":
		typ = outputDocker
	case outputDir:
		if dest == "" {
			return "", "", usagef("--output %q: dest=DIR is required", spec)
		}
	default:
		return "", "", usagef("--output %q: type %q is not supported; dfbuild writes type=docker (also a valid type=oci tarball) or type=dir", spec, typ)
	}
	if dest == "" {
		return "", "", usagef("--output %q: dest=PATH is required", spec)
	}
	return typ, dest, nil
}

// insideContext returns dest relative to the context when the archive is written
// inside it, so the build can leave its own output out of COPY.
func insideContext(contextDir, dest string) []string {
	if dest == "" || dest == stdoutDest {
		return nil // nothing is written to a file
	}
	c, err1 := filepath.Abs(contextDir)
	d, err2 := filepath.Abs(dest)
	if err1 != nil || err2 != nil {
		return nil
	}
	if c2, err := filepath.EvalSymlinks(c); err == nil {
		c = c2
	}
	if d2, err := filepath.EvalSymlinks(filepath.Dir(d)); err == nil {
		d = filepath.Join(d2, filepath.Base(d))
	}
	rel, err := filepath.Rel(c, d)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil
	}
	return []string{filepath.ToSlash(rel)}
}

// readDockerfile returns the Dockerfile's bytes, the name errors use, and its mtime.
func readDockerfile(stdin io.Reader, o buildOptions) ([]byte, string, time.Time, error) {
	if o.file == "-" {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, "", time.Time{}, fmt.Errorf("reading the Dockerfile from standard input: %w", err)
		}
		return b, "Dockerfile", time.Time{}, nil
	}
	p := o.file
	if p == "" {
		// As the docker CLI (getDockerfileRelPath) and buildx: Dockerfile, else the
		// lower-case dockerfile (moby/moby#10858).
		p = filepath.Join(o.contextDir, "Dockerfile")
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			if _, err := os.Lstat(filepath.Join(o.contextDir, "dockerfile")); err == nil {
				p = filepath.Join(o.contextDir, "dockerfile")
			}
		}
	}
	b, err := os.ReadFile(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, "", time.Time{}, usagef("no Dockerfile at %s (name another with -f)", p)
		}
		return nil, "", time.Time{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return nil, "", time.Time{}, err
	}
	return b, p, fi.ModTime(), nil
}

// sourceDateEpoch reads a SOURCE_DATE_EPOCH value; an empty or absent one means
// none.
func sourceDateEpoch(s string, ok bool) (*time.Time, error) {
	if !ok || s == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return nil, fmt.Errorf("SOURCE_DATE_EPOCH=%q: expected a non-negative number of seconds", s)
	}
	t := time.Unix(n, 0).UTC()
	return &t, nil
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
