package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strconv"

	"github.com/spf13/pflag"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/dockerengine"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
	"github.com/dfbuild/dfbuild/layerfs/registry"
)

// stdoutDest is the -o value that means standard output, as in buildx.
const stdoutDest = "-"

// outputOptions are the flags about where the image goes besides -o, and docker
// build's flags that mean nothing here.
type outputOptions struct {
	load  bool
	quiet bool
	noops []string // the no-op flags given, each once, in the order first given
}

// noopFlags are docker build's flags that only matter to containers RUN would start,
// or to a build cache: accepted so that command lines copied from docker build keep
// working, each with a note.
var noopFlags = []struct {
	name, usage, why string
	isBool           bool
}{
	{"no-cache", "accepted for docker build compatibility; no effect", "dfbuild keeps no cache of build steps", true},
	{"rm", "accepted for docker build compatibility; no effect", "dfbuild runs no containers", true},
	{"force-rm", "accepted for docker build compatibility; no effect", "dfbuild runs no containers", true},
	{"network", "accepted for docker build compatibility; no effect", "dfbuild runs no containers", false},
	{"add-host", "accepted for docker build compatibility; no effect (repeatable)", "dfbuild runs no containers", false},
	{"ulimit", "accepted for docker build compatibility; no effect (repeatable)", "dfbuild runs no containers", false},
	{"shm-size", "accepted for docker build compatibility; no effect", "dfbuild runs no containers", false},
}

func addOutputFlags(f *pflag.FlagSet, o *outputOptions) {
	f.BoolVar(&o.load, "load", false, "load the image into the Docker Engine that DOCKER_HOST or the current docker context names, streaming it with no file in between; no archive is written unless -o names one")
	f.BoolVarP(&o.quiet, "quiet", "q", false, "print only the image ID on standard output, and no progress")
	for _, n := range noopFlags {
		v := &noopValue{name: n.name, isBool: n.isBool, seen: &o.noops}
		fl := f.VarPF(v, n.name, "", n.usage)
		if n.isBool {
			fl.NoOptDefVal = "true"
		}
	}
}

// noopValue takes a flag's value with docker build's syntax, keeps nothing of it,
// and remembers that the flag was given.
type noopValue struct {
	name   string
	isBool bool
	value  string
	seen   *[]string
}

func (v *noopValue) Set(s string) error {
	if v.isBool {
		if _, err := strconv.ParseBool(s); err != nil {
			return fmt.Errorf("expected true or false")
		}
	}
	v.value = s
	for _, n := range *v.seen {
		if n == v.name {
			return nil
		}
	}
	*v.seen = append(*v.seen, v.name)
	return nil
}

func (v *noopValue) String() string { return v.value }

func (v *noopValue) Type() string {
	if v.isBool {
		return "bool"
	}
	return "string"
}

// IsBoolFlag lets pflag take "--rm" alone.
func (v *noopValue) IsBoolFlag() bool { return v.isBool }

// noopNotes are the lines to print for the no-op flags given.
func noopNotes(given []string) []string {
	var out []string
	for _, g := range given {
		for _, n := range noopFlags {
			if n.name == g {
				out = append(out, fmt.Sprintf("--%s has no effect: %s", n.name, n.why))
			}
		}
	}
	return out
}

// sinks says where the image goes, decided before the build starts.
type sinks struct {
	file   bool // an archive or directory at p.dest, or the archive on standard output
	stdout bool // the archive is standard output
	engine *dockerengine.Client
}

// checkOutputs checks the output flags together and decides the sinks. With --load
// and no -o nothing is written; with both, the image goes to both, as buildx (with
// BuildKit 0.13 and later) exports to each output it is given.
func checkOutputs(o buildOptions, p *plan) (sinks, error) {
	// An archive is written by default, unless the image goes to the engine or a
	// registry and -o names no file.
	s := sinks{file: p.fileNamed || (!o.out.load && p.push == nil)}
	if !s.file {
		if o.append {
			return s, usagef("--append needs an archive to add to: name it with -o")
		}
		p.dest = ""
		return s, nil
	}
	if p.dest == stdoutDest {
		if p.typ == outputDir {
			return s, usagef("--output %q: type=dir cannot be written to standard output", o.output)
		}
		if o.append {
			return s, usagef("--append cannot add to standard output: name an archive with -o")
		}
		s.stdout = true
	}
	return s, nil
}

// connectEngine finds the engine for --load and makes sure it answers before the
// build starts, so a missing daemon costs no work.
func connectEngine(ctx context.Context) (*dockerengine.Client, error) {
	c, err := dockerengine.FromEnv()
	if err != nil {
		return nil, fmt.Errorf("--load: %w", err)
	}
	if _, err := c.APIVersion(ctx); err != nil {
		return nil, fmt.Errorf("--load: %w", err)
	}
	return c, nil
}

