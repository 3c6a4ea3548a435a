package dockerarchive

import (
	"context"
	"path/filepath"
	"time"
)

// lockPoll is how often a writer waiting for another one's lock tries again; each
// try also looks at ctx, so an interrupt ends the wait.
const lockPoll = 50 * time.Millisecond

// LockName is the lock file LockOutput takes for dest: beside it, named like the
// temporary files written there (".NAME.tmp-lock"), so that a build whose output
// lies inside its context leaves it out of COPY with them.
func LockName(dest string) string {
	dest = filepath.Clean(dest)
	return filepath.Join(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-lock")
}

// LockOutput takes the lock that serializes the writers of one output, an archive or
// a type=dir directory, for the whole of a read-modify-write such as --append: two
// builds appending at once otherwise each read the old images and the second rename
// drops the first one's image (issue 11, fault 3). When another process holds it,
// waiting is called once and LockOutput waits until it is free or ctx is done. The
// returned unlock removes the lock file and releases it.
//
// Where the OS has no flock (lock_other.go), LockOutput takes no lock.
func LockOutput(ctx context.Context, dest string, waiting func()) (unlock func() error, err error) {
	return lockFile(ctx, LockName(dest), waiting)
}
