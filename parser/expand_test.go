package parser_test

import (
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
