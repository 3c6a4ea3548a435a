package interp

import (
	"fmt"

	"github.com/dfbuild/dfbuild/parser"
)

// dispatchConfig runs the instructions that change only the config (and WORKDIR).
func (b *builder) dispatchConfig(st *stage, in parser.Instruction, step *Step) error {
	return fmt.Errorf("%s is not supported yet", in.Keyword())
}
