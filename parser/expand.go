package parser

import (
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Expander expands $VAR and ${VAR...} in instruction words with BuildKit's shell lexer,
// honouring the Dockerfile's escape character. It keeps BuildKit's lexer behind this
// package's API so that only parser imports BuildKit.
type Expander struct {
	lex *shell.Lex
}

// NewExpander returns an expander for a Dockerfile whose escape character is escape.
func NewExpander(escape rune) *Expander {
	return &Expander{lex: shell.NewLex(escape)}
}

// Word expands one word: quotes are removed and variables replaced, but the result
// is not split on white space (what COPY sources and the destination get).
func (e *Expander) Word(word string, env []string) (string, error) {
	res, err := e.lex.ProcessWordWithMatches(word, shell.EnvsFromSlice(env))
	if err != nil {
		return "", err
	}
	return res.Result, nil
}

// Words expands word and splits the result into words, as EXPOSE and the
// whitespace-separated forms do.
func (e *Expander) Words(word string, env []string) ([]string, error) {
	return e.lex.ProcessWords(word, shell.EnvsFromSlice(env))
}

// ExpandHeredoc expands the body of a here-document whose delimiter was not quoted, as
// BuildKit does: variables are replaced and "\" escapes, but quotes stay as they are
// (the lexer's SkipProcessQuotes mode), and "\" is the escape character whatever the
// Dockerfile's is, because BuildKit gives here-documents a lexer of their own.
func ExpandHeredoc(body string, env []string) (string, error) {
	lex := shell.NewLex('\\')
	lex.SkipProcessQuotes = true
	res, _, err := lex.ProcessWord(body, shell.EnvsFromSlice(env))
	return res, err
}
