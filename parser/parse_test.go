package parser_test

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/parser"
)

var update = flag.Bool("update", false, "rewrite the want.dump and want.err files of testdata/ok and testdata/bad")

// caseDirs returns the case directories under testdata/kind, each holding a Dockerfile.
func caseDirs(t *testing.T, kind string) []string {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join("testdata", kind, "*", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if len(dirs) == 0 {
		t.Fatalf("no cases in testdata/%s", kind)
	}
	for i := range dirs {
		dirs[i] = filepath.Dir(dirs[i])
	}
	return dirs
}

// golden compares got with the file want, or rewrites it under -update.
func golden(t *testing.T, want string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(want, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(w, got) {
		t.Errorf("%s differs:\n--- got\n%s--- want\n%s", want, got, w)
	}
}

func parseFile(t *testing.T, file string) (*parser.File, error) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	return parser.Parse(f, "Dockerfile")
}

// TestParseOK parses testdata/ok/<case>/Dockerfile and compares Dump's output with
// want.dump.
func TestParseOK(t *testing.T) {
	for _, dir := range caseDirs(t, "ok") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			f, err := parseFile(t, filepath.Join(dir, "Dockerfile"))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			golden(t, filepath.Join(dir, "want.dump"), []byte(parser.Dump(f)))
		})
	}
}

// TestParseBad parses testdata/bad/<case>/Dockerfile, which must fail with an *Error
// whose text is want.err.
func TestParseBad(t *testing.T) {
	for _, dir := range caseDirs(t, "bad") {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			f, err := parseFile(t, filepath.Join(dir, "Dockerfile"))
			if err == nil {
				t.Fatalf("Parse succeeded:\n%s", parser.Dump(f))
			}
			if f != nil {
				t.Errorf("Parse returned a file with its error")
			}
			var pe *parser.Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *parser.Error: %v", err, err)
			}
			if pe.File != "Dockerfile" {
				t.Errorf("error names file %q, want Dockerfile", pe.File)
			}
			golden(t, filepath.Join(dir, "want.err"), []byte(err.Error()+"\n"))
		})
	}
}

// TestParseLongLine checks BuildKit's line-length limit is reported at the long line.
// The input is built here rather than kept in testdata because it is 64 KiB.
func TestParseLongLine(t *testing.T) {
	src := "FROM scratch\nCOPY a /a\nCOPY " + strings.Repeat("x", 70000) + " /b\n"
	_, err := parser.Parse(strings.NewReader(src), "Dockerfile")
	const want = "Dockerfile:3: dockerfile line greater than max allowed size of 65535"
	if err == nil || err.Error() != want {
		t.Errorf("got error %v, want %s", err, want)
	}
}

// TestLocation checks locations and source text, which the dumps show but which
// interp relies on directly.
func TestLocation(t *testing.T) {
	src := "ARG A\nFROM scratch AS one\n\nCOPY a \\\n  b /c\nCOPY <<EOF /d\nx\nEOF\nCMD [\"x\"]\n"
	f, err := parser.Parse(strings.NewReader(src), "build/Dockerfile.web")
	if err != nil {
		t.Fatal(err)
	}
	if len(f.MetaArgs) != 1 || len(f.Stages) != 1 || len(f.Stages[0].Instructions) != 3 {
		t.Fatalf("unexpected shape:\n%s", parser.Dump(f))
	}
	want := []parser.Location{
		{File: "build/Dockerfile.web", Line: 1, EndLine: 1},
		{File: "build/Dockerfile.web", Line: 2, EndLine: 2},
		{File: "build/Dockerfile.web", Line: 4, EndLine: 5},
		{File: "build/Dockerfile.web", Line: 6, EndLine: 8},
		{File: "build/Dockerfile.web", Line: 9, EndLine: 9},
	}
	got := []parser.Location{f.MetaArgs[0].Location(), f.Stages[0].From.Location()}
	for _, in := range f.Stages[0].Instructions {
		got = append(got, in.Location())
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("instruction %d: location %+v, want %+v", i, got[i], want[i])
		}
	}
	err = parser.At(f.Stages[0].Instructions[0], errors.New("copying: boom"))
	if err.Error() != "build/Dockerfile.web:4: COPY: copying: boom" {
		t.Errorf("At: %v", err)
	}
	if again := parser.At(f.Stages[0].Instructions[1], err); again != err {
		t.Errorf("At replaced an existing location: %v", again)
	}
	if parser.At(f.Stages[0].Instructions[0], nil) != nil {
		t.Errorf("At(nil) is not nil")
	}
}

