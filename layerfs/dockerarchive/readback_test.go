package dockerarchive_test

import (
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

// readEntries reads an archive or directory back through the one image reader,
// inspect.Open, as --append does. The archive stays open: the layers read from it
// when they are written again, and the test's temporary directory goes with it.
func readEntries(p string) ([]dockerarchive.Entry, error) {
	entries, _, err := inspect.ReadEntries(p)
	return entries, err
}
