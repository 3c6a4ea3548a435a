//go:build unix

package interp

import (
	"io/fs"
	"runtime"
	"syscall"
)

// openNoBlock lets an open of a FIFO return at once instead of waiting for a
// writer; what was opened is then checked with fstat before anything reads it.
const openNoBlock = syscall.O_NONBLOCK

// linkedID returns the identity of a regular file that has more than one link.
func linkedID(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.Mode().IsRegular() || st.Nlink < 2 {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, true
}

// statIdentity is the device and inode of a file the OS described.
func statIdentity(fi fs.FileInfo) (fileID, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, false
	}
	return fileID{uint64(st.Dev), uint64(st.Ino)}, true
}

// osDeviceNumbers splits a device file's rdev into major and minor numbers.
func osDeviceNumbers(fi fs.FileInfo) (major, minor int64, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	rdev := uint64(st.Rdev)
	switch runtime.GOOS {
	case "linux":
		// glibc's gnu_dev_major and gnu_dev_minor.
		return int64((rdev>>8)&0xfff | (rdev>>32)&^0xfff), int64(rdev&0xff | (rdev>>12)&^0xff), true
	case "darwin", "ios":
		return int64(rdev >> 24 & 0xff), int64(rdev & 0xffffff), true
	}
	// The BSDs' layout, which is also Linux's for small numbers.
	return int64((rdev >> 8) & 0xff), int64(rdev&0xff | (rdev>>12)&^0xff), true
}
