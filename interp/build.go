package interp

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
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
	// BuildContexts are the --build-context NAME=VALUE pairs, as docker buildx takes
	// them: VALUE is one of ContextForms (see ParseBuildContext). A context serves
	// FROM and COPY --from names and replaces the stage of its name; names match as
	// BuildKit matches them (ContextKey). A context nothing uses draws a warning.
	BuildContexts map[string]string
	// Images serves the image names no context and no file of the build context
	// serves, and docker-image:// contexts; nil means no registry access.
	Images ImageSource
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
	// AddMaxSize bounds each download of ADD <url>: a larger body, or a
	// Content-Length announcing one, fails the build. 0 means DefaultAddMaxSize.
	AddMaxSize int64
	// AddTimeout bounds each download from its request to its last byte; 0 means
	// DefaultAddTimeout. A server that does not answer, or sends less than 16 KiB,
	// in 2 minutes fails it sooner.
	AddTimeout time.Duration
	// BuildArgs are the --build-arg values: each overrides the default of the ARG of
	// its name. Arguments no built stage declares draw a warning.
	BuildArgs map[string]string
	// Target names the stage to build (--target); empty means the last one.
	Target string
	// Labels are merged into the final image's labels (--label), with no history
	// entry, as BuildKit does.
	Labels map[string]string
	// Platform is the platform to build for; nil means the machine's (linux and
	// GOARCH). FROM --platform sets it for one stage.
	Platform *Platform
	// Progress, if set, is told about each step as it finishes.
	Progress func(Step)
}

