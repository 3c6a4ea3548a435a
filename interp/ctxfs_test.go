//go:build unix

package interp_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/parser"
)

// buildThenSwap builds the Dockerfile in ctxDir, lets swap change the context once
// the copies are planned, as another process could while the archive is written,
// and writes the image. It returns the write's error and the archive's bytes.
func buildThenSwap(t *testing.T, ctxDir, dockerfile string, swap func()) (string, error) {
	t.Helper()
	f, err := parser.Parse(strings.NewReader(dockerfile), "Dockerfile")
	must(t, err)
	epoch := time.Unix(1700000000, 0)
	res, err := interp.Build(context.Background(), f, interp.Options{ContextDir: ctxDir, SourceDateEpoch: &epoch, TempDir: t.TempDir()})
	must(t, err)
	defer res.Close()
	swap()
	out := filepath.Join(t.TempDir(), "out.tar")
	done := make(chan error, 1)
	go func() {
		_, err := dockerarchive.WriteFile(context.Background(), out, []dockerarchive.Entry{{Image: res.Image}})
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second): // a hang, not a timing check
		t.Fatal("writing the image hangs")
	}
	b, _ := os.ReadFile(out)
	return string(b), err
}

// Issue 11, fault 1: a context directory replaced by a symlink to a directory
// outside the context after the build planned its copies must not put the outside
// file into the image.
func TestContextSwappedForOutsideLink(t *testing.T) {
	outside := t.TempDir()
	secret := "SECRET-HOST-FILE\n"
	must(t, os.WriteFile(filepath.Join(outside, "passwd"), []byte(secret), 0o644))
	for _, tc := range []struct {
		name string
		swap func(ctxDir string) error
	}{
		{"directory", func(ctxDir string) error {
			if err := os.Rename(filepath.Join(ctxDir, "d"), filepath.Join(ctxDir, "d.real")); err != nil {
				return err
			}
			return os.Symlink(outside, filepath.Join(ctxDir, "d"))
		}},
		{"file", func(ctxDir string) error {
			p := filepath.Join(ctxDir, "d", "passwd")
			if err := os.Remove(p); err != nil {
				return err
			}
			return os.Symlink(filepath.Join(outside, "passwd"), p)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctxDir := t.TempDir()
			must(t, os.Mkdir(filepath.Join(ctxDir, "d"), 0o755))
			// The same size as the secret, so only where it is read from tells them apart.
			must(t, os.WriteFile(filepath.Join(ctxDir, "d", "passwd"), []byte(strings.Repeat("x", len(secret)-1)+"\n"), 0o644))
			archive, err := buildThenSwap(t, ctxDir, "FROM scratch\nCOPY d/passwd /p\n", func() { must(t, tc.swap(ctxDir)) })
			if strings.Contains(archive, "SECRET") {
				t.Fatal("the outside file is in the image")
			}
			// Either the write fails naming the file, or it reads the file that was
			// planned: the directory handle the walk opened still leads to it.
			switch {
			case err != nil && !strings.Contains(err.Error(), `"d/passwd"`):
				t.Errorf("error %q does not name d/passwd", err)
			case err == nil && !strings.Contains(archive, strings.Repeat("x", len(secret)-1)):
				t.Error("the write succeeded without the planned file")
			case err == nil && tc.name == "file":
				t.Error("a file swapped for a link to outside was read")
			}
		})
	}
}

// A context file replaced by another file of the same size and mtime is another
// file: its device and inode say so.
func TestContextFileChangedDuringBuild(t *testing.T) {
	ctxDir := t.TempDir()
	p := filepath.Join(ctxDir, "f")
	must(t, os.WriteFile(p, []byte("one\n"), 0o644))
	mtime := time.Unix(1600000000, 0)
	must(t, os.Chtimes(p, mtime, mtime))
	_, err := buildThenSwap(t, ctxDir, "FROM scratch\nCOPY f /f\n", func() {
		must(t, os.WriteFile(p+".new", []byte("two\n"), 0o644))
		must(t, os.Chtimes(p+".new", mtime, mtime))
		must(t, os.Rename(p+".new", p))
	})
	if err == nil || !strings.Contains(err.Error(), "changed during the build") {
		t.Fatalf("err = %v, want %q changed during the build", err, "f")
	}
}

