//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package dockerarchive_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// Issue 11, fault 3: parallel appends to one output, each a read-modify-write under
// LockOutput, keep every image, for an archive and for a type=dir directory.
func TestConcurrentAppendKeepsEveryImage(t *testing.T) {
	const writers = 7
	for _, kind := range []string{"file", "dir"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			dest := filepath.Join(t.TempDir(), "out")
			read, write := readEntries, dockerarchive.WriteFile
			if kind == "dir" {
				read, write = readEntries, dockerarchive.WriteDir
			}
			var waited atomic.Int32
			var wg sync.WaitGroup
			errs := make([]error, writers)
			for i := range writers {
				wg.Go(func() {
					entry := dockerarchive.Entry{
						Image: imageOf(layerOf(t, "f", fmt.Sprint(i))),
						Tags:  []image.Tag{tag(t, fmt.Sprintf("app:%d", i))},
					}
					errs[i] = func() error {
						unlock, err := dockerarchive.LockOutput(context.Background(), dest, func() { waited.Add(1) })
						if err != nil {
							return err
						}
						defer unlock()
						entries := []dockerarchive.Entry{entry}
						if _, err := os.Stat(dest); err == nil {
							old, err := read(dest)
							if err != nil {
								return err
							}
							entries = dockerarchive.Merge(old, entry)
						}
						_, err = write(context.Background(), dest, entries)
						return err
					}()
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Fatalf("writer %d: %v", i, err)
				}
			}
			got, err := read(dest)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != writers {
				t.Fatalf("%d images in the output, want %d: %s", len(got), writers, names(got))
			}
			if _, err := os.Lstat(dockerarchive.LockName(dest)); !os.IsNotExist(err) {
				t.Errorf("the lock file is left behind: %v", err)
			}
			t.Logf("%d writers waited", waited.Load())
		})
	}
}

// A writer waiting for the lock stops waiting when its context is cancelled.
func TestLockOutputCancelled(t *testing.T) {
	dest := filepath.Join(t.TempDir(), "out.tar")
	unlock, err := dockerarchive.LockOutput(context.Background(), dest, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithCancel(context.Background())
	_, err = dockerarchive.LockOutput(ctx, dest, cancel)
	if err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// Issue 11, fault 2: WriteFile replaces only a regular file. A FIFO, a device, a
// symlink or a directory at the destination is refused before anything is written,
// and left as it was.
func TestWriteFileRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(fifo, link); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{fifo: "named pipe", link: "symlink", sub: "is a directory"}
	if os.Geteuid() == 0 {
		// A node of its own, never the host's /dev/null, in case the check fails.
		null := filepath.Join(dir, "null")
		if err := syscall.Mknod(null, syscall.S_IFCHR|0o666, 1<<8|3); err == nil {
			targets[null] = "character device"
		}
	}
	for dest, want := range targets {
		before, _ := os.Lstat(dest)
		if err := dockerarchive.CheckFileDest(dest); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckFileDest(%s) = %v, want %q", dest, err, want)
		}
		_, err := dockerarchive.WriteFile(context.Background(), dest, []dockerarchive.Entry{{Image: imageOf()}})
		if err == nil {
			t.Errorf("WriteFile(%s) succeeded", dest)
		}
		after, _ := os.Lstat(dest)
		if after == nil || after.Mode() != before.Mode() {
			t.Errorf("%s changed from %v to %v", dest, before.Mode(), after)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != len(targets) {
		t.Errorf("%d entries in the directory, want %d: temporary files left", len(entries), len(targets))
	}
	// A regular file, and a missing one, are fine.
	if err := dockerarchive.CheckFileDest(filepath.Join(dir, "new.tar")); err != nil {
		t.Error(err)
	}
}
