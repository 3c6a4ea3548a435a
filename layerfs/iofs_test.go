package layerfs_test

import (
	"errors"
	"io"
	"io/fs"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/dfbuild/dfbuild/layerfs"
)

func iofsTree(t *testing.T) *layerfs.FS {
	fsys := build(t,
		"d /etc", "f /etc/hostname box\n", "f /etc/empty ",
		"d /usr", "d /usr/bin", "f /usr/bin/sh #!sh",
		"l /bin usr/bin", // relative link to a directory
		"l /etc/sh /usr/bin/sh",
		"d /emptydir",
		"d /dev",
	)
	for p, n := range map[string]*layerfs.Node{
		"/dev/null": {Type: layerfs.TypeChar, Mode: 0o666, Major: 1, Minor: 3, ModTime: t0},
		"/dev/sda":  {Type: layerfs.TypeBlock, Mode: 0o660, Major: 8, ModTime: t0},
		"/dev/fifo": {Type: layerfs.TypeFIFO, Mode: 0o600, ModTime: t0},
		"/tmp":      {Type: layerfs.TypeDir, Mode: 0o1777, ModTime: t0},
		"/suid":     {Type: layerfs.TypeReg, Mode: 0o4755, ModTime: t0},
	} {
		if err := fsys.Put(p, n); err != nil {
			t.Fatal(err)
		}
	}
	return fsys
}

func TestIOFS(t *testing.T) {
	fsys := iofsTree(t)
	if err := fstest.TestFS(fsys.IOFS(),
		"etc/hostname", "etc/empty", "etc/sh", "usr/bin/sh", "bin", "emptydir",
		"dev/null", "dev/sda", "dev/fifo", "tmp", "suid",
	); err != nil {
		t.Fatal(err)
	}

	v := fsys.IOFS()
	b, err := fs.ReadFile(v, "bin/sh") // through the directory symlink
	if err != nil || string(b) != "#!sh" {
		t.Errorf("ReadFile(bin/sh) = %q, %v", b, err)
	}
	if b, err := fs.ReadFile(v, "etc/sh"); err != nil || string(b) != "#!sh" {
		t.Errorf("ReadFile(etc/sh) = %q, %v", b, err)
	}

	modes := map[string]fs.FileMode{
		"dev/null": fs.ModeDevice | fs.ModeCharDevice | 0o666,
		"dev/sda":  fs.ModeDevice | 0o660,
		"dev/fifo": fs.ModeNamedPipe | 0o600,
		"tmp":      fs.ModeDir | fs.ModeSticky | 0o777,
		"suid":     fs.ModeSetuid | 0o755,
		"bin":      fs.ModeDir | 0o755, // Stat follows the link
	}
	for name, want := range modes {
		fi, err := fs.Stat(v, name)
		if err != nil || fi.Mode() != want {
			t.Errorf("Stat(%s).Mode() = %v, %v; want %v", name, fi.Mode(), err, want)
		}
	}
	fi, err := fs.Stat(v, "dev/null")
	if err != nil {
		t.Fatal(err)
	}
	if n, ok := fi.Sys().(*layerfs.Node); !ok || n.Major != 1 || n.Minor != 3 {
		t.Errorf("Sys() = %#v, want a *Node with 1,3", fi.Sys())
	}
	fi.Sys().(*layerfs.Node).Mode = 0
	if fi, _ := fs.Stat(v, "dev/null"); fi.Mode().Perm() != 0o666 {
		t.Errorf("changing Sys()'s node changed the tree")
	}
}

func TestIOFSReadLinkLstat(t *testing.T) {
	fsys := iofsTree(t)
	v := fsys.IOFS()
	for name, want := range map[string]string{"bin": "usr/bin", "etc/sh": "/usr/bin/sh", "bin/../etc/sh": ""} {
		got, err := fs.ReadLink(v, name)
		if want == "" {
			if err == nil {
				t.Errorf("ReadLink(%q) = %q, want an error", name, got)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("ReadLink(%q) = %q, %v; want %q", name, got, err, want)
		}
	}
	if _, err := fs.ReadLink(v, "etc/hostname"); !errors.Is(err, fs.ErrInvalid) {
		t.Errorf("ReadLink(a file) = %v, want ErrInvalid", err)
	}
	if _, err := fs.ReadLink(v, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadLink(missing) = %v, want ErrNotExist", err)
	}

	fi, err := fs.Lstat(v, "bin")
	if err != nil || fi.Mode() != fs.ModeSymlink|0o777 || fi.Name() != "bin" {
		t.Errorf("Lstat(bin) = %v, %v; want a symlink", fi, err)
	}
	fi, err = fs.Lstat(v, "bin/sh") // the last component only is not followed
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != 4 {
		t.Errorf("Lstat(bin/sh) = %v, %v; want the 4-byte file", fi, err)
	}

	for _, name := range []string{"/etc", "etc/", "../etc", "etc/../etc", ""} {
		if _, err := v.Open(name); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("Open(%q) = %v, want ErrInvalid", name, err)
		}
	}
}

// TestIOFSErrors checks that errors are *fs.PathErrors naming the path asked for,
// and that a symlink loop is reported as one.
func TestIOFSErrors(t *testing.T) {
	fsys := build(t, "l /loop loop", "f /file x")
	v := fsys.IOFS()
	_, err := v.Open("loop")
	var pe *fs.PathError
	if !errors.As(err, &pe) || pe.Path != "loop" || !errors.Is(err, syscall.ELOOP) {
		t.Errorf("Open(loop) = %v, want an ELOOP *fs.PathError for loop", err)
	}
	_, err = v.Open("missing/x")
	if !errors.As(err, &pe) || pe.Path != "missing/x" || pe.Op != "open" || !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Open(missing/x) = %v", err)
	}
	if _, err := fs.ReadDir(v, "file"); err == nil {
		t.Errorf("ReadDir(file) succeeded")
	}

	// A directory read in batches ends with io.EOF.
	fsys = build(t, "f /a 1", "f /b 2", "f /c 3")
	f, err := fsys.IOFS().Open(".")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := f.(fs.ReadDirFile)
	var names []string
	for {
		es, err := d.ReadDir(2)
		for _, e := range es {
			names = append(names, e.Name())
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(names) != 3 || names[0] != "a" || names[2] != "c" {
		t.Errorf("ReadDir in batches: %q", names)
	}
}
