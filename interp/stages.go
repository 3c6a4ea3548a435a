package interp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/parser"
)

// stageDef is a stage of the Dockerfile before it runs: what it starts from and what
// it needs.
type stageDef struct {
	index int
	src   *parser.Stage
	name  string // lower case, "" for an unnamed stage
	base  string // the FROM name after expansion with the global ARGs
	// parent is the earlier stage FROM names, nil when it names an image.
	parent *stageDef
	// deps are the stages this one needs: its parent and every COPY --from stage,
	// with the instruction that needs each (for error locations).
	deps []stageDep
	// replaced is the --build-context named like the stage, which takes its place:
	// nothing of the stage runs, and it needs no other stage.
	replaced *namedContext
	st       *stage // the result, once built
}

type stageDep struct {
	def *stageDef
	in  parser.Instruction
}

// label names a stage in messages as BuildKit does: its name, or stage-N.
func (d *stageDef) label() string {
	if d.name != "" {
		return d.name
	}
	return "stage-" + strconv.Itoa(d.index)
}

// planStages expands every FROM with the global ARGs, links each stage to the stages
// it needs and checks the graph, as BuildKit does for every stage before it builds
// any (so a bad FROM fails even in a stage the target does not need).
func (b *builder) planStages() error {
	byName := map[string]*stageDef{}
	for i, s := range b.file.Stages {
		d := &stageDef{index: i, src: s, name: s.From.Name}
		name, err := b.ex.Word(s.From.Image, b.global)
		if err != nil {
			return parser.At(s.From, fmt.Errorf("expanding the base name %q: %w", s.From.Image, err))
		}
		if name == "" {
			return parser.At(s.From, fmt.Errorf("base name (%s) should not be blank", s.From.Image))
		}
		d.base = name
		// FROM matches earlier stage names exactly: they are lower case, so "FROM
		// Build" names an image, as in BuildKit; dfbuild says why instead of failing on
		// an unknown image.
		if p, ok := byName[name]; ok {
			d.parent = p
			d.deps = append(d.deps, stageDep{p, s.From})
		} else if p, ok := byName[strings.ToLower(name)]; ok {
			return parser.At(s.From, fmt.Errorf("%q is not a stage name: stage names are lower case, write FROM %s", name, p.name))
		}
		if d.name != "" {
			if nc := b.lookupContext(d.name); nc != nil {
				d.replaced, d.parent, d.deps = nc, nil, nil
			}
			if prev, ok := byName[d.name]; ok {
				return parser.At(s.From, fmt.Errorf("duplicate stage name %q: line %d names a stage %q already",
					d.name, prev.src.From.Location().Line, d.name))
			}
			byName[d.name] = d
		}
		if d.parent == nil && d.replaced == nil && name != "scratch" {
			// Marks the context that serves the base as used, whether or not the
			// target needs this stage.
			b.lookupContext(name)
		}
		b.stages = append(b.stages, d)
	}
	for _, d := range b.stages {
		ins := d.src.Instructions
		if d.parent != nil {
			// The ONBUILD triggers of the parent stage run in this one, so the stages
			// their COPY --from names are needed here, as BuildKit adds them.
			var triggers []parser.Instruction
			for _, in := range d.parent.src.Instructions {
				if o, ok := in.(*parser.Onbuild); ok && o.Trigger != nil {
					triggers = append(triggers, o.Trigger)
				}
			}
			ins = append(triggers, ins...)
		}
		for _, in := range ins {
			c, ok := in.(*parser.Copy)
			if !ok || c.From == "" {
				continue
			}
			dep, err := b.findStage(c.From, byName)
			if err != nil {
				return parser.At(in, err)
			}
			if dep == nil {
				b.lookupContext(c.From)
			} else if d.replaced == nil {
				d.deps = append(d.deps, stageDep{dep, in})
			}
		}
	}
	b.stagesByName = byName
	return b.checkCycles()
}

// findStage resolves a --from value: a stage index, a stage name (any case, as
// BuildKit matches them), or nil for an image name.
func (b *builder) findStage(ref string, byName map[string]*stageDef) (*stageDef, error) {
	if n, err := strconv.Atoi(ref); err == nil {
		if n < 0 || n >= len(b.stages) {
			return nil, fmt.Errorf("invalid stage index %d: the Dockerfile has stages 0 to %d", n, len(b.stages)-1)
		}
		return b.stages[n], nil
	}
	if strings.Contains(ref, "$") {
		return nil, errors.New("variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")
	}
	return byName[strings.ToLower(ref)], nil
}

