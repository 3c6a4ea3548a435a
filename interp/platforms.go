package interp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/dfbuild/dfbuild/parser"
)

// ParsePlatforms reads a --platform value as buildx does (platformutil.Parse): a
// comma-separated list of os/arch[/variant], each read by ParsePlatform, where
// "local" is the machine's platform. The order is kept: it is the order of the
// image index. A platform listed twice is refused (buildx would build it twice and
// list it twice in the index, which no runtime can choose between).
func ParsePlatforms(s string) ([]Platform, error) {
	var out []Platform
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			return nil, fmt.Errorf("platform list %q: empty item", s)
		}
		p := HostPlatform()
		if item != "local" {
			var err error
			if p, err = ParsePlatform(item); err != nil {
				return nil, err
			}
		}
		if slices.Contains(out, p) {
			return nil, fmt.Errorf("platform list %q: %s is listed twice", s, p)
		}
		out = append(out, p)
	}
	return out, nil
}

// MultiResult is the outcome of BuildPlatforms: one image per platform, in the
// order asked for.
type MultiResult struct {
	Platforms []Platform
	// Results holds each platform's build, as Build would return it: Steps are that
	// platform's steps in full, those of shared stages included (marked Shared), and
	// LayerSteps index into them. Close the MultiResult, not these: a platform's
	// image may read the scratch files of an earlier platform's build.
	Results []*Result
	// Warnings of all the builds, each once, in the order first given.
	Warnings []string
}

// Close releases the scratch files of every platform's build, once the images have
// been written.
func (m *MultiResult) Close() error {
	if m == nil {
		return nil
	}
	var errs []error
	for _, r := range m.Results {
		errs = append(errs, r.Close())
	}
	return errors.Join(errs...)
}

// multiBuild is what the builds of one BuildPlatforms call share.
type multiBuild struct {
	// memo holds every stage built so far by its key (builder.stageKey): a later
	// platform's build reuses a stage of the same key instead of running it again.
	memo     map[string]*memoStage
	steps    int             // steps run so far, across the builds: Progress numbers
	usedArgs map[string]bool // the --build-arg values some build declared
}

// memoStage is a stage as it ended, with the steps that made it. Layer steps are
// numbers across the builds (builder.gids), so each build can map them to its own
// Steps.
type memoStage struct {
	st       *stage
	steps    []Step
	gids     []int
	warnings []string
}

// BuildPlatforms builds the target once per platform, as BuildKit runs one
// Dockerfile conversion per target platform: each build has its own TARGETPLATFORM,
// TARGETOS, TARGETARCH and TARGETVARIANT, and each picks its bases for its platform.
// opts.Platform is ignored.
//
// A stage whose inputs are the same for every platform (FROM --platform=$BUILDPLATFORM
// that reads no TARGET* argument, say) is run once and shared: BuildKit gets the
// same from its content-addressed solver, since such a stage's LLB is identical in
// every conversion. A stage is keyed by its index, its platform, its expanded base
// name, the global values of the ARGs it declares, and the keys of the stages it
// needs; nothing else a stage does can differ between the builds.
//
// Every image is made at one time, the newest input of all the builds (or
// SOURCE_DATE_EPOCH), so that the layers the platforms have in common are the same
// bytes and an index stores them once. With SOURCE_DATE_EPOCH, each image is byte for
// byte what Build gives for its platform alone.
//
// Progress is told about each step that runs, with Step.Platform set and Number
// counting across the builds; a shared stage is reported once. The result must be
// closed once the images have been written.
func BuildPlatforms(ctx context.Context, f *parser.File, opts Options, platforms []Platform) (mr *MultiResult, err error) {
	if len(platforms) == 0 {
		return nil, errors.New("no platform to build for")
	}
	multi := &multiBuild{memo: map[string]*memoStage{}, usedArgs: map[string]bool{}}
	mr = &MultiResult{Platforms: slices.Clone(platforms)}
	defer func() {
		if err != nil {
			mr.Close()
		}
	}()
	var builders []*builder
	for _, p := range platforms {
		o := opts
		o.Platform = &p
		b, err := newBuilder(ctx, f, o, multi)
		if err != nil {
			return nil, err
		}
		b.usedArgs, b.local = multi.usedArgs, map[int]int{}
		mr.Results = append(mr.Results, b.res)
		builders = append(builders, b)
		if err := b.run(); err != nil {
			return nil, fmt.Errorf("building for %s: %w", p, err)
		}
	}
	var when time.Time
	for _, b := range builders {
		if t := b.buildTime(); t.After(when) {
			when = t
		}
	}
	seen := map[string]bool{}
	for i, b := range builders {
		if err := b.complete(when); err != nil {
			return nil, fmt.Errorf("building for %s: %w", platforms[i], err)
		}
		for _, w := range b.res.Warnings {
			if !seen[w] {
				seen[w] = true
				mr.Warnings = append(mr.Warnings, w)
			}
		}
	}
	return mr, nil
}

