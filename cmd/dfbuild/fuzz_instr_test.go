//go:build linux

package main

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/parser"
)

// FuzzInstructions feeds arbitrary Dockerfiles through dfbuild's whole pipeline in
// memory: parser.Parse, interp.Build and dockerarchive.Write into a buffer, with no
// docker. It is seeded with the Dockerfiles of testdata/instructions (the
// differential suite of e2e_instr_test.go) and of parser/testdata. The build context
// holds the files of every case, and "busybox" names a small root filesystem
// tarball, so that COPY, COPY --from, WORKDIR with USER and ONBUILD triggers get
// somewhere. It checks that nothing panics, that every error is a *parser.Error
// naming the Dockerfile, at a line of it (0 for an error about the whole file), and
// that every build that succeeds can be written. Run it with
//
//	go test -run='^$' -fuzz=FuzzInstructions -fuzztime=3m ./cmd/dfbuild
func FuzzInstructions(f *testing.F) {
	cases, err := e2eInstrLoadCases(e2eInstrDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, c := range cases {
		f.Add([]byte(c.dockerfile))
	}
	seeds, err := filepath.Glob(filepath.Join("..", "..", "parser", "testdata", "*", "*", "Dockerfile"))
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range seeds {
		b, err := os.ReadFile(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}

	dir := f.TempDir()
	ctxDir := filepath.Join(dir, "ctx")
	if err := fuzzInstrContext(ctxDir, cases); err != nil {
		f.Fatal(err)
	}
	rootfs := filepath.Join(dir, "busybox.tar")
	if err := os.WriteFile(rootfs, fuzzInstrRootfs(), 0o644); err != nil {
		f.Fatal(err)
	}
	tmp := filepath.Join(dir, "tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		f.Fatal(err)
	}
	epoch := time.Unix(1700000000, 0).UTC()

	f.Fuzz(func(t *testing.T, src []byte) {
		check := func(what string, err error) {
			t.Helper()
			var pe *parser.Error
			if !errors.As(err, &pe) {
				t.Fatalf("%s: error %T is not a *parser.Error: %v", what, err, err)
			}
			if pe.File != "Dockerfile" {
				t.Fatalf("%s: the error names %q, not the Dockerfile: %v", what, pe.File, err)
			}
			// The scanner splits on '\n' only, so this counts the lines it can see.
			if lines := strings.Count(string(src), "\n") + 1; pe.Line < 0 || pe.Line > lines {
				t.Fatalf("%s: error at line %d of a %d-line input: %v", what, pe.Line, lines, err)
			}
		}
		file, err := parser.Parse(bytes.NewReader(src), "Dockerfile")
		if err != nil {
			check("parse", err)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := interp.Build(ctx, file, interp.Options{
			ContextDir:      ctxDir,
			BuildContexts:   map[string]string{"busybox": rootfs},
			SourceDateEpoch: &epoch,
			TempDir:         tmp,
			BuildArgs:       map[string]string{"b": "2"},
			Labels:          map[string]string{"fuzz": "1"},
		})
		if err != nil {
			if ctx.Err() != nil {
				t.Fatalf("the build took over 30s: %v", err)
			}
			check("build", err)
			return
		}
		defer res.Close()
		var out memFile
		if _, err := dockerarchive.Write(ctx, &out, []dockerarchive.Entry{{Image: res.Image}}); err != nil {
			t.Fatalf("the build succeeded, but writing its image failed: %v", err)
		}
	})
}

// fuzzInstrContext writes the files of every case into one build context; a path
// two cases both have keeps the first case's content.
func fuzzInstrContext(dir string, cases []*e2eInstrCase) error {
	seen := map[string]bool{}
	for _, c := range cases {
		for _, f := range c.files {
			if seen[f.Name] || strings.HasSuffix(f.Name, "/") {
				continue
			}
			seen[f.Name] = true
			p := filepath.Join(dir, filepath.FromSlash(f.Name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, f.Data, 0o644); err != nil {
				return err
			}
		}
		for _, s := range c.symlinks {
			p := filepath.Join(dir, filepath.FromSlash(s[0]))
			if seen[s[0]] {
				continue
			}
			seen[s[0]] = true
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.Symlink(s[1], p); err != nil {
				return err
			}
		}
	}
	return nil
}

// fuzzInstrRootfs is a small root filesystem tarball: the shape of the busybox one
// (e2eRootfsTar), with a script where busybox would be.
func fuzzInstrRootfs() []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	add := func(h *tar.Header, body string) {
		h.ModTime, h.Size, h.Format = mtime, int64(len(body)), tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			panic(err)
		}
	}
	add(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, "#!/bin/busybox\n")
	add(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeSymlink, Mode: 0o777, Linkname: "busybox"}, "")
	add(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "etc/group", Typeflag: tar.TypeReg, Mode: 0o644}, "root:x:0:\napp:x:1002:\nnogroup:x:65534:\n")
	add(&tar.Header{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644},
		"root:x:0:0:root:/root:/bin/sh\napp:x:1001:1002::/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n")
	add(&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777}, "")
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// memFile is an in-memory dockerarchive.File.
type memFile struct {
	b   []byte
	off int64
}

func (m *memFile) Write(p []byte) (int, error) {
	n, err := m.WriteAt(p, m.off)
	m.off += int64(n)
	return n, err
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("memFile: negative offset %d", off)
	}
	if end := off + int64(len(p)); end > int64(len(m.b)) {
		m.b = append(m.b, make([]byte, end-int64(len(m.b)))...)
	}
	return copy(m.b[off:], p), nil
}

func (m *memFile) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += m.off
	case io.SeekEnd:
		offset += int64(len(m.b))
	default:
		return 0, fmt.Errorf("memFile: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("memFile: negative position %d", offset)
	}
	m.off = offset
	return offset, nil
}

func (m *memFile) Truncate(size int64) error {
	if size < 0 {
		return fmt.Errorf("memFile: negative size %d", size)
	}
	if size <= int64(len(m.b)) {
		m.b = m.b[:size]
	} else {
		m.b = append(m.b, make([]byte, size-int64(len(m.b)))...)
	}
	return nil
}
