//go:build !unix

package interp

import "io/fs"

// openNoBlock is nothing where the OS has no O_NONBLOCK; the files it would guard
// against (FIFOs) do not appear in a directory there.
const openNoBlock = 0

// linkedID finds no hard links where the OS gives no inode numbers through
// fs.FileInfo: every file is copied on its own.
func linkedID(fs.FileInfo) (fileID, bool) { return fileID{}, false }

// statIdentity has no device and inode to give; size and mtime still catch a
// changed file.
func statIdentity(fs.FileInfo) (fileID, bool) { return fileID{}, false }

func osDeviceNumbers(fs.FileInfo) (major, minor int64, ok bool) { return 0, 0, false }