// checkCycles refuses a stage that needs itself, through any chain of FROM and COPY
// --from, naming the instructions on the cycle.
func (b *builder) checkCycles() error {
	const (
		unseen = iota
		onPath
		done
	)
	state := map[*stageDef]int{}
	var path []stageDep
	var visit func(d *stageDef) error
	visit = func(d *stageDef) error {
		state[d] = onPath
		for _, dep := range d.deps {
			path = append(path, dep)
			switch state[dep.def] {
			case onPath:
				var lines []string
				for _, p := range path {
					lines = append(lines, fmt.Sprintf("line %d (%s)", p.in.Location().Line, p.in.Source()))
				}
				return parser.At(dep.in, fmt.Errorf("circular dependency detected on stage: %s: %s", dep.def.label(), strings.Join(lines, " -> ")))
			case unseen:
				if err := visit(dep.def); err != nil {
					return err
				}
			}
			path = path[:len(path)-1]
		}
		state[d] = done
		return nil
	}
	for _, d := range b.stages {
		if state[d] == unseen {
			if err := visit(d); err != nil {
				return err
			}
		}
	}
	return nil
}

// target picks the stage to build: --target by name (any case), or the last stage.
func (b *builder) target() (*stageDef, error) {
	if b.opts.Target == "" {
		return b.stages[len(b.stages)-1], nil
	}
	if d, ok := b.stagesByName[strings.ToLower(b.opts.Target)]; ok {
		return d, nil
	}
	var names []string
	best, bestDist := "", 3
	for _, d := range b.stages {
		if d.name == "" {
			continue
		}
		names = append(names, d.name)
		if dist := parser.EditDistance(strings.ToLower(b.opts.Target), d.name); dist < bestDist {
			best, bestDist = d.name, dist
		}
	}
	msg := fmt.Sprintf("%s: target stage %q could not be found", b.file.Name, b.opts.Target)
	switch {
	case best != "":
		msg += fmt.Sprintf(" (did you mean %s?)", best)
	case len(names) == 0:
		msg += ": the Dockerfile names no stages (FROM ... AS NAME)"
	default:
		msg += "; stages: " + strings.Join(names, ", ")
	}
	return nil, errors.New(msg)
}

// buildOrder lists the stages the target needs in Dockerfile order, the order in
// which BuildKit dispatches them. FROM names only earlier stages and cycles are
// refused already, so the one way a stage could need a later one is COPY --from,
// which is refused as BuildKit refuses it.
func (b *builder) buildOrder(target *stageDef) ([]*stageDef, error) {
	need := map[*stageDef]bool{}
	var mark func(d *stageDef) error
	mark = func(d *stageDef) error {
		if need[d] {
			return nil
		}
		need[d] = true
		for _, dep := range d.deps {
			if c, ok := dep.in.(*parser.Copy); ok && dep.def.index > d.index {
				return parser.At(c, fmt.Errorf("cannot copy from stage %q, it needs to be defined before current stage %q", c.From, d.label()))
			}
			if err := mark(dep.def); err != nil {
				return err
			}
		}
		return nil
	}
	if err := mark(target); err != nil {
		return nil, err
	}
	var order []*stageDef
	for _, d := range b.stages {
		if need[d] {
			order = append(order, d)
		}
	}
	return order, nil
}

// copyFromFS returns the filesystem a COPY --from names: an earlier stage (by name
// or index) as it ended, or an image served by --build-context.
func (b *builder) copyFromFS(st *stage, ref string) (*layerfs.FS, error) {
	d, err := b.findStage(ref, b.stagesByName)
	if err != nil {
		return nil, err
	}
	if d != nil {
		if d.st == nil {
			// Only an ONBUILD trigger can name a stage the plan did not see coming.
			return nil, fmt.Errorf("stage %q is not built before this instruction: COPY --from in an ONBUILD trigger can only name a stage the target already needs", d.label())
		}
		return d.st.fs, nil
	}
	base, err := b.loadImage(ref, st.platform)
	if err != nil {
		return nil, fmt.Errorf("--from=%s: %w", ref, err)
	}
	return base.fs, nil
}
