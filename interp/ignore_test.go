package interp_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/interp"
)

// ParseIgnoreFile keeps each pattern's line: a byte order mark goes from the first
// line only, as ignorefile.ReadAll strips it, and CRLF line ends are dropped.
func TestParseIgnoreFileLines(t *testing.T) {
	const bom = "\xef\xbb\xbf"
	in := bom + "# comment\r\n\r\n  /a/b/../c  \r\n!keep\r\n" + bom + "x\r\n"
	got, err := interp.ParseIgnoreFile(".dockerignore", strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []interp.IgnorePattern{{Pattern: "a/c", Line: 3}, {Pattern: "!keep", Line: 4}, {Pattern: bom + "x", Line: 5}}
	if !reflect.DeepEqual(got.Patterns, want) {
		t.Errorf("got %+v, want %+v", got.Patterns, want)
	}
}

func TestParseIgnoreFileErrors(t *testing.T) {
	for in, want := range map[string]string{
		"a\n!\n":   `x/.dockerignore:2: invalid pattern "!": illegal exclusion pattern: "!"`,
		"\n\n[a\n": `x/.dockerignore:3: invalid pattern "[a": syntax error in pattern`,
		"ok\n! \n": `x/.dockerignore:2: invalid pattern "!": illegal exclusion pattern: "!"`,
		"a\\\n":    `x/.dockerignore:1: invalid pattern "a\\": syntax error in pattern`,
	} {
		_, err := interp.ParseIgnoreFile("x/.dockerignore", strings.NewReader(in))
		if err == nil || err.Error() != want {
			t.Errorf("%q: got %v, want %s", in, err, want)
		}
	}
}
