package parser_test

import (
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/parser"
)

// Here-document bodies expand as a shell expands an unquoted here-document: variables
// and "\" escapes are processed, quotes are ordinary characters.
func TestExpandHeredoc(t *testing.T) {
	env := []string{"NAME=world"}
	cases := []struct{ body, want string }{
		{"hello $NAME\n", "hello world\n"},
		{"echo \"$NAME\" '$NAME' \\$NAME \\\\ ${NAME:-x}\n", "echo \"world\" 'world' $NAME \\ world\n"},
		{"trailing backslash \\", "trailing backslash "},
		{"quotes \" and ' alone\n", "quotes \" and ' alone\n"},
		{"${UNSET:-\"default\"} ${NAME:+'alt'} ${NAME#w}\n", "\"default\" 'alt' orld\n"},
		{"`backtick` \\` $$ $1\n", "`backtick` `  \n"},
		// testCopyHeredocSpecialSymbols in BuildKit: a lone backslash line is dropped.
		{"\\\n", "\n"},
	}
	for _, c := range cases {
		got, err := parser.ExpandHeredoc(c.body, env)
		if err != nil || got != c.want {
			t.Errorf("ExpandHeredoc(%q) = %q, %v; want %q", c.body, got, err, c.want)
		}
	}
	if _, err := parser.ExpandHeredoc("${NAME:?gone}${UNSET:?is unset}", env); err == nil {
		t.Error("${UNSET:?msg} expanded without an error")
	}
}

// Doubling a variable line after line ("ENV a=$a$a") stops with ErrWordTooLong once
// a word would pass MaxWordSize, and no value past the limit is ever made.
func TestWordLimitDoubling(t *testing.T) {
	ex := parser.NewExpander('\\')
	a := "x"
	for i := 0; i < 40; i++ {
		x, err := ex.Word("$a$a", []string{"a=" + a})
		if err != nil {
			if !errors.Is(err, parser.ErrWordTooLong) {
				t.Fatalf("line %d: %v, want ErrWordTooLong", i+1, err)
			}
			if len(a)*2 <= parser.MaxWordSize {
				t.Fatalf("refused a word of %d bytes", len(a)*2)
			}
			return
		}
		if len(x) > parser.MaxWordSize+4 {
			t.Fatalf("line %d: a word of %d bytes, no error", i+1, len(x))
		}
		a = x
	}
	t.Fatalf("40 doublings gave a word of %d bytes, no error", len(a))
}

// The limit holds before the lexer builds the result: a pattern substitution whose
// every match becomes a large replacement is refused without its product being made.
func TestWordLimitBoundsGrowth(t *testing.T) {
	big := strings.Repeat("y", 8<<10)
	env := []string{"a=" + big, "PATH=/usr/bin:/bin"}
	ex := parser.NewExpander('\\')
	cases := []struct {
		word string
		err  bool
	}{
		{"${a//?/${a}}", true},
		{"${a//?/$a$a}", true},
		{"${a/y/${a//?/${a}}}", true},
		{"$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a", true}, // 17 * 8 KiB
		{"$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a$a", false},  // exactly 128 KiB
		{"${PATH//:/ }", false},
		{"${PATH//\\}/:}", false},
	}
	for _, c := range cases {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		got, err := ex.Word(c.word, env)
		runtime.ReadMemStats(&after)
		if c.err != (err != nil) || err != nil && !errors.Is(err, parser.ErrWordTooLong) {
			t.Errorf("Word(%.30q) = %d bytes, %v; want error %v", c.word, len(got), err, c.err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 8*parser.MaxWordSize {
			t.Errorf("Word(%.30q) allocated %d bytes", c.word, n)
		}
	}
	// A long here-document may still grow by up to the limit.
	body := strings.Repeat("z", parser.MaxWordSize+10) + "$PATH"
	if _, err := parser.ExpandHeredoc(body, env); err != nil {
		t.Errorf("a long body: %v", err)
	}
	if _, err := parser.ExpandHeredoc(body+strings.Repeat("$a", 17), env); !errors.Is(err, parser.ErrWordTooLong) {
		t.Errorf("a body growing by more than the limit: %v", err)
	}
}

// A word that is not UTF-8 is an error the caller can place at its line, not a
// message the lexer prints to standard error (issue 11).
func TestWordInvalidUTF8(t *testing.T) {
	ex := parser.NewExpander('\\')
	for _, w := range []string{"/a\xff/", "\xfe", "ok/\xc3"} {
		if _, err := ex.Word(w, nil); !errors.Is(err, parser.ErrInvalidUTF8) {
			t.Errorf("Word(%q): %v, want ErrInvalidUTF8", w, err)
		}
		if _, err := ex.Words(w, nil); !errors.Is(err, parser.ErrInvalidUTF8) {
			t.Errorf("Words(%q): %v, want ErrInvalidUTF8", w, err)
		}
		if _, err := parser.ExpandHeredoc(w, nil); !errors.Is(err, parser.ErrInvalidUTF8) {
			t.Errorf("ExpandHeredoc(%q): %v, want ErrInvalidUTF8", w, err)
		}
	}
	if got, err := ex.Word("/é/", nil); err != nil || got != "/é/" {
		t.Errorf("Word(/é/) = %q, %v", got, err)
	}
}