// export writes the built image to every sink and reports it: the image ID and
// tags on stdout (only the ID with -q), or on stderr when stdout is the archive.
func export(ctx context.Context, stdout, stderr io.Writer, o buildOptions, p *plan, s sinks, prog *progress, res *interp.Result) error {
	entry := dockerarchive.Entry{Image: res.Image, Tags: p.tags}
	var names []string
	for _, t := range p.tags {
		names = append(names, t.Full)
	}
	var written *dockerarchive.Result
	label := p.dest
	if s.file {
		entries := []dockerarchive.Entry{entry}
		if !s.stdout {
			unlock, err := lockOutput(ctx, p.dest, prog)
			if err != nil {
				return err
			}
			defer unlock()
		}
		if o.append {
			if _, err := os.Stat(p.dest); err == nil {
				// The one reader of every image (inspect.Open), as FROM and inspect read.
				old, closeOld, err := inspect.ReadEntries(p.dest)
				if err != nil {
					return fmt.Errorf("reading %s to append to it: %w", p.dest, err)
				}
				defer closeOld()
				entries = dockerarchive.Merge(old, entry)
			}
		}
		if s.stdout {
			label = "standard output"
		}
		tctx := dockerarchive.WithTrace(ctx, prog.trace(label, len(entries)-1, res.LayerSteps))
		var err error
		switch {
		case s.stdout:
			written, err = dockerarchive.WriteStream(tctx, stdout, entries)
		case p.typ == outputDir:
			written, err = dockerarchive.WriteDir(tctx, p.dest, entries)
		default:
			written, err = dockerarchive.WriteFile(tctx, p.dest, entries)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", label, err)
		}
	}
	var loaded []string
	if s.engine != nil {
		engineLabel := "the Docker Engine at " + s.engine.Host()
		var err error
		if s.file {
			prog.note("loading into " + engineLabel)
			loaded, err = loadInto(ctx, s.engine, o, p, entry)
		} else {
			label = engineLabel
			tctx := dockerarchive.WithTrace(ctx, prog.trace(label, 0, res.LayerSteps))
			loaded, err = s.engine.LoadFrom(ctx, func(w io.Writer) error {
				var err error
				written, err = dockerarchive.WriteStream(tctx, w, []dockerarchive.Entry{entry})
				return err
			})
		}
		if err != nil {
			return fmt.Errorf("--load: %w", err)
		}
	}
	var pushed *registry.Pushed
	if p.push != nil {
		prog.note("pushing")
		var err error
		if pushed, err = p.pushResult(ctx, res); err != nil {
			return err
		}
	}
	id, err := res.Image.ID()
	if err != nil {
		return err
	}
	if err := writeBuildRecords(o, id, written, pushed, names); err != nil {
		return err
	}
	prog.finish(id, names, label)

	// Standard output carries the archive itself with -o -: what would be printed
	// there goes to standard error.
	out := stdout
	if s.stdout {
		out = stderr
	}
	if o.out.quiet {
		fmt.Fprintln(out, id)
		return nil
	}
	fmt.Fprintf(out, "Image %s\n", id)
	for _, t := range p.tags {
		fmt.Fprintf(out, "Tagged %s\n", t.Familiar)
	}
	for _, l := range loaded {
		fmt.Fprintln(out, l)
	}
	if pushed != nil {
		for _, r := range pushed.Refs {
			fmt.Fprintf(out, "Pushed %s\n", r)
		}
	}
	switch {
	case !s.file || s.stdout:
	case p.typ == outputDir:
		fmt.Fprintf(out, "Wrote %s (%d image%s)\n", p.dest, len(written.Images), plural(len(written.Images)))
		fmt.Fprintf(out, "Load it with: tar -cf image.tar -C %s . && docker load -i image.tar\n", p.dest)
	default:
		fmt.Fprintf(out, "Wrote %s (%d image%s)\n", p.dest, len(written.Images), plural(len(written.Images)))
		if s.engine == nil {
			fmt.Fprintf(out, "Load it with: docker load -i %s\n", p.dest)
		}
	}
	return nil
}

// loadInto loads the new image when an output was written too: from the archive
// file when it holds just this image, so the layers are not made again, and
// otherwise streamed afresh.
func loadInto(ctx context.Context, engine *dockerengine.Client, o buildOptions, p *plan, entry dockerarchive.Entry) ([]string, error) {
	if p.typ == outputDocker && p.dest != stdoutDest && !o.append {
		f, err := os.Open(p.dest)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return engine.Load(ctx, f)
	}
	return engine.LoadFrom(ctx, func(w io.Writer) error {
		_, err := dockerarchive.WriteStream(ctx, w, []dockerarchive.Entry{entry})
		return err
	})
}

// note prints one line of the export step in the plain and tty displays.
func (p *progress) note(msg string) {
	if p.mode == "plain" || p.mode == "tty" {
		if p.mode == "tty" {
			fmt.Fprint(p.w, "\r\x1b[K")
		}
		fmt.Fprintf(p.w, "#%d %s\n", p.next, msg)
	}
}

// notice prints a note about the command line: a line on stderr, or a warning event
// with --progress=json.
func (p *progress) notice(msg string) {
	if p.mode == "json" {
		p.json(map[string]any{"event": "warning", "message": msg})
		return
	}
	fmt.Fprintln(p.w, "dfbuild: "+msg)
}