// Issue 11, fault 6: a context file swapped for a FIFO during the build is refused
// without waiting for a writer.
func TestContextFileSwappedForFIFO(t *testing.T) {
	ctxDir := t.TempDir()
	p := filepath.Join(ctxDir, "f")
	must(t, os.WriteFile(p, []byte("one\n"), 0o644))
	_, err := buildThenSwap(t, ctxDir, "FROM scratch\nCOPY f /f\n", func() {
		must(t, os.Remove(p))
		must(t, syscall.Mkfifo(p, 0o644))
	})
	if err == nil || !strings.Contains(err.Error(), "changed during the build") || !strings.Contains(err.Error(), "FIFO") {
		t.Fatalf("err = %v, want the FIFO named as a change", err)
	}
}

// A FIFO in the context is copied as a FIFO, never opened; a FIFO named
// .dockerignore is refused, not read.
func TestContextFIFOs(t *testing.T) {
	ctxDir := t.TempDir()
	must(t, syscall.Mkfifo(filepath.Join(ctxDir, "pipe"), 0o644))
	_, err := buildThenSwap(t, ctxDir, "FROM scratch\nCOPY . /\n", func() {})
	must(t, err)

	must(t, syscall.Mkfifo(filepath.Join(ctxDir, ".dockerignore"), 0o644))
	done := make(chan error, 1)
	go func() {
		_, err := interp.ReadIgnoreFile(ctxDir, "")
		done <- err
	}()
	select {
	case err = <-done:
	case <-time.After(10 * time.Second): // a hang, not a timing check
		t.Fatal("reading a FIFO .dockerignore hangs")
	}
	if err == nil || !strings.Contains(err.Error(), "FIFO") {
		t.Fatalf("err = %v, want the FIFO refused", err)
	}
}

// A --build-context that names a FIFO is refused when it is parsed, not read.
func TestBuildContextFIFO(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pipe")
	must(t, syscall.Mkfifo(p, 0o644))
	_, err := interp.ParseBuildContext(p)
	if err == nil || !strings.Contains(err.Error(), "FIFO") {
		t.Fatalf("err = %v, want the FIFO refused", err)
	}
}

// A file name that is not UTF-8 is a file name all the same on Linux: COPY . copies
// it, as docker build does (issue 11), instead of failing with "invalid argument".
func TestContextNonUTF8Name(t *testing.T) {
	ctxDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(ctxDir, "a\xffb"), []byte("x\n"), 0o644); err != nil {
		t.Skipf("the filesystem refuses the name: %v", err)
	}
	archive, err := buildThenSwap(t, ctxDir, "FROM scratch\nCOPY . /\n", func() {})
	must(t, err)
	// Layers are written uncompressed, the name in a PAX record as it is.
	if !strings.Contains(archive, "path=a\xffb\n") {
		t.Fatal("the file is not in the layer")
	}
}

// A context deeper and wider than the directory handles rootFS keeps is read whole.
func TestContextManyDirectories(t *testing.T) {
	ctxDir := t.TempDir()
	deep := ctxDir
	for range 200 {
		deep = filepath.Join(deep, "d")
	}
	must(t, os.MkdirAll(deep, 0o755))
	must(t, os.WriteFile(filepath.Join(deep, "bottom"), []byte("b\n"), 0o644))
	for i := range 150 {
		dir := filepath.Join(ctxDir, "w", strconv.Itoa(i))
		must(t, os.MkdirAll(dir, 0o755))
		must(t, os.WriteFile(filepath.Join(dir, "f"), []byte(strconv.Itoa(i)), 0o644))
	}
	archive, err := buildThenSwap(t, ctxDir, "FROM scratch\nCOPY . /\n", func() {})
	must(t, err)
	if n := strings.Count(archive, "/f\x00"); n != 150 {
		t.Errorf("%d of the 150 wide files are in the layer", n)
	}
	if !strings.Contains(archive, "bottom") {
		t.Error("the deepest file is not in the layer")
	}
}
