package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

func newExplainCmd() *cobra.Command {
	var o buildOptions
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "explain [build flags] [CONTEXT]",
		Short: "Build in memory and show what each instruction did to the image",
		Long: `explain runs the same build as dfbuild with the same flags, writes no archive, and
shows for each instruction whether it made a layer or only changed the config (and
which config fields). For a layer it shows the diff_id, the sizes, and every path
the layer added, changed or removed, with its bytes. Files that a later layer
overwrites or removes are flagged as wasted.

explain takes every flag of a build, so that a build's command line can be reused
as it is, and nothing is written: -t names the image, and with -o decides the
output path that the build leaves out of the context, so explain sees the same
context as the build; the flags that only say how to write or show the result
(--append, --iidfile, --metadata-file, --load, --push, --progress, -q) write and
show nothing. With several platforms (--platform linux/amd64,linux/arm64) each is
explained in turn. SOURCE_DATE_EPOCH is read as by dfbuild.

--json prints the same data as JSON: {id, tags, steps: [{step, line,
instruction, result, config, layers}], size, content_size, wasted_bytes,
wasted_files}, where each layer is an inspect LayerReport (package
github.com/dfbuild/dfbuild/layerfs/inspect) with its entries.`,
		Example: `  dfbuild explain .
  dfbuild explain -f Dockerfile.alpine --build-context alpine:3.18=alpine.tar.gz .
  dfbuild explain --json . | jq '.steps[] | {instruction, result}'`,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("expected at most one CONTEXT argument, got %d: %s", len(args), strings.Join(args, " "))
			}
			return nil
		},
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.contextDir = "."
			if len(args) == 1 {
				o.contextDir = args[0]
			}
			return runExplain(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o, asJSON)
		},
	}
	bindBuildFlags(cmd, &o)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON instead of text")
	return cmd
}

// memoryBuild is a build that was not written anywhere.
type memoryBuild struct {
	res        *interp.Result // the first platform's, when there are several
	all        *buildResult   // close this, not res
	tags       []image.Tag
	dockerfile string // the name errors and explain use
}

// buildInMemory checks the flags and runs parser.Parse and interp.Build exactly as
// runBuild does, but writes nothing. The output path still matters: the build
// leaves the archive it would write out of the context, so explain does too.
func buildInMemory(ctx context.Context, stdin io.Reader, o buildOptions) (*memoryBuild, error) {
	p, err := newPlan(o)
	if err != nil {
		return nil, err
	}
	// Bases come from registries as in a build; transfers are not shown.
	c, err := newRegistryClient(o.reg, nil)
	if err != nil {
		return nil, err
	}
	p.images = registrySource{c}
	all, err := p.buildAll(ctx, stdin, o, nil)
	if err != nil {
		return nil, err
	}
	return &memoryBuild{res: all.Platforms[0].Result, all: all, tags: p.tags, dockerfile: p.dockerfile}, nil
}

// explainReport is explain's output; its JSON form is explain --json.
type explainReport struct {
	Platform    string         `json:"platform,omitempty"` // with several platforms
	ID          string         `json:"id"`
	Tags        []string       `json:"tags"`
	Steps       []*explainStep `json:"steps"`
	Size        int64          `json:"size"`
	ContentSize int64          `json:"content_size"`
	WastedBytes int64          `json:"wasted_bytes"`
	WastedFiles int            `json:"wasted_files"`
	Warnings    []string       `json:"warnings,omitempty"`
}

// explainStep is one instruction and what it did.
type explainStep struct {
	Step        int    `json:"step"`            // 1-based across the build, FROM included
	Stage       string `json:"stage,omitempty"` // the stage, when the Dockerfile has several
	Line        int    `json:"line"`
	Instruction string `json:"instruction"`
	// Result is "layer" (the instruction made a layer), "config" (it changed only
	// the config), "base" (FROM a tarball: its layers) or "empty" (FROM scratch).
	Result string `json:"result"`
	// Config lists the config fields a config-only instruction set.
	Config []string               `json:"config,omitempty"`
	Layers []*inspect.LayerReport `json:"layers,omitempty"`
	// Shared marks, with several platforms, a step of a stage built once for all of
	// them (an earlier platform's build ran it).
	Shared bool `json:"shared,omitempty"`
}

