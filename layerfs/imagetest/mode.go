package imagetest

import "io/fs"

// FileMode turns a Unix mode as tar and chmod write it (permission bits with setuid,
// setgid and sticky) into the fs.FileMode os.Chmod takes, for tests that make build
// contexts.
func FileMode(m uint64) fs.FileMode {
	mode := fs.FileMode(m & 0o777)
	if m&0o4000 != 0 {
		mode |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		mode |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		mode |= fs.ModeSticky
	}
	return mode
}