// TestErrorFormat checks the whole-file form of Error.
func TestErrorFormat(t *testing.T) {
	err := parser.Errorf("-", 0, "no %s", "FROM")
	if err.Error() != "-: no FROM" {
		t.Errorf("got %q", err)
	}
	inner := errors.New("inner")
	if !errors.Is(&parser.Error{File: "f", Line: 2, Err: inner}, inner) {
		t.Errorf("Error does not unwrap")
	}
}

// TestExpander runs the Expander over cases of the kind BuildKit's own lexer tests
// cover: defaults and alternatives, quoting, escapes, and a backtick escape character.
func TestExpander(t *testing.T) {
	env := []string{"HOME=/root", "EMPTY=", "TWO=a b", "DIR=C:\\dir"}
	tests := []struct {
		escape rune
		in     string
		want   string // "ERR" means an error is expected
	}{
		{'\\', "plain", "plain"},
		{'\\', "$HOME/x", "/root/x"},
		{'\\', "${HOME}x", "/rootx"},
		{'\\', "$UNSET/x", "/x"},
		{'\\', "${UNSET:-fallback}", "fallback"},
		{'\\', "${EMPTY:-fallback}", "fallback"},
		{'\\', "${EMPTY-fallback}", ""},
		{'\\', "${UNSET-fallback}", "fallback"},
		{'\\', "${HOME:-fallback}", "/root"},
		{'\\', "${UNSET:-${HOME}}", "/root"},
		{'\\', "${HOME:+set}", "set"},
		{'\\', "${UNSET:+set}", ""},
		{'\\', "${EMPTY:+set}", ""},
		{'\\', "${EMPTY+set}", "set"},
		{'\\', "${HOME#/r}", "oot"},
		{'\\', "${HOME%t}", "/roo"},
		{'\\', "${UNSET:?must be set}", "ERR"},
		{'\\', "${HOME", "ERR"},
		{'\\', "${}", "ERR"},
		{'\\', `'$HOME'`, "$HOME"},
		{'\\', `"$HOME"`, "/root"},
		{'\\', `"a 'b' c"`, "a 'b' c"},
		{'\\', `\$HOME`, "$HOME"},
		{'\\', `"\$HOME"`, "$HOME"},
		{'\\', `a\ b`, "a b"},
		{'\\', `'unterminated`, "ERR"},
		{'\\', "$TWO", "a b"},
		{'`', "`$HOME", "$HOME"},
		{'`', `C:\dir\$HOME`, `C:\dir\/root`},
		{'`', "$DIR\\x", `C:\dir\x`},
		{'`', "a` b", "a b"},
	}
	for _, tt := range tests {
		got, err := parser.NewExpander(tt.escape).Word(tt.in, env)
		if tt.want == "ERR" {
			if err == nil {
				t.Errorf("Word(%q, escape %c) = %q, want an error", tt.in, tt.escape, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("Word(%q, escape %c) = %q, %v; want %q", tt.in, tt.escape, got, err, tt.want)
		}
	}

	words := []struct {
		in   string
		want []string
	}{
		{"80 443/tcp", []string{"80", "443/tcp"}},
		{"$TWO c", []string{"a", "b", "c"}},
		{`"$TWO" c`, []string{"a b", "c"}},
		{"${UNSET:-x y}", []string{"x", "y"}},
		{"", nil},
	}
	for _, tt := range words {
		got, err := parser.NewExpander('\\').Words(tt.in, env)
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") || len(got) != len(tt.want) {
			t.Errorf("Words(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

// TestParseTrigger parses triggers as images store them in Config.OnBuild: each is
// located at the line given, and errors are *Errors at that line.
func TestParseTrigger(t *testing.T) {
	ok := []struct {
		escape rune
		expr   string
		want   string // the dump line of the result
	}{
		{'\\', "COPY . /app", `7 COPY sources=["."] dest="/app" src="COPY . /app"`},
		{'\\', "run   echo  hi   ", `7 RUN src="run   echo  hi"`},
		{'\\', "ENV a=b   c=d", `7 ENV pairs=["a=b" "c=d"] src="ENV a=b   c=d"`},
		{'\\', "COPY <<EOF /greeting\nhello\nEOF", `7 COPY sources=["<<EOF"] dest="/greeting" heredoc=EOF,expand:"hello\n" src="COPY <<EOF /greeting"`},
		{'\\', "HEALTHCHECK --retries=2 CMD true", `7 HEALTHCHECK test=["CMD-SHELL" "true"] retries=2 src="HEALTHCHECK --retries=2 CMD true"`},
		// The escape character decides how the words of ENV are split.
		{'\\', "ENV A=x\\ y", `7 ENV pairs=["A=x\\ y"] src="ENV A=x\\ y"`},
		{'`', "ENV A=x` y", "7 ENV pairs=[\"A=x` y\"] src=\"ENV A=x` y\""},
	}
	for _, tt := range ok {
		in, err := parser.ParseTrigger("Dockerfile", 7, tt.escape, tt.expr)
		if err != nil {
			t.Errorf("ParseTrigger(%q): %v", tt.expr, err)
			continue
		}
		if loc := in.Location(); loc != (parser.Location{File: "Dockerfile", Line: 7, EndLine: 7}) {
			t.Errorf("ParseTrigger(%q): location %+v", tt.expr, loc)
		}
		f := &parser.File{Escape: tt.escape, Stages: []*parser.Stage{{Instructions: []parser.Instruction{in}}}}
		dump := parser.Dump(f)
		if got := strings.Split(dump, "\n")[2]; got != tt.want {
			t.Errorf("ParseTrigger(%q):\n got %s\nwant %s", tt.expr, got, tt.want)
		}
	}

	bad := []struct {
		expr string
		want string
	}{
		{"", `Dockerfile:7: ONBUILD trigger "": the trigger holds no instruction`},
		{"# just a comment", `Dockerfile:7: ONBUILD trigger "# just a comment": the trigger holds no instruction`},
		{"RUN a\nRUN b", `Dockerfile:7: ONBUILD trigger "RUN a\nRUN b": a trigger must be a single instruction`},
		{"FROM scratch", `Dockerfile:7: ONBUILD trigger "FROM scratch": FROM isn't allowed as an ONBUILD trigger`},
		{"ONBUILD RUN x", "Dockerfile:7: ONBUILD trigger \"ONBUILD RUN x\": chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
		{"maintainer me", `Dockerfile:7: ONBUILD trigger "maintainer me": MAINTAINER isn't allowed as an ONBUILD trigger`},
		{"COPY x", `Dockerfile:7: ONBUILD trigger "COPY x": COPY requires at least two arguments, but only one was provided. Destination could not be determined`},
		{"COPPY a b", `Dockerfile:7: ONBUILD trigger "COPPY a b": unknown instruction: COPPY (did you mean COPY?)`},
		{"COPY <<EOF /x\nbody", `Dockerfile:7: ONBUILD trigger "COPY <<EOF /x\nbody": unterminated heredoc`},
		{"SHELL sh -c", `Dockerfile:7: ONBUILD trigger "SHELL sh -c": SHELL requires the arguments to be in JSON form`},
	}
	for _, tt := range bad {
		in, err := parser.ParseTrigger("Dockerfile", 7, '\\', tt.expr)
		if err == nil {
			t.Errorf("ParseTrigger(%q) = %s, want an error", tt.expr, in.Keyword())
			continue
		}
		var pe *parser.Error
		if !errors.As(err, &pe) || pe.Line != 7 || pe.File != "Dockerfile" {
			t.Errorf("ParseTrigger(%q): error %T %+v is not an *Error at Dockerfile:7", tt.expr, err, err)
		}
		if err.Error() != tt.want {
			t.Errorf("ParseTrigger(%q):\n got %s\nwant %s", tt.expr, err, tt.want)
		}
	}
}

// TestOnbuildRoundTrip checks that every ONBUILD of the golden cases stores a trigger
// that ParseTrigger reads back as the instruction Parse found in it.
func TestOnbuildRoundTrip(t *testing.T) {
	n := 0
	for _, dir := range caseDirs(t, "ok") {
		f, err := parseFile(t, filepath.Join(dir, "Dockerfile"))
		if err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		for _, s := range f.Stages {
			for _, in := range s.Instructions {
				ob, ok := in.(*parser.Onbuild)
				if !ok {
					continue
				}
				n++
				tr, err := parser.ParseTrigger("Dockerfile", ob.Location().Line, '\\', ob.Expression)
				if err != nil {
					t.Errorf("%s: %q: %v", dir, ob.Expression, err)
					continue
				}
				got := &parser.File{Stages: []*parser.Stage{{Instructions: []parser.Instruction{tr}}}}
				want := &parser.File{Stages: []*parser.Stage{{Instructions: []parser.Instruction{ob.Trigger}}}}
				if parser.Dump(got) != parser.Dump(want) {
					t.Errorf("%s: %q parses as\n%s\nbut Parse found\n%s", dir, ob.Expression, parser.Dump(got), parser.Dump(want))
				}
			}
		}
	}
	if n == 0 {
		t.Fatal("no ONBUILD in testdata/ok")
	}
}
