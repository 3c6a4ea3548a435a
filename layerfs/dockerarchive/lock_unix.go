//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package dockerarchive

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
	"time"
)

// lockFile flocks the file name, creating it. The lock file is removed on unlock,
// so a writer that locked a file which was removed meanwhile, and another writer
// replaced, holds nothing: it sees that name is no longer its file and starts over.
func lockFile(ctx context.Context, name string, waiting func()) (func() error, error) {
	told := false
	for {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if errors.Is(err, fs.ErrNotExist) {
			// No directory to write in: there is nothing to race for, and the write
			// reports the missing directory itself.
			return func() error { return nil }, nil
		}
		if err != nil {
			return nil, fmt.Errorf("locking the output: %w", err)
		}
		for {
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
				break
			}
			if !told && waiting != nil {
				waiting()
				told = true
			}
			select {
			case <-ctx.Done():
				f.Close()
				return nil, ctx.Err()
			case <-time.After(lockPoll):
			}
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("locking the output with %s: %w", name, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Lstat(name)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return func() error {
				// Removed while still held: nobody can lock this inode after us and
				// think it is the lock.
				err := os.Remove(name)
				return errors.Join(err, f.Close())
			}, nil
		}
		f.Close()
	}
}
