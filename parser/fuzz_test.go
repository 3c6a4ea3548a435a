package parser_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/parser"
)

// FuzzParse feeds arbitrary bytes to Parse, seeded with every Dockerfile under
// testdata. Parse must not panic; every error must be an *Error at a line of the
// input (0 for whole-file errors); and Dump must handle whatever Parse returns. The
// typed instructions must hold what their types promise: an ONBUILD trigger that
// ParseTrigger reads back, EXPOSE words in sorted order, no empty VOLUME path, a
// HEALTHCHECK test of a known form with valid durations.
func FuzzParse(f *testing.F) {
	for _, b := range seedDockerfiles(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := parser.Parse(strings.NewReader(string(src)), "Dockerfile")
		if err != nil {
			if file != nil {
				t.Errorf("Parse returned a file with its error %v", err)
			}
			var pe *parser.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *parser.Error: %v", err, err)
			}
			// The scanner splits on '\n' only, so this counts the lines it can see.
			lines := strings.Count(string(src), "\n") + 1
			if pe.Line < 0 || pe.Line > lines {
				t.Fatalf("error at line %d of a %d-line input: %v", pe.Line, lines, err)
			}
			if pe.File != "Dockerfile" {
				t.Fatalf("error names %q: %v", pe.File, err)
			}
			return
		}
		if len(file.Stages) == 0 || file.Stages[0].From == nil {
			t.Fatalf("Parse succeeded without a stage")
		}
		lines := strings.Count(string(src), "\n") + 1
		check := func(in parser.Instruction) {
			loc := in.Location()
			if loc.Line < 1 || loc.EndLine < loc.Line || loc.EndLine > lines {
				t.Fatalf("%s at lines %d-%d of a %d-line input", in.Keyword(), loc.Line, loc.EndLine, lines)
			}
			checkTyped(t, in)
		}
		for _, in := range file.MetaArgs {
			check(in)
		}
		for _, s := range file.Stages {
			check(s.From)
			for _, in := range s.Instructions {
				check(in)
			}
		}
		_ = parser.Dump(file)
	})
}

// checkTyped checks the invariants of the config instructions' types.
func checkTyped(t *testing.T, in parser.Instruction) {
	t.Helper()
	switch in := in.(type) {
	case *parser.Env:
		checkPairs(t, in, in.Pairs, in.Legacy)
	case *parser.Label:
		checkPairs(t, in, in.Pairs, in.Legacy)
	case *parser.Expose:
		if len(in.Ports) == 0 || !slices.IsSorted(in.Ports) {
			t.Fatalf("EXPOSE ports %q are empty or not sorted", in.Ports)
		}
	case *parser.Volume:
		if len(in.Paths) == 0 {
			t.Fatalf("VOLUME without paths")
		}
		for _, p := range in.Paths {
			if p == "" || strings.TrimSpace(p) != p {
				t.Fatalf("VOLUME path %q is empty or untrimmed", p)
			}
		}
	case *parser.Shell:
		if len(in.Shell) == 0 {
			t.Fatalf("SHELL without arguments")
		}
	case *parser.Healthcheck:
		switch {
		case len(in.Test) == 1 && in.Test[0] == "NONE":
		case len(in.Test) == 2 && in.Test[0] == "CMD-SHELL":
		case len(in.Test) >= 2 && in.Test[0] == "CMD":
		default:
			t.Fatalf("HEALTHCHECK test %q", in.Test)
		}
		for _, d := range []time.Duration{in.Interval, in.Timeout, in.StartPeriod, in.StartInterval} {
			if d != 0 && d < time.Millisecond {
				t.Fatalf("HEALTHCHECK duration %v", d)
			}
		}
		if in.Retries < 0 {
			t.Fatalf("HEALTHCHECK retries %d", in.Retries)
		}
	case *parser.Onbuild:
		if in.Trigger == nil {
			t.Fatalf("ONBUILD %q without a parsed trigger", in.Expression)
		}
		switch in.Trigger.Keyword() {
		case "ONBUILD", "FROM", "MAINTAINER":
			t.Fatalf("ONBUILD %q has a %s trigger", in.Expression, in.Trigger.Keyword())
		}
		tr, err := parser.ParseTrigger("Dockerfile", in.Location().Line, '\\', in.Expression)
		if err != nil {
			t.Fatalf("ONBUILD %q: ParseTrigger: %v", in.Expression, err)
		}
		if tr.Keyword() != in.Trigger.Keyword() {
			t.Fatalf("ONBUILD %q: ParseTrigger gives %s, Parse %s", in.Expression, tr.Keyword(), in.Trigger.Keyword())
		}
		checkTyped(t, in.Trigger)
	}
}

func checkPairs(t *testing.T, in parser.Instruction, pairs []parser.KeyValue, legacy bool) {
	t.Helper()
	if len(pairs) == 0 || (legacy && len(pairs) != 1) {
		t.Fatalf("%s with %d pairs (legacy %v)", in.Keyword(), len(pairs), legacy)
	}
	for _, kv := range pairs {
		if kv.Key == "" {
			t.Fatalf("%s with an empty key", in.Keyword())
		}
	}
}

// FuzzParseTrigger feeds arbitrary trigger text to ParseTrigger, seeded with the
// ONBUILD expressions of testdata. It must not panic, must return an *Error at the
// line it was given, and must never return an instruction that cannot be a trigger.
func FuzzParseTrigger(f *testing.F) {
	for _, b := range seedDockerfiles(f) {
		file, err := parser.Parse(strings.NewReader(string(b)), "Dockerfile")
		if err != nil {
			continue
		}
		for _, st := range file.Stages {
			for _, in := range st.Instructions {
				if ob, ok := in.(*parser.Onbuild); ok {
					f.Add(ob.Expression, false)
				}
			}
		}
	}
	f.Add("ENV A=x` y", true)
	f.Fuzz(func(t *testing.T, expr string, backtick bool) {
		escape := '\\'
		if backtick {
			escape = '`'
		}
		in, err := parser.ParseTrigger("Dockerfile", 3, escape, expr)
		if err != nil {
			var pe *parser.Error
			if !errors.As(err, &pe) || pe.File != "Dockerfile" || pe.Line != 3 {
				t.Fatalf("error %T is not an *Error at Dockerfile:3: %v", err, err)
			}
			return
		}
		if loc := in.Location(); loc.Line != 3 || loc.EndLine != 3 {
			t.Fatalf("trigger located at %+v", loc)
		}
		switch in.Keyword() {
		case "ONBUILD", "FROM", "MAINTAINER":
			t.Fatalf("%q parsed as a %s trigger", expr, in.Keyword())
		}
		checkTyped(t, in)
	})
}

// seedDockerfiles returns every Dockerfile of the golden cases, the fuzz seeds.
func seedDockerfiles(f *testing.F) [][]byte {
	files, err := filepath.Glob(filepath.Join("testdata", "*", "*", "Dockerfile"))
	if err != nil {
		f.Fatal(err)
	}
	var out [][]byte
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}