func runExplain(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer, o buildOptions, asJSON bool) error {
	b, err := buildInMemory(ctx, stdin, o)
	if err != nil {
		return err
	}
	defer b.all.Close()
	if b.all.Multi {
		return explainPlatforms(ctx, stdout, stderr, b, asJSON)
	}
	ir, err := inspect.Analyze(ctx, inspect.FromImage(b.res.Image))
	if err != nil {
		return fmt.Errorf("analysing the image: %w", err)
	}
	rep, err := explainSteps(b, ir)
	if err != nil {
		return err
	}
	for _, w := range rep.Warnings {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	return writeExplain(stdout, b.dockerfile, rep)
}

// explainSteps pairs the build's steps with the analysed layers: the base's layers go to
// FROM, and each later step that made a layer takes the next one.
func explainSteps(b *memoryBuild, ir *inspect.ImageReport) (*explainReport, error) {
	rep := &explainReport{ID: ir.ID, Tags: []string{}, Size: ir.Size, ContentSize: ir.ContentSize,
		WastedBytes: ir.WastedBytes, WastedFiles: ir.WastedFiles, Warnings: b.res.Warnings}
	for _, t := range b.tags {
		rep.Tags = append(rep.Tags, t.Full)
	}
	steps := b.res.Steps
	if len(b.res.LayerSteps) != len(ir.Layers) {
		return nil, fmt.Errorf("internal: the build accounts for %d layers, but the image has %d", len(b.res.LayerSteps), len(ir.Layers))
	}
	byStep := map[int][]*inspect.LayerReport{}
	for j, i := range b.res.LayerSteps {
		byStep[i] = append(byStep[i], ir.Layers[j])
	}
	for i, s := range steps {
		es := &explainStep{Step: s.Number, Stage: s.Stage, Line: s.Line, Instruction: s.Instruction, Config: s.Config, Layers: byStep[i], Shared: s.Shared}
		switch {
		case s.Layer != nil && s.Layer.Base:
			es.Result = "base"
		case s.Layer != nil:
			es.Result = "layer"
		case s.Index == 1:
			es.Result = "empty"
		default:
			es.Result = "config"
		}
		rep.Steps = append(rep.Steps, es)
	}
	return rep, nil
}

func writeExplain(w io.Writer, dockerfile string, rep *explainReport) error {
	ew := &inspect.ErrWriter{W: w}
	if rep.Platform != "" {
		fmt.Fprintf(ew, "Platform %s\n", rep.Platform)
	}
	fmt.Fprintf(ew, "Image %s (not written)\n", rep.ID)
	if len(rep.Tags) > 0 {
		var names []string
		for _, t := range rep.Tags {
			tg, _ := image.ParseTag(t)
			names = append(names, tg.Familiar)
		}
		fmt.Fprintf(ew, "Tags: %s\n", strings.Join(names, ", "))
	}
	layers := 0
	for _, s := range rep.Steps {
		stage := ""
		if s.Stage != "" {
			stage = "[" + s.Stage + "] "
		}
		fmt.Fprintf(ew, "\n#%d %s%s (%s:%d)\n", s.Step, stage, s.Instruction, dockerfile, s.Line)
		if s.Shared {
			fmt.Fprintln(ew, "   built once for every platform (shown with the first)")
		}
		switch {
		case s.Result == "layer" && len(s.Layers) == 0:
			fmt.Fprintln(ew, "   layer of a stage that is not the image: COPY --from reads it")
		case s.Result == "base" && len(s.Layers) == 0:
			fmt.Fprintln(ew, "   continues the stage it names: its layers are shown at the steps that made them")
		}
		switch s.Result {
		case "empty":
			fmt.Fprintln(ew, "   empty base: no layer")
		case "config":
			what := "config only"
			if len(s.Config) > 0 {
				what += ": " + strings.Join(s.Config, ", ")
			}
			fmt.Fprintln(ew, "   "+what)
		}
		for _, l := range s.Layers {
			layers++
			kind := "layer"
			if s.Result == "base" {
				kind = "base layer"
			}
			fmt.Fprintf(ew, "   %s %d %s\n", kind, l.Index, l.DiffID)
			fmt.Fprintf(ew, "   %s\n", inspect.LayerSummary(l))
			entries := l.Entries
			if s.Result == "base" {
				// A base holds a whole root filesystem; what matters here is what the
				// build's own layers did to it.
				entries = nil
				for _, e := range l.Entries {
					if e.Wasted != "" {
						entries = append(entries, e)
					}
				}
				fmt.Fprintf(ew, "   %d entries, listed only where a later layer wastes them\n", len(l.Entries))
			}
			inspect.WriteEntries(ew, entries, "   ")
		}
	}
	fmt.Fprintf(ew, "\n%d layer%s, %s in files, %s as tar\n", layers, plural(layers),
		inspect.HumanSize(rep.ContentSize), inspect.HumanSize(rep.Size))
	fmt.Fprintf(ew, "Wasted: %s in %d file%s that later layers overwrite or remove\n",
		inspect.HumanSize(rep.WastedBytes), rep.WastedFiles, plural(rep.WastedFiles))
	return ew.Err
}

// explainPlatforms explains each platform's image in turn (--json: an array of
// reports, each naming its platform); the warnings of all the builds come once.
func explainPlatforms(ctx context.Context, stdout, stderr io.Writer, b *memoryBuild, asJSON bool) error {
	var reps []*explainReport
	for _, pi := range b.all.Platforms {
		ir, err := inspect.Analyze(ctx, inspect.FromImage(pi.Image))
		if err != nil {
			return fmt.Errorf("analysing the image for %s: %w", pi.Platform, err)
		}
		one := *b
		one.res = pi.Result
		rep, err := explainSteps(&one, ir)
		if err != nil {
			return err
		}
		rep.Platform, rep.Warnings = pi.Platform.String(), nil
		reps = append(reps, rep)
	}
	for _, w := range b.all.Warnings {
		fmt.Fprintln(stderr, "warning: "+w)
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(reps)
	}
	for i, rep := range reps {
		if i > 0 {
			if _, err := fmt.Fprintln(stdout); err != nil {
				return err
			}
		}
		if err := writeExplain(stdout, b.dockerfile, rep); err != nil {
			return err
		}
	}
	return nil
}
