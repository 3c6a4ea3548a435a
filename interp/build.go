package interp

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/parser"
)

// Options are the inputs of a build besides the Dockerfile.
type Options struct {
	// ContextDir is the build context directory. Sources of COPY and FROM tarballs are
	// looked up inside it.
	ContextDir string
	// Context, if set, is used instead of os.DirFS(ContextDir) to read the context.
	// It must implement fs.ReadLinkFS so symlinks can be resolved inside it.
	Context fs.FS
	// BuildContexts maps a name used in FROM (such as "alpine:3.18") to a local path
	// that serves it: a root filesystem tarball. Like docker buildx --build-context.
	BuildContexts map[string]string
	// SourceDateEpoch, when set, is the time of the build: image and history times,
	// and the latest mtime any file in a new layer may have.
	SourceDateEpoch *time.Time
	// DockerfileModTime is the Dockerfile's mtime (zero when read from stdin); it
	// counts among the inputs that decide the build time.
	DockerfileModTime time.Time
	// Hide lists paths, relative to the context, that the build must not see: the
	// archive being written, when it lies inside the context, so a rebuild does not
	// copy the previous image into the new one. A path also hides the temporary
	// files named after it (".NAME.tmp-*").
	Hide []string
	// Ignore is the build's .dockerignore, as ReadIgnoreFile finds it. What it
	// excludes is not in the context for this build: not for COPY sources, wildcards
	// and directory walks, not for symlinks followed inside the context, not as FROM
	// tarballs. nil excludes nothing.
	Ignore *IgnoreFile
	// TempDir holds scratch files (decompressed base tarballs) during the build;
	// empty means the system's temporary directory.
	TempDir string
	// Progress, if set, is told about each step as it finishes.
	Progress func(Step)
}

// Step describes one instruction after it ran.
type Step struct {
	Index       int    // 1-based within the stage
	Total       int    // instructions in the stage, FROM included
	Instruction string // the source text
	Line        int
	Layer       *LayerInfo // nil for config-only instructions
	Config      []string   // config fields the instruction set, for config-only steps
	Duration    time.Duration
}

// LayerInfo summarises a layer a step produced.
type LayerInfo struct {
	Entries int   // tar entries, parents included
	Files   int   // regular files, symlinks and other non-directories
	Bytes   int64 // bytes of file contents
	Base    bool  // the layer is a base image's, not a new one
}

// Result is a built image and what the build noticed on the way.
type Result struct {
	Image    *image.Image
	Steps    []Step
	Warnings []string
	// cleanup removes scratch files; the image's base layers may read them, so it
	// must run only after the image was written.
	cleanup func() error
}

// Close releases the scratch files the image's layers may still read.
func (r *Result) Close() error {
	if r == nil || r.cleanup == nil {
		return nil
	}
	return r.cleanup()
}

// Build runs the Dockerfile's last stage and returns the image. The result must be
// closed once the image has been written.
func Build(ctx context.Context, f *parser.File, opts Options) (res *Result, err error) {
	if opts.Context == nil {
		if opts.ContextDir == "" {
			opts.ContextDir = "."
		}
		opts.Context = os.DirFS(opts.ContextDir)
	}
	rl, ok := opts.Context.(fs.ReadLinkFS)
	if !ok {
		return nil, fmt.Errorf("the build context must support symlinks (fs.ReadLinkFS)")
	}
	source, err := newContextSource(rl, opts.Hide, opts.Ignore)
	if err != nil {
		return nil, fmt.Errorf("checking the ignore file: %w", err)
	}
	tmp, err := os.MkdirTemp(opts.TempDir, "dfbuild-")
	if err != nil {
		return nil, fmt.Errorf("creating a scratch directory: %w", err)
	}
	res = &Result{cleanup: func() error { return os.RemoveAll(tmp) }}
	// The error returns below say "return nil, err", which clears res before this
	// runs, so the cleanup is held on to separately.
	cleanup := res
	defer func() {
		if err != nil {
			cleanup.Close()
		}
	}()
	b := &builder{
		ctx:    ctx,
		file:   f,
		opts:   opts,
		tmp:    tmp,
		ex:     parser.NewExpander(f.Escape),
		source: source,
		res:    res,
	}
	b.noteTime(opts.DockerfileModTime)
	res.Warnings = append(res.Warnings, f.Warnings...)
	if len(f.MetaArgs) > 0 {
		a := f.MetaArgs[0]
		return nil, parser.At(a, fmt.Errorf("%s is not supported yet", a.Keyword()))
	}
	// Like BuildKit, only the stages the target needs are built; until COPY --from and
	// FROM <stage> are supported, that is the last stage alone.
	st, err := b.runStage(f.Stages[len(f.Stages)-1])
	if err != nil {
		return nil, err
	}
	img, err := b.finish(st)
	if err != nil {
		return nil, err
	}
	res.Image = img
	return res, nil
}

type builder struct {
	ctx    context.Context
	file   *parser.File
	opts   Options
	tmp    string
	ex     *parser.Expander
	source contextSource
	res    *Result
	newest time.Time // the newest mtime among the inputs read so far
}

func (b *builder) noteTime(t time.Time) {
	if t.After(b.newest) {
		b.newest = t
	}
}

// buildTime is SOURCE_DATE_EPOCH when given, otherwise the newest input mtime: the
// build is then as old as its newest input, and the same inputs give the same image.
func (b *builder) buildTime() time.Time {
	if b.opts.SourceDateEpoch != nil {
		return b.opts.SourceDateEpoch.UTC()
	}
	if b.newest.IsZero() {
		return time.Unix(0, 0).UTC()
	}
	return b.newest.Truncate(time.Second).UTC()
}

