package interp

import (
	"errors"
	"syscall"
)

// getCapability reads the security.capability xattr of the file at the OS path p,
// following a symlink at p (callers pass regular files). A file without it, or on a
// filesystem without xattrs, has none: "" and no error, as fsutil, which BuildKit's
// context transfer uses, treats ENOTSUP.
func getCapability(p string) (string, error) {
	buf := make([]byte, 64) // a capability is at most 24 bytes (VFS_CAP_REVISION_3)
	for {
		n, err := syscall.Getxattr(p, "security.capability", buf)
		switch {
		case err == nil:
			return string(buf[:n]), nil
		case errors.Is(err, syscall.ENODATA), errors.Is(err, syscall.ENOTSUP):
			return "", nil
		case errors.Is(err, syscall.ERANGE):
			size, err := syscall.Getxattr(p, "security.capability", nil)
			if err != nil {
				return "", err
			}
			buf = make([]byte, size+1) // it may grow between the two calls
		default:
			return "", err
		}
	}
}
