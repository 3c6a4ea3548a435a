//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package dockerarchive

import "context"

// lockFile takes no lock where the OS has no flock: concurrent --append writers
// there may still lose an image.
func lockFile(context.Context, string, func()) (func() error, error) {
	return func() error { return nil }, nil
}
