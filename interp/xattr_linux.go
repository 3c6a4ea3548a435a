package interp

import (
	"errors"
	"io/fs"
	"os"
	"strconv"
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

// fileCapability reads the security.capability xattr of an open file, through its
// /proc/self/fd link: no path of the context is walked again, so a component
// swapped for a symlink cannot lead the read outside the context, and depth does
// not matter. ok is false when /proc is not there to read it.
func fileCapability(f *os.File) (c string, ok bool, err error) {
	raw, err := f.SyscallConn()
	if err != nil {
		return "", false, err
	}
	cerr := raw.Control(func(fd uintptr) {
		c, err = getCapability("/proc/self/fd/" + strconv.FormatUint(uint64(fd), 10))
	})
	if cerr != nil {
		return "", false, cerr
	}
	if errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	return c, true, err
}
