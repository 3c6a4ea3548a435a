package interp

import (
	"fmt"
	"strings"

	"github.com/dfbuild/dfbuild/parser"
)

// defaultShell is what shell-form commands run under when no SHELL was set.
var defaultShell = []string{"/bin/sh", "-c"}

// commandLine resolves a CMD or ENTRYPOINT argument list: the exec form as written,
// the shell form as [SHELL..., "the text"].
func commandLine(st *stage, in *parser.Command) []string {
	if !in.ShellForm {
		return in.Args
	}
	sh := st.config.Config.Shell
	if len(sh) == 0 {
		sh = defaultShell
	}
	return append(append([]string{}, sh...), strings.Join(in.Args, " "))
}

// dispatchCmd sets the default command. BuildKit marks every CMD ArgsEscaped.
func (b *builder) dispatchCmd(st *stage, in *parser.Command) error {
	args := commandLine(st, in)
	st.config.Config.Cmd = args
	st.config.Config.ArgsEscaped = true
	st.cmdSet = true
	st.configOnly(fmt.Sprintf("CMD %q", args))
	return nil
}

// dispatchEntrypoint sets the entrypoint. An ENTRYPOINT drops the CMD inherited from
// the base unless this stage set one itself, as Docker does.
func (b *builder) dispatchEntrypoint(st *stage, in *parser.Command) error {
	args := commandLine(st, in)
	if !in.ShellForm && len(args) == 0 {
		args = nil
	}
	st.config.Config.Entrypoint = args
	if !st.cmdSet {
		st.config.Config.Cmd = nil
	}
	st.configOnly(fmt.Sprintf("ENTRYPOINT %q", args))
	return nil
}