// runShared runs a stage, or, in one of several platforms' builds, reuses the same
// stage an earlier build ran.
func (b *builder) runShared(d *stageDef) (*stage, error) {
	if b.multi == nil {
		return b.runStage(d)
	}
	p, err := b.stagePlatform(d)
	if err != nil {
		return nil, parser.At(d.src.From, err)
	}
	key := b.stageKey(d, p)
	if b.keys == nil {
		b.keys = map[*stageDef]string{}
	}
	b.keys[d] = key
	if m, ok := b.multi.memo[key]; ok {
		return b.reuse(d, m)
	}
	firstStep, firstWarning := len(b.res.Steps), len(b.res.Warnings)
	st, err := b.runStage(d)
	if err != nil {
		return nil, err
	}
	m := &memoStage{
		steps:    slices.Clone(b.res.Steps[firstStep:]),
		gids:     slices.Clone(b.gids[firstStep:]),
		warnings: slices.Clone(b.res.Warnings[firstWarning:]),
	}
	snap := *st
	snap.layers = slices.Clone(st.layers)
	for i := range snap.layers {
		snap.layers[i].step = b.gids[snap.layers[i].step]
	}
	m.st = &snap
	b.multi.memo[key] = m
	return st, nil
}

// reuse takes a stage an earlier platform's build ran: its steps join this build's
// Steps (marked Shared, not reported again), and its layers point at them.
func (b *builder) reuse(d *stageDef, m *memoStage) (*stage, error) {
	for i, s := range m.steps {
		s.Number = len(b.res.Steps) + 1
		s.Shared = true
		b.res.Steps = append(b.res.Steps, s)
		b.gids = append(b.gids, m.gids[i])
		b.local[m.gids[i]] = len(b.res.Steps) - 1
	}
	b.res.Warnings = append(b.res.Warnings, m.warnings...)
	st := *m.st
	st.def = d
	st.layers = slices.Clone(m.st.layers)
	for i := range st.layers {
		loc, ok := b.local[st.layers[i].step]
		if !ok {
			return nil, fmt.Errorf("internal: stage %s reuses a layer of a step this build did not see", d.label())
		}
		st.layers[i].step = loc
	}
	return &st, nil
}

// stageKey says what a stage's result depends on besides the Dockerfile and the
// options every build shares: its platform, its base name as expanded, the global
// values of the ARGs it declares (the target platform reaches a stage only through
// them: an ARG TARGETARCH, or a global ARG whose default uses it), and the stages it
// starts from and copies from. The ARGs of the parent's ONBUILD triggers run in the
// stage too.
func (b *builder) stageKey(d *stageDef, p Platform) string {
	var k strings.Builder
	fmt.Fprintf(&k, "%d\x00%s\x00%s", d.index, p, d.base)
	ins := d.src.Instructions
	if d.parent != nil {
		for _, in := range d.parent.src.Instructions {
			if o, ok := in.(*parser.Onbuild); ok && o.Trigger != nil {
				ins = append([]parser.Instruction{o.Trigger}, ins...)
			}
		}
	}
	for _, in := range ins {
		a, ok := in.(*parser.Arg)
		if !ok {
			continue
		}
		for _, kv := range a.Args {
			v, has := b.global.get(kv.Key)
			fmt.Fprintf(&k, "\x00arg %q %t %q", kv.Key, has, v)
		}
	}
	for _, dep := range d.deps {
		fmt.Fprintf(&k, "\x00dep %q", b.keys[dep.def])
	}
	return k.String()
}
