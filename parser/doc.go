// Package parser turns a Dockerfile into dfbuild's typed instructions.
//
// It wraps BuildKit's Dockerfile parser (github.com/moby/buildkit/frontend/dockerfile/parser)
// for the raw syntax — line continuations, comments, parser directives, JSON forms and
// heredocs — and converts each node into one of the instruction types in this package,
// keeping the instruction's original text and its line range. BuildKit's shell lexer does
// variable expansion (Expander); dfbuild never has a lexer of its own.
//
// Invariants:
//   - Every error this package returns is an *Error that names the Dockerfile and the line
//     ("Dockerfile:3: COPY requires at least two arguments ...").
//   - Parse never expands variables and never touches the filesystem; it only checks
//     syntax. What an instruction means is the interpreter's business.
//   - Instructions are grouped into stages: everything before the first FROM is a
//     global ARG (or an error), and each FROM starts a stage.
//
// Nothing in this package is safe for concurrent use by several goroutines unless stated.
package parser