// Step describes one instruction after it ran.
type Step struct {
	Number      int    // 1-based across the build: steps of every stage built, in order
	Stage       string // the stage's name; stage-N for an unnamed one when there are several
	Index       int    // 1-based within the stage
	Total       int    // instructions in the stage, FROM included
	Instruction string // the source text
	Line        int
	Layer       *LayerInfo // nil for config-only instructions
	Config      []string   // config fields the instruction set, for config-only steps
	Duration    time.Duration
	// Platform is the stage's platform in a build of several (BuildPlatforms), empty
	// otherwise.
	Platform string
	// Shared marks, in a build of several platforms, a step of a stage that builds the
	// same for every platform: it ran once, in an earlier platform's build, and this
	// platform's result reuses it.
	Shared bool
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
	Image *image.Image
	Steps []Step
	// LayerSteps has one entry per image layer: the index in Steps of the step that
	// made it, or of the FROM step that brought it in with a base image.
	LayerSteps []int
	Warnings   []string
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

// Build runs the target stage (Options.Target, or the last one) and the stages it
// needs, and returns the image. The result must be
// closed once the image has been written.
func Build(ctx context.Context, f *parser.File, opts Options) (*Result, error) {
	b, err := newBuilder(ctx, f, opts, nil)
	if err != nil {
		return nil, err
	}
	if err := b.run(); err != nil {
		b.res.Close()
		return nil, err
	}
	if err := b.complete(b.buildTime()); err != nil {
		b.res.Close()
		return nil, err
	}
	return b.res, nil
}

// newBuilder opens the context and the scratch directory of one build, for one
// target platform; multi is the state shared by the builds of BuildPlatforms, nil
// for Build. On success, b.res must be closed.
func newBuilder(ctx context.Context, f *parser.File, opts Options, multi *multiBuild) (b *builder, err error) {
	// xattrs are read by OS path, so only a context on disk has a directory for them.
	osDir := ""
	if opts.Context == nil {
		if opts.ContextDir == "" {
			opts.ContextDir = "."
		}
		// Through an os.Root, nothing outside the directory can be read, even when
		// its entries are swapped for symlinks during the build (issue 11). The
		// root's descriptor is released with it, by the garbage collector.
		if opts.Context, err = openRootFS(opts.ContextDir); err != nil {
			return nil, err
		}
		osDir = opts.ContextDir
	}
	rl, ok := opts.Context.(fs.ReadLinkFS)
	if !ok {
		return nil, fmt.Errorf("the build context must support symlinks (fs.ReadLinkFS)")
	}
	source, err := newContextSource(rl, osDir, opts.Hide, opts.Ignore)
	if err != nil {
		return nil, fmt.Errorf("checking the ignore file: %w", err)
	}
	contexts, err := parseContexts(opts.BuildContexts)
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp(opts.TempDir, "dfbuild-")
	if err != nil {
		return nil, fmt.Errorf("creating a scratch directory: %w", err)
	}
	res := &Result{}
	b = &builder{
		contexts:      contexts,
		pinWarned:     map[string]bool{},
		ctx:           ctx,
		file:          f,
		opts:          opts,
		tmp:           tmp,
		ex:            parser.NewExpander(f.Escape),
		source:        source,
		res:           res,
		buildPlatform: HostPlatform(),
		platform:      HostPlatform(),
		usedArgs:      map[string]bool{},
		bases:         map[string]*baseImage{},
		multi:         multi,
	}
	res.cleanup = func() error {
		// Base images hold files open in tmp: release them first.
		var errs []error
		for _, c := range b.closers {
			errs = append(errs, c())
		}
		errs = append(errs, os.RemoveAll(tmp))
		return errors.Join(errs...)
	}
	if opts.Platform != nil {
		b.platform = *opts.Platform
	}
	return b, nil
}

// run plans the stages and runs those the target needs.
func (b *builder) run() (err error) {
	f, opts, res := b.file, b.opts, b.res
	b.noteTime(opts.DockerfileModTime)
	res.Warnings = append(res.Warnings, f.Warnings...)
	// TARGETSTAGE is the --target, or the last stage's name, before the stages are
	// planned: the global ARGs may use it in FROM lines.
	targetName := opts.Target
	if targetName == "" {
		targetName = f.Stages[len(f.Stages)-1].From.Name
	}
	if b.global, err = b.globalArgs(targetName); err != nil {
		return err
	}
	if err := b.planStages(); err != nil {
		return err
	}
	target, err := b.target()
	if err != nil {
		return err
	}
	// Like BuildKit, only the stages the target needs are built.
	order, err := b.buildOrder(target)
	if err != nil {
		return err
	}
	b.order, b.targetDef = order, target
	// RUN fails the build wherever it is: say so before any base is read or pulled.
	for _, d := range order {
		if d.replaced != nil {
			continue
		}
		for _, in := range d.src.Instructions {
			if _, ok := in.(*parser.Run); ok {
				return parser.At(in, b.runError(&stage{def: d}))
			}
		}
	}
	for _, d := range order {
		if d.st, err = b.runShared(d); err != nil {
			return err
		}
	}
	return nil
}

// complete turns the target stage into the result's image, made at the time when.
func (b *builder) complete(when time.Time) error {
	img, err := b.finish(b.targetDef.st, when)
	if err != nil {
		return err
	}
	for k, v := range b.opts.Labels {
		if img.Config.Config.Labels == nil {
			img.Config.Config.Labels = map[string]string{}
		}
		img.Config.Config.Labels[k] = v
	}
	b.res.Warnings = append(b.res.Warnings, b.unusedArgWarnings()...)
	b.res.Warnings = append(b.res.Warnings, b.unusedContextWarnings()...)
	b.res.Image = img
	return nil
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

	buildPlatform Platform // the machine's, for BUILDPLATFORM
	platform      Platform // the target platform: --platform, or the machine's
	global        envList  // the global scope: platform ARGs and ARGs before the first FROM
	usedArgs      map[string]bool
	stages        []*stageDef
	stagesByName  map[string]*stageDef
	bases         map[string]*baseImage    // FROM and --from images, loaded once
	closers       []func() error           // release the base images' files
	contexts      map[string]*namedContext // --build-context by ContextKey
	pinWarned     map[string]bool
	order         []*stageDef // the stages built, in order
	targetDef     *stageDef
	// multi is shared by the builds of BuildPlatforms (nil in Build): stages that
	// build the same for every platform are run once (platforms.go).
	multi *multiBuild
	gids  []int                // with multi: each step's number across all the builds, by index in res.Steps
	local map[int]int          // with multi: the inverse of gids
	keys  map[*stageDef]string // with multi: each stage's key (stageKey)
	// curPlatform is the platform of the stage running, for Step.Platform.
	curPlatform Platform
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
	def      *stageDef
	platform Platform
	fs       *layerfs.FS
	config   image.ConfigFile
	layers   []stageLayer
	cmdSet   bool    // a CMD ran in this stage, so ENTRYPOINT keeps it
	args     envList // ARG values declared so far, which expansion sees over ENV
	argIdx   keyIndex
	envIdx   keyIndex // of config.Config.Env
	step     int      // the index in Result.Steps of the instruction running
	history  []historyEntry
}

// stageLayer is a base layer, already complete, or the changes of one instruction,
// turned into a layer once the build time is known.
type stageLayer struct {
	base    *layerfs.Layer
	changes *layerfs.Changes
	step    int // the index in Result.Steps of the step that made it
}

// historyEntry is a history record; new ones get the build time when the image is
// finished.
type historyEntry struct {
	image.History
	new bool
}

func (b *builder) runStage(d *stageDef) (*stage, error) {
	s := d.src
	start := time.Now()
	st, err := b.from(d)
	if err != nil {
		return nil, parser.At(s.From, err)
	}
	b.curPlatform = st.platform
	for i := range st.layers {
		if st.layers[i].step < 0 {
			st.layers[i].step = len(b.res.Steps)
		}
	}
	if d.replaced != nil {
		b.report(Step{Stage: b.stageLabel(d), Index: 1, Total: 1, Line: s.From.Location().Line,
			Instruction: s.From.Source() + " (replaced by " + d.replaced.flag() + ")",
			Layer:       st.baseInfo(), Duration: time.Since(start)})
		return st, nil
	}
	// ONBUILD triggers run right after FROM and are not passed on: those of a base
	// image from its config, those of an earlier stage from its ONBUILD lines.
	triggers := st.config.Config.OnBuild
	if d.parent != nil {
		triggers = nil
		for _, in := range d.parent.src.Instructions {
			if o, ok := in.(*parser.Onbuild); ok {
				triggers = append(triggers, o.Expression)
			}
		}
	}
	st.config.Config.OnBuild = nil
	todo := make([]parser.Instruction, 0, len(triggers)+len(s.Instructions))
	fromLine := s.From.Location().Line
	for _, t := range triggers {
		// A trigger is located at the FROM that fires it; it is parsed on its own,
		// with the default escape character, as BuildKit does.
		in, err := parser.ParseTrigger(s.From.Location().File, fromLine, '\\', t)
		if err != nil {
			return nil, parser.At(s.From, fmt.Errorf("ONBUILD trigger %q of the base: %w", t, err))
		}
		todo = append(todo, in)
	}
	todo = append(todo, s.Instructions...)
	total := len(todo) + 1
	b.report(Step{Stage: b.stageLabel(d), Index: 1, Total: total, Instruction: s.From.Source(), Line: fromLine,
		Layer: st.baseInfo(), Duration: time.Since(start)})
	for i, in := range todo {
		if err := b.ctx.Err(); err != nil {
			return nil, err
		}
		start := time.Now()
		text := in.Source()
		if i < len(triggers) {
			text = "ONBUILD " + text
		}
		step := Step{Stage: b.stageLabel(d), Index: i + 2, Total: total, Instruction: text, Line: in.Location().Line}
		st.step = len(b.res.Steps)
		if err := b.dispatch(st, in, &step); err != nil {
			return nil, parser.At(in, err)
		}
		step.Duration = time.Since(start)
		b.report(step)
	}
	return st, nil
}

// stageLabel names a stage in progress as BuildKit does: by name, by stage-N when
// the Dockerfile has several stages, not at all when it has one unnamed stage.
func (b *builder) stageLabel(d *stageDef) string {
	if d.name == "" && len(b.stages) == 1 {
		return ""
	}
	return d.label()
}

func (b *builder) report(s Step) {
	s.Number = len(b.res.Steps) + 1
	if b.multi != nil {
		s.Platform = b.curPlatform.String()
	}
	b.res.Steps = append(b.res.Steps, s)
	if b.multi != nil {
		// Progress numbers steps across every platform's build.
		gid := b.multi.steps
		b.multi.steps++
		b.gids = append(b.gids, gid)
		b.local[gid] = len(b.res.Steps) - 1
		s.Number = gid + 1
	}
	if b.opts.Progress != nil {
		b.opts.Progress(s)
	}
}

// dispatchFunc runs one instruction of a stage, filling in its step.
type dispatchFunc func(b *builder, st *stage, in parser.Instruction, step *Step) error

// typed makes a dispatchFunc of a function for one instruction type.
func typed[I parser.Instruction](f func(b *builder, st *stage, in I, step *Step) error) dispatchFunc {
	return func(b *builder, st *stage, in parser.Instruction, step *Step) error {
		return f(b, st, in.(I), step)
	}
}

// dispatchers holds one function per instruction, keyed by keyword, as BuildKit's
// dispatch.go has one dispatch function per command. Those that change only the
// config are in config.go. It is filled in init because COPY --from can build
// another stage, whose instructions come back through dispatch.
var dispatchers map[string]dispatchFunc

func init() {
	dispatchers = map[string]dispatchFunc{
		"COPY": typed(func(b *builder, st *stage, in *parser.Copy, step *Step) (err error) {
			step.Layer, err = b.dispatchCopy(st, in)
			return err
		}),
		"ADD": typed(func(b *builder, st *stage, in *parser.Copy, step *Step) (err error) {
			step.Layer, err = b.dispatchAdd(st, in)
			return err
		}),
		"CMD": typed(func(b *builder, st *stage, in *parser.Command, step *Step) error {
			step.Config = []string{"Cmd"}
			return b.dispatchCmd(st, in)
		}),
		"ENTRYPOINT": typed(func(b *builder, st *stage, in *parser.Command, step *Step) error {
			step.Config = []string{"Entrypoint"}
			if !st.cmdSet && st.config.Config.Cmd != nil {
				step.Config = append(step.Config, "Cmd")
			}
			return b.dispatchEntrypoint(st, in)
		}),
		"ARG": typed(func(b *builder, st *stage, in *parser.Arg, _ *Step) error {
			return b.dispatchArg(st, in)
		}),
		"RUN": func(b *builder, st *stage, _ parser.Instruction, _ *Step) error {
			return b.runError(st)
		},
		"ENV":         typed((*builder).dispatchEnv),
		"LABEL":       typed((*builder).dispatchLabel),
		"USER":        typed((*builder).dispatchUser),
		"WORKDIR":     typed((*builder).dispatchWorkdir),
		"EXPOSE":      typed((*builder).dispatchExpose),
		"VOLUME":      typed((*builder).dispatchVolume),
		"STOPSIGNAL":  typed((*builder).dispatchStopSignal),
		"SHELL":       typed((*builder).dispatchShell),
		"HEALTHCHECK": typed((*builder).dispatchHealthcheck),
		"ONBUILD":     typed((*builder).dispatchOnbuild),
		"MAINTAINER":  typed((*builder).dispatchMaintainer),
	}
}

// dispatch runs one instruction through its function in dispatchers.
func (b *builder) dispatch(st *stage, in parser.Instruction, step *Step) error {
	d, ok := dispatchers[in.Keyword()]
	if !ok {
		return fmt.Errorf("%s is not supported yet", in.Keyword())
	}
	return d(b, st, in, step)
}

// runError refuses RUN with a way around it: a stage that another needs can be
// replaced with --build-context by what it would have made; for the final stage only
// a base that already holds the result helps.
func (b *builder) runError(st *stage) error {
	const why = "RUN executes commands in a container, and dfbuild never runs containers"
	d := st.def
	if d == b.targetDef {
		what := "this RUN is in the final stage"
		if d.name != "" {
			what += fmt.Sprintf(" (%s)", d.name)
		}
		return fmt.Errorf("%s: %s, so replacing a stage cannot help: only a base that already has the RUN's result can; "+
			"start FROM such an image or root filesystem tarball (served by --build-context NAME=VALUE), or build the files beforehand and COPY them in", why, what)
	}
	var needer parser.Instruction
	for _, o := range b.order {
		for _, dep := range o.deps {
			if dep.def == d && needer == nil {
				needer = dep.in
			}
		}
	}
	needs := ""
	if needer != nil {
		needs = fmt.Sprintf(", which line %d needs (%s)", needer.Location().Line, needer.Source())
	}
	if d.name == "" {
		return fmt.Errorf("%s: this RUN is in %s%s; name that stage (FROM ... AS NAME) and pass --build-context NAME=<a directory or image with that stage's output>, which replaces the stage", why, d.label(), needs)
	}
	return fmt.Errorf("%s: this RUN is in stage %q%s; pass --build-context %s=<a directory or image with that stage's output>, which replaces the stage so that it is not built", why, d.name, needs, d.name)
}

// commit records an instruction's filesystem changes as a new layer. createdBy is
// the history text in full: BuildKit ends it with " # buildkit" for COPY and ADD,
// not for WORKDIR.
func (st *stage) commit(createdBy string) *LayerInfo {
	ch := st.fs.Commit()
	st.layers = append(st.layers, stageLayer{changes: ch, step: st.step})
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
// config's Env, with the stage's ARG values over it.
func (st *stage) env() parser.Vars { return stageVars{st} }

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
	info := &LayerInfo{Base: true}
	for _, l := range st.layers {
		if l.base != nil {
			info.Bytes += l.base.Size()
			continue
		}
		// A stage FROM an earlier stage starts with that stage's new layers.
		for _, e := range l.changes.Entries {
			info.Bytes += e.Node.Size
		}
	}
	return info
}

// finish turns the stage into an image: the new layers get their final times, and so
// do the history and the image itself.
func (b *builder) finish(st *stage, when time.Time) (*image.Image, error) {
	topts := layerfs.TarOptions{BuildTime: when, Clamp: b.opts.SourceDateEpoch}
	// The stage may be shared with other platforms' builds: the image gets a copy of
	// its config, whose labels it may change.
	img := &image.Image{Config: cloneConfig(st.config)}
	for i, l := range st.layers {
		b.res.LayerSteps = append(b.res.LayerSteps, l.step)
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

// defaultPath is the PATH every Linux image built by Docker gets when its base has none.
const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
