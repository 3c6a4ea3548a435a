package interp

import (
	"errors"

	"github.com/dfbuild/dfbuild/layerfs"
)

// copyFromFS returns the filesystem a COPY --from names: an earlier stage (by name
// or index) or an image served by --build-context.
func (b *builder) copyFromFS(ref string) (*layerfs.FS, error) {
	return nil, errors.New("COPY --from is not supported yet")
}
