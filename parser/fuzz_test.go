package parser_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/parser"
)

// FuzzParse feeds arbitrary bytes to Parse, seeded with every Dockerfile under
// testdata. Parse must not panic; every error must be an *Error at a line of the
// input (0 for whole-file errors); and Dump must handle whatever Parse returns.
func FuzzParse(f *testing.F) {
	seeds, err := filepath.Glob(filepath.Join("testdata", "*", "*", "Dockerfile"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
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