// stage is the state of one build stage while it runs.
type stage struct {
	name    string
	fs      *layerfs.FS
	config  image.ConfigFile
	layers  []stageLayer
	cmdSet  bool // a CMD ran in this stage, so ENTRYPOINT keeps it
	history []historyEntry
}

// stageLayer is a base layer, already complete, or the changes of one instruction,
// turned into a layer once the build time is known.
type stageLayer struct {
	base    *layerfs.Layer
	changes *layerfs.Changes
}

// historyEntry is a history record; new ones get the build time when the image is
// finished.
type historyEntry struct {
	image.History
	new bool
}

func (b *builder) runStage(s *parser.Stage) (*stage, error) {
	total := len(s.Instructions) + 1
	start := time.Now()
	st, err := b.from(s.From)
	if err != nil {
		return nil, parser.At(s.From, err)
	}
	b.report(Step{Index: 1, Total: total, Instruction: s.From.Source(), Line: s.From.Location().Line,
		Layer: st.baseInfo(), Duration: time.Since(start)})
	for i, in := range s.Instructions {
		if err := b.ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		step := Step{Index: i + 2, Total: total, Instruction: in.Source(), Line: in.Location().Line}
		if err := b.dispatch(st, in, &step); err != nil {
			return nil, parser.At(in, err)
		}
		step.Duration = time.Since(start)
		b.report(step)
	}
	return st, nil
}

func (b *builder) report(s Step) {
	b.res.Steps = append(b.res.Steps, s)
	if b.opts.Progress != nil {
		b.opts.Progress(s)
	}
}

// dispatch runs one instruction: one function per instruction.
func (b *builder) dispatch(st *stage, in parser.Instruction, step *Step) error {
	switch in := in.(type) {
	case *parser.Copy:
		var info *LayerInfo
		var err error
		if in.Add {
			info, err = b.dispatchAdd(st, in)
		} else {
			info, err = b.dispatchCopy(st, in)
		}
		step.Layer = info
		return err
	case *parser.Command:
		step.Config = []string{map[string]string{"CMD": "Cmd", "ENTRYPOINT": "Entrypoint"}[in.Keyword()]}
		if in.Keyword() == "CMD" {
			return b.dispatchCmd(st, in)
		}
		return b.dispatchEntrypoint(st, in)
	case *parser.Arg:
		return b.dispatchArg(st, in)
	case *parser.Run:
		return errRun
	}
	// ENV, LABEL, USER, WORKDIR, EXPOSE, VOLUME, STOPSIGNAL, SHELL, HEALTHCHECK,
	// ONBUILD and MAINTAINER: config.go.
	return b.dispatchConfig(st, in, step)
}

var errRun = fmt.Errorf("RUN executes commands in a container, and dfbuild never runs containers: " +
	"build the files beforehand and COPY them in, or start FROM a base tarball that already has them")

// commit records an instruction's filesystem changes as a new layer. createdBy is
// the history text in full: BuildKit ends it with " # buildkit" for COPY and ADD,
// not for WORKDIR.
func (st *stage) commit(createdBy string) *LayerInfo {
	ch := st.fs.Commit()
	st.layers = append(st.layers, stageLayer{changes: ch})
	st.history = append(st.history, historyEntry{History: image.History{CreatedBy: createdBy, Comment: historyComment}, new: true})
	info := &LayerInfo{Entries: len(ch.Entries)}
	for _, e := range ch.Entries {
		if e.Node.Type != layerfs.TypeDir {
			info.Files++
		}
		info.Bytes += e.Node.Size
	}
	return info
}

// env is the environment that expands the words of the next instruction: the
// config's Env.
func (st *stage) env() []string {
	return st.config.Config.Env
}

// configOnly records an instruction that changed only the config.
func (st *stage) configOnly(createdBy string) {
	st.history = append(st.history, historyEntry{History: image.History{CreatedBy: createdBy, Comment: historyComment, EmptyLayer: true}, new: true})
}

// historyComment is what BuildKit's Dockerfile frontend writes on every entry.
const historyComment = "buildkit.dockerfile.v0"

func (st *stage) baseInfo() *LayerInfo {
	if len(st.layers) == 0 {
		return nil
	}
	var n int64
	for _, l := range st.layers {
		n += l.base.Size()
	}
	return &LayerInfo{Bytes: n, Base: true}
}

// finish turns the stage into an image: the new layers get their final times, and so
// do the history and the image itself.
func (b *builder) finish(st *stage) (*image.Image, error) {
	when := b.buildTime()
	topts := layerfs.TarOptions{BuildTime: when, Clamp: b.opts.SourceDateEpoch}
	img := &image.Image{Config: st.config}
	for i, l := range st.layers {
		if l.base != nil {
			img.Layers = append(img.Layers, l.base)
			continue
		}
		layer, err := l.changes.Layer(topts)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		img.Layers = append(img.Layers, layer)
	}
	img.Config.History = nil
	for _, h := range st.history {
		e := h.History
		if h.new || e.Created == nil {
			t := when
			e.Created = &t
		}
		img.Config.History = append(img.Config.History, e)
	}
	img.Config.Created = &when
	return img, nil
}

// platformConfig is the config of an empty image for the host platform, with the
// defaults BuildKit gives a stage (a PATH, WorkingDir "/" for scratch).
func platformConfig() image.ConfigFile {
	cf := image.ConfigFile{Architecture: runtime.GOARCH, OS: "linux"}
	if runtime.GOARCH == "arm" {
		cf.Variant = "v7"
	}
	cf.Config.Env = []string{defaultPath}
	return cf
}

// defaultPath is the PATH every Linux image built by Docker gets when its base has none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
