package interp_test

import "syscall"

// setFileXattr sets an xattr of the file p. A filesystem without xattrs gives an
// error that is errors.ErrUnsupported.
func setFileXattr(p, name, value string) error {
	return syscall.Setxattr(p, name, []byte(value), 0)
}

// fileCapability returns the security.capability xattr of the file p, "" for none.
func fileCapability(p string) string {
	c := make([]byte, 64)
	n, err := syscall.Getxattr(p, "security.capability", c)
	if err != nil {
		return ""
	}
	return string(c[:n])
}
