package parser

import (
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// MaxWordSize is how many bytes expansion may add to a word: an expanded word is at
// most this long plus the length of the word as written (which lets a long
// here-document body through). It is Linux's MAX_ARG_STRLEN:
// a longer ENV entry could not reach a process through execve anyway, and without a
// limit a few lines of "ENV a=$a$a" double a value until memory runs out.
const MaxWordSize = 128 << 10

// ErrWordTooLong is the error of a word whose expansion goes past MaxWordSize.
var ErrWordTooLong = errors.New("word too long")

// Vars looks up the variables a word is expanded with. Unlike a KEY=VALUE list,
// which the lexer would index again for every word, it lets a caller keep one index
// for a whole stage.
type Vars interface {
	Get(key string) (value string, ok bool)
}

// Expander expands $VAR and ${VAR...} in instruction words with BuildKit's shell lexer,
// honouring the Dockerfile's escape character. It keeps BuildKit's lexer behind this
// package's API so that only parser imports BuildKit.
type Expander struct {
	lex    *shell.Lex
	escape rune
}

// NewExpander returns an expander for a Dockerfile whose escape character is escape.
func NewExpander(escape rune) *Expander {
	return &Expander{lex: shell.NewLex(escape), escape: escape}
}

// Word expands one word: quotes are removed and variables replaced, but the result
// is not split on white space (what COPY sources and the destination get).
func (e *Expander) Word(word string, env []string) (string, error) {
	return e.WordVars(word, sliceVars(env))
}

// WordVars is Word with the variables looked up in vars.
func (e *Expander) WordVars(word string, vars Vars) (string, error) {
	if err := checkUTF8(word); err != nil {
		return "", err
	}
	g := newBudget(word, vars, e.escape)
	res, err := e.lex.ProcessWordWithMatches(word, g)
	if err := g.check(err, len(res.Result)); err != nil {
		return "", err
	}
	return res.Result, nil
}

// Words expands word and splits the result into words, as EXPOSE and the
// whitespace-separated forms do.
func (e *Expander) Words(word string, env []string) ([]string, error) {
	return e.WordsVars(word, sliceVars(env))
}

// WordsVars is Words with the variables looked up in vars.
func (e *Expander) WordsVars(word string, vars Vars) ([]string, error) {
	if err := checkUTF8(word); err != nil {
		return nil, err
	}
	g := newBudget(word, vars, e.escape)
	ws, err := e.lex.ProcessWords(word, g)
	n := 0
	for _, w := range ws {
		n += len(w)
	}
	if err := g.check(err, n); err != nil {
		return nil, err
	}
	return ws, nil
}

// ExpandHeredoc expands the body of a here-document whose delimiter was not quoted, as
// BuildKit does: variables are replaced and "\" escapes, but quotes stay as they are
// (the lexer's SkipProcessQuotes mode), and "\" is the escape character whatever the
// Dockerfile's is, because BuildKit gives here-documents a lexer of their own.
func ExpandHeredoc(body string, env []string) (string, error) {
	return ExpandHeredocVars(body, sliceVars(env))
}

// ExpandHeredocVars is ExpandHeredoc with the variables looked up in vars.
func ExpandHeredocVars(body string, vars Vars) (string, error) {
	if err := checkUTF8(body); err != nil {
		return "", err
	}
	lex := shell.NewLex('\\')
	lex.SkipProcessQuotes = true
	g := newBudget(body, vars, '\\')
	res, _, err := lex.ProcessWord(body, g)
	if err := g.check(err, len(res)); err != nil {
		return "", err
	}
	return res, nil
}

// sliceVars indexes a KEY=VALUE list as BuildKit's lexer would.
func sliceVars(env []string) Vars { return shell.EnvsFromSlice(env) }

// budget hands the lexer the variables' values while counting the bytes it hands
// out: the lexer's result is the word plus those bytes, so refusing values past the
// limit bounds the growth before it happens rather than after. ${VAR//pat/repl}
// is the one form whose result can outgrow what it read (each match of pat becomes
// repl); a word with such forms nested n deep gets the (n+1)-th root of the limit,
// so that even the product stays within it.
type budget struct {
	vars  Vars
	limit int // of the result
	left  int // bytes the lookups may still return
	over  bool
}

// ErrInvalidUTF8 is the error of a word that is not valid UTF-8. BuildKit's lexer
// reads words as UTF-8 (text/scanner): it would put U+FFFD in place of the bytes
// and print a message with neither file nor line to standard error.
var ErrInvalidUTF8 = errors.New("invalid UTF-8")

// checkUTF8 refuses a word that is not valid UTF-8, naming the byte offset.
func checkUTF8(word string) error {
	if utf8.ValidString(word) {
		return nil
	}
	i := 0
	for i < len(word) {
		r, n := utf8.DecodeRuneInString(word[i:])
		if r == utf8.RuneError && n <= 1 {
			break
		}
		i += n
	}
	return fmt.Errorf("%w at byte %d: words are read as UTF-8, and the bytes would become U+FFFD", ErrInvalidUTF8, i)
}

func newBudget(word string, vars Vars, escape rune) *budget {
	limit := MaxWordSize + len(word)
	left := limit
	if n := replaceDepth(word, escape); n > 0 {
		// (len(word)+left)^(n+1) <= limit.
		root := 1
		for pow(root+1, n+1) <= limit {
			root++
		}
		left = max(root-len(word), 0)
	}
	return &budget{vars: vars, limit: limit, left: left}
}

func pow(b, e int) int {
	r := 1
	for range e {
		r *= b
		if r > 1<<40 {
			break
		}
	}
	return r
}

func (g *budget) Get(key string) (string, bool) {
	v, ok := g.vars.Get(key)
	if g.over {
		return "", ok
	}
	if len(v) > g.left {
		g.over = true
		return "", ok
	}
	g.left -= len(v)
	return v, ok
}

// Keys is part of the lexer's interface; its expansion never lists the variables.
func (g *budget) Keys() []string { return nil }

// check turns a lookup or a result past the limit into ErrWordTooLong, which wins
// over the lexer's own error (caused, maybe, by a value held back).
func (g *budget) check(err error, n int) error {
	if g.over || n > g.limit {
		return fmt.Errorf("%w: expansion would make it more than %d bytes longer (the limit, Linux's MAX_ARG_STRLEN)", ErrWordTooLong, MaxWordSize)
	}
	return err
}

// replaceDepth returns how deep ${NAME/...} forms nest in word, counting
// conservatively: quotes are not followed, so a form in single quotes still counts.
func replaceDepth(word string, escape rune) int {
	var open []bool // for each "${" open: is it a replacement form
	depth, most := 0, 0
	esc := byte(escape)
	if escape > 0x7f {
		esc = 0
	}
	for i := 0; i < len(word); i++ {
		switch c := word[i]; {
		case esc != 0 && c == esc:
			i++
		case c == '$' && i+1 < len(word) && word[i+1] == '{':
			j := i + 2
			for j < len(word) && (word[j] == '_' || word[j] >= '0' && word[j] <= '9' ||
				word[j]|0x20 >= 'a' && word[j]|0x20 <= 'z') {
				j++
			}
			r := j < len(word) && word[j] == '/'
			open = append(open, r)
			if r {
				depth++
				most = max(most, depth)
			}
			i = j - 1
		case c == '}' && len(open) > 0:
			if open[len(open)-1] {
				depth--
			}
			open = open[:len(open)-1]
		}
	}
	return most
}
