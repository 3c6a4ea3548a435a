package parser

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// onbuildPrefix is what BuildKit's parseOnBuild strips from the instruction's
// original text to get the trigger it stores.
var onbuildPrefix = regexp.MustCompile(`(?i)^\s*ONBUILD\s*`)

// onbuild converts ONBUILD as BuildKit's parseOnBuild does, and also parses the
// trigger the way it will be parsed when it fires.
func onbuild(b base, node *bkparser.Node) (*Onbuild, error) {
	if node.Next == nil || len(node.Next.Children) == 0 {
		return nil, errors.New("ONBUILD requires at least one argument")
	}
	if err := newFlags("ONBUILD", node.Flags).parse(); err != nil {
		return nil, err
	}
	if err := allowedTrigger(node.Next.Children[0].Value); err != nil {
		return nil, err
	}
	// The original text, not the trimmed source: BuildKit keeps trailing blanks, and
	// heredoc bodies follow it with their terminators so the trigger parses again.
	expr := onbuildPrefix.ReplaceAllString(node.Original, "")
	if len(node.Heredocs) > 0 {
		var sb strings.Builder
		sb.WriteString(expr)
		for _, h := range node.Heredocs {
			sb.WriteByte('\n')
			sb.WriteString(h.Content)
			sb.WriteString(h.Name)
		}
		expr = sb.String()
	}
	// BuildKit parses a stored trigger on its own, so with the default escape
	// character whatever this file's escape directive says.
	trigger, err := parseTrigger(b.loc.File, b.loc.Line, bkparser.DefaultEscapeToken, expr)
	if err != nil {
		return nil, fmt.Errorf("ONBUILD trigger %q: %w", expr, err)
	}
	return &Onbuild{base: b, Expression: expr, Trigger: trigger}, nil
}

// allowedTrigger refuses the instructions BuildKit refuses as triggers.
func allowedTrigger(keyword string) error {
	kw := strings.ToUpper(strings.TrimSpace(keyword))
	switch kw {
	case "ONBUILD":
		return errors.New("chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
	case "MAINTAINER", "FROM":
		return fmt.Errorf("%s isn't allowed as an ONBUILD trigger", kw)
	}
	return nil
}

// ParseTrigger parses one ONBUILD trigger, as an image stores it in Config.OnBuild,
// into a typed instruction located at line of file: the FROM line whose base image
// carries the trigger. Errors are *Error at that line.
//
// escape is the escape character the trigger text is parsed with. BuildKit parses
// each trigger on its own, with the default escape character '\\', whatever the
// escape directives of the Dockerfiles involved; pass '\\' to do the same. Words are
// expanded later, by the interpreter, with the building Dockerfile's Expander.
func ParseTrigger(file string, line int, escape rune, expr string) (Instruction, error) {
	in, err := parseTrigger(file, line, escape, expr)
	if err != nil {
		return nil, &Error{File: file, Line: line, Err: fmt.Errorf("ONBUILD trigger %q: %w", expr, err)}
	}
	return in, nil
}

// parseTrigger is ParseTrigger with errors that carry no location.
func parseTrigger(file string, line int, escape rune, expr string) (Instruction, error) {
	src := expr
	if escape != bkparser.DefaultEscapeToken {
		src = "# escape=" + string(escape) + "\n" + expr
	}
	res, err := bkparser.Parse(strings.NewReader(src))
	if err != nil {
		err = fromBuildKit(file, err)
		var pe *Error
		if errors.As(err, &pe) {
			err = pe.Err
		}
		if err.Error() == "file with no instructions" {
			return nil, errors.New("the trigger holds no instruction")
		}
		return nil, err
	}
	if len(res.AST.Children) != 1 {
		return nil, errors.New("a trigger must be a single instruction")
	}
	node := res.AST.Children[0]
	if err := allowedTrigger(node.Value); err != nil {
		return nil, err
	}
	node.StartLine, node.EndLine = line, line
	in, err := convert(file, node)
	if err != nil {
		var pe *Error
		if errors.As(err, &pe) {
			return nil, pe.Err
		}
		return nil, err
	}
	return in, nil
}
