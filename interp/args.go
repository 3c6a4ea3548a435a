package interp

import (
	"fmt"

	"github.com/dfbuild/dfbuild/parser"
)

// dispatchArg declares build arguments in a stage.
func (b *builder) dispatchArg(st *stage, in *parser.Arg) error {
	return fmt.Errorf("ARG is not supported yet")
}
