package parser

import (
	"errors"
	"fmt"
	"strings"
)

// Error is an error tied to a place in a Dockerfile. Its message reads
// "FILE:LINE: MESSAGE", the form compilers use, so editors can jump to it.
type Error struct {
	File string // the Dockerfile's name as the user gave it ("Dockerfile", "-" for stdin)
	Line int    // 1-based; 0 when the error concerns the whole file
	Err  error
}

func (e *Error) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %v", e.File, e.Line, e.Err)
	}
	return fmt.Sprintf("%s: %v", e.File, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error at the given line of file.
func Errorf(file string, line int, format string, args ...any) error {
	return &Error{File: file, Line: line, Err: fmt.Errorf(format, args...)}
}

// At attaches the location of in to err, unless err already carries a location, and
// names the instruction ("Dockerfile:3: COPY: ...") unless the message starts with it.
func At(in Instruction, err error) error {
	if err == nil {
		return nil
	}
	var pe *Error
	if errors.As(err, &pe) {
		return err
	}
	if !strings.HasPrefix(err.Error(), in.Keyword()) {
		err = fmt.Errorf("%s: %w", in.Keyword(), err)
	}
	loc := in.Location()
	return &Error{File: loc.File, Line: loc.Line, Err: err}
}
