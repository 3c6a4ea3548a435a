package parser

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Dump returns a stable, readable text form of a parsed file, for golden tests and
// debugging. It is meant to be read by people and compared byte for byte, not
// parsed back.
//
// The first line gives the escape character, then each warning gets a line, then
// each instruction gets one line, in file order:
//
//	escape "\\"
//	warning "Dockerfile:4: Empty continuation line found in: COPY a b"
//	1 ARG args=["VERSION=1"] src="ARG VERSION=1"
//	2 FROM stage=0 image="alpine" name="build" platform="linux/amd64" src="..."
//	3-5 COPY sources=["<<EOF"] dest="/a" heredoc=EOF,expand:"hi\n" chown="1:2" link src="..."
//	6 CMD exec=["a" "b"] src="..."
//	7 ENV pairs=["A=1" "B=\"x y\""] src="..."
//	8 HEALTHCHECK test=["CMD-SHELL" "curl -f http://x/"] interval=5s retries=3 src="..."
//	9 ONBUILD expr="COPY . /app" trigger={COPY sources=["."] dest="/app"} src="..."
//
// An instruction line starts with its line range ("3" or "3-5") and keyword. The
// fields that follow are the instruction's typed fields in a fixed order; strings are
// Go-quoted, lists print as ["a" "b"], and a flag that is not set is left out (true
// booleans print as their bare name). CMD and ENTRYPOINT print exec=[...] for the
// JSON form and shell=[...] for the shell form. ENV and LABEL print their pairs as
// written, and "legacy" for the "KEY value" form. HEALTHCHECK prints only the
// durations and retries that are set. ONBUILD prints the stored trigger text and,
// in braces, the trigger parsed as an instruction. Every line ends with the
// instruction's source text. Global ARGs come first; FROM lines carry the stage's
// index and name.
func Dump(f *File) string {
	var b strings.Builder
	fmt.Fprintf(&b, "escape %q\n", string(f.Escape))
	for _, w := range f.Warnings {
		fmt.Fprintf(&b, "warning %q\n", w)
	}
	for _, in := range f.MetaArgs {
		dumpInstruction(&b, in)
	}
	for i, s := range f.Stages {
		dumpFrom(&b, i, s.From)
		for _, in := range s.Instructions {
			dumpInstruction(&b, in)
		}
	}
	return b.String()
}

func dumpFrom(b *strings.Builder, stage int, in *From) {
	if in == nil {
		fmt.Fprintf(b, "? FROM stage=%d (missing)\n", stage)
		return
	}
	d := dumpLine{b: b}
	d.start(in)
	d.field("stage", strconv.Itoa(stage))
	d.str("image", in.Image, true)
	d.str("name", in.Name, false)
	d.str("platform", in.Platform, false)
	d.end(in)
}

func dumpInstruction(b *strings.Builder, in Instruction) {
	d := dumpLine{b: b}
	d.start(in)
	d.fields(in)
	d.end(in)
}

// fields writes the typed fields of in.
func (d dumpLine) fields(in Instruction) {
	switch in := in.(type) {
	case *From:
		// Only reached for a FROM outside Stages, which Parse never produces.
		d.str("image", in.Image, true)
		d.str("name", in.Name, false)
		d.str("platform", in.Platform, false)
	case *Copy:
		d.list("sources", in.Sources)
		d.str("dest", in.Dest, true)
		for _, h := range in.Heredocs {
			name := h.Name
			if h.Expand {
				name += ",expand"
			}
			d.field("heredoc", name+":"+strconv.Quote(h.Content))
		}
		d.str("from", in.From, false)
		d.str("chown", in.Chown, false)
		d.str("chmod", in.Chmod, false)
		d.flag("link", in.Link)
		d.flag("parents", in.Parents)
		if len(in.Exclude) > 0 {
			d.list("exclude", in.Exclude)
		}
		d.str("checksum", in.Checksum, false)
		d.str("unpack", in.Unpack, false)
		d.flag("keep-git-dir", in.KeepGit)
	case *Command:
		form := "exec"
		if in.ShellForm {
			form = "shell"
		}
		d.list(form, in.Args)
	case *Run:
	case *Arg:
		var words []string
		for _, a := range in.Args {
			w := a.Key
			if a.HasValue {
				w += "=" + a.Value
			}
			words = append(words, w)
		}
		d.list("args", words)
	case *Env:
		d.pairs(in.Pairs)
		d.flag("legacy", in.Legacy)
	case *Label:
		d.pairs(in.Pairs)
		d.flag("legacy", in.Legacy)
	case *Workdir:
		d.str("path", in.Path, true)
	case *User:
		d.str("user", in.User, true)
	case *Expose:
		d.list("ports", in.Ports)
	case *Volume:
		d.list("paths", in.Paths)
	case *StopSignal:
		d.str("signal", in.Signal, true)
	case *Shell:
		d.list("shell", in.Shell)
	case *Healthcheck:
		d.list("test", in.Test)
		for _, f := range []struct {
			name string
			v    time.Duration
		}{{"interval", in.Interval}, {"timeout", in.Timeout}, {"start-period", in.StartPeriod}, {"start-interval", in.StartInterval}} {
			if f.v != 0 {
				d.field(f.name, f.v.String())
			}
		}
		if in.Retries != 0 {
			d.field("retries", strconv.Itoa(in.Retries))
		}
	case *Onbuild:
		d.str("expr", in.Expression, true)
		if in.Trigger != nil {
			fmt.Fprintf(d.b, " trigger={%s", in.Trigger.Keyword())
			d.fields(in.Trigger)
			d.b.WriteString("}")
		}
	case *Maintainer:
		d.str("name", in.Name, true)
	default:
		d.field("type", fmt.Sprintf("%T", in))
	}
}

// dumpLine writes one instruction line of a dump.
type dumpLine struct{ b *strings.Builder }

func (d dumpLine) start(in Instruction) {
	loc := in.Location()
	if loc.EndLine > loc.Line {
		fmt.Fprintf(d.b, "%d-%d %s", loc.Line, loc.EndLine, in.Keyword())
	} else {
		fmt.Fprintf(d.b, "%d %s", loc.Line, in.Keyword())
	}
}

func (d dumpLine) end(in Instruction) {
	fmt.Fprintf(d.b, " src=%q\n", in.Source())
}

func (d dumpLine) field(name, value string) {
	fmt.Fprintf(d.b, " %s=%s", name, value)
}

// str writes name="value", leaving it out when value is empty unless always is set.
func (d dumpLine) str(name, value string, always bool) {
	if value != "" || always {
		d.field(name, strconv.Quote(value))
	}
}

func (d dumpLine) flag(name string, set bool) {
	if set {
		fmt.Fprintf(d.b, " %s", name)
	}
}

// pairs writes the KEY=VALUE words of ENV and LABEL, values as written.
func (d dumpLine) pairs(kvs []KeyValue) {
	words := make([]string, len(kvs))
	for i, kv := range kvs {
		words[i] = kv.Key + "=" + kv.Value
	}
	d.list("pairs", words)
}

func (d dumpLine) list(name string, l []string) {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	d.field(name, "["+strings.Join(q, " ")+"]")
}
