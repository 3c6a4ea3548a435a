package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

// progressModes are the values of --progress, as in docker buildx build.
var progressModes = []string{"auto", "plain", "tty", "quiet", "json"}

// progress reports a build on standard error: each instruction as it finishes, then
// the export, in which each layer's digest is shown next to the instruction that
// made it. The layer digests are only known then, because each layer is hashed
// while it is written into the archive.
type progress struct {
	w     io.Writer
	mode  string // plain, tty, quiet or json
	steps []interp.Step
	next  int // the number the export step gets
	start time.Time

	// tty: the live counter of bytes, and of files once each layer is complete.
	total, done           int64
	filesTotal, filesDone int
	lastDraw              time.Time
}

// newProgress resolves "auto" the way buildx does: a terminal gets the live display,
// anything else plain lines.
func newProgress(w io.Writer, mode string) (*progress, error) {
	switch mode {
	case "", "auto":
		mode = "plain"
		if f, ok := w.(*os.File); ok && isTerminal(f) {
			mode = "tty"
		}
	case "plain", "tty", "quiet", "json":
	default:
		return nil, usagef("--progress=%q: expected one of %s", mode, strings.Join(progressModes, ", "))
	}
	return &progress{w: w, mode: mode, start: time.Now()}, nil
}

func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// step reports one finished instruction.
func (p *progress) step(s interp.Step) {
	p.steps = append(p.steps, s)
	p.next = s.Number + 1
	switch p.mode {
	case "quiet":
	case "json":
		ev := map[string]any{"event": "step", "step": s.Number, "total": s.Total, "line": s.Line,
			"instruction": s.Instruction, "seconds": round(s.Duration)}
		if s.Stage != "" {
			// Several stages: "step" counts across the build, "index" within the stage.
			ev["stage"], ev["index"] = s.Stage, s.Index
		}
		if s.Platform != "" {
			ev["platform"] = s.Platform
		}
		if s.Layer != nil {
			ev["layer"] = map[string]any{"base": s.Layer.Base, "files": s.Layer.Files, "entries": s.Layer.Entries, "bytes": s.Layer.Bytes}
		} else if len(s.Config) > 0 {
			ev["config"] = s.Config
		}
		p.json(ev)
	default:
		stage := ""
		if s.Stage != "" {
			stage = s.Stage + " "
		}
		if s.Platform != "" {
			// Several platforms: BuildKit names each step's platform first.
			stage = s.Platform + " " + stage
		}
		fmt.Fprintf(p.w, "#%d [%s%d/%d] %s\n", s.Number, stage, s.Index, s.Total, s.Instruction)
		fmt.Fprintf(p.w, "#%d %s\n", s.Number, stepResult(s))
		fmt.Fprintf(p.w, "#%d DONE %.1fs\n\n", s.Number, s.Duration.Seconds())
	}
}

func stepResult(s interp.Step) string {
	switch {
	case s.Layer != nil && s.Layer.Base:
		return "base layer, " + inspect.HumanSize(s.Layer.Bytes)
	case s.Layer != nil:
		return fmt.Sprintf("layer: %d file%s, %s", s.Layer.Files, plural(s.Layer.Files), inspect.HumanSize(s.Layer.Bytes))
	case len(s.Config) > 0:
		return "config only: " + strings.Join(s.Config, ", ")
	case s.Index == 1:
		return "empty base, no layer"
	}
	return "config only"
}

// trace returns the hooks the archive writer reports to. newImage is the index of
// the image just built among those written (an appended archive holds others too);
// layerSteps says which step made each of its layers.
func (p *progress) trace(dest string, newImage int, layerSteps []int) *dockerarchive.Trace {
	// The files the new image's own layers hold; other stages' layers are not
	// written.
	for _, i := range layerSteps {
		if i < len(p.steps) {
			if s := p.steps[i]; s.Layer != nil && !s.Layer.Base {
				p.filesTotal += s.Layer.Files
			}
		}
	}
	if p.mode == "plain" || p.mode == "tty" {
		fmt.Fprintf(p.w, "#%d exporting to %s\n", p.next, dest)
	}
	return &dockerarchive.Trace{
		Start: func(total int64) { p.total = total },
		File:  func() { p.filesDone++ },
		Wrote: func(n int) {
			p.done += int64(n)
			if p.mode == "tty" && time.Since(p.lastDraw) > 100*time.Millisecond {
				p.lastDraw = time.Now()
				fmt.Fprintf(p.w, "\r\x1b[K#%d writing layers %s / %s, %d / %d files", p.next,
					inspect.HumanSize(p.done), inspect.HumanSize(p.total), p.filesDone, p.filesTotal)
			}
		},
		Layer: func(i, j int, d layerfs.Digest, size int64, reused bool) {
			from := ""
			var step *interp.Step
			if i == newImage && j < len(layerSteps) && layerSteps[j] < len(p.steps) {
				step = &p.steps[layerSteps[j]]
				from = fmt.Sprintf(" <- #%d %s", step.Number, step.Instruction)
			} else if i != newImage {
				from = fmt.Sprintf(" (image %d of the output)", i+1)
			}
			switch p.mode {
			case "quiet":
			case "json":
				ev := map[string]any{"event": "layer", "image": i, "layer": j, "digest": d, "size": size, "reused": reused}
				if step != nil {
					ev["step"] = step.Number
				}
				p.json(ev)
			default:
				if p.mode == "tty" {
					fmt.Fprint(p.w, "\r\x1b[K")
				}
				stored := ""
				if reused {
					stored = ", stored once"
				}
				files := ""
				if step != nil && !step.Layer.Base {
					files = fmt.Sprintf(", %d file%s", step.Layer.Files, plural(step.Layer.Files))
				}
				fmt.Fprintf(p.w, "#%d layer %s %s%s%s%s\n", p.next, shortDigest(d), inspect.HumanSize(size), files, stored, from)
			}
		},
	}
}

// finish reports the written image.
func (p *progress) finish(id layerfs.Digest, names []string, dest string) {
	switch p.mode {
	case "quiet":
	case "json":
		p.json(map[string]any{"event": "done", "id": id, "tags": names, "output": dest, "seconds": round(time.Since(p.start))})
	default:
		if p.mode == "tty" {
			fmt.Fprint(p.w, "\r\x1b[K")
		}
		fmt.Fprintf(p.w, "#%d writing image %s\n", p.next, id)
		for _, n := range names {
			fmt.Fprintf(p.w, "#%d naming to %s\n", p.next, n)
		}
		fmt.Fprintf(p.w, "#%d DONE %.1fs\n", p.next, time.Since(p.start).Seconds())
	}
}

func (p *progress) warn(msg string) {
	switch p.mode {
	case "json":
		p.json(map[string]any{"event": "warning", "message": msg})
	default:
		fmt.Fprintln(p.w, "warning: "+msg)
	}
}

func (p *progress) json(ev map[string]any) {
	b, err := json.Marshal(ev)
	if err == nil {
		p.w.Write(append(b, '\n'))
	}
}

func shortDigest(d layerfs.Digest) string {
	h := d.Hex()
	if len(h) > 12 {
		h = h[:12]
	}
	return "sha256:" + h
}

func round(d time.Duration) float64 { return float64(d.Round(time.Millisecond)) / float64(time.Second) }
