package interp_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/parser"
)

// buildBytes parses and builds df in an empty context and returns the bytes the
// build allocated, from parsing to the finished image.
func buildBytes(t testing.TB, df string) uint64 {
	t.Helper()
	epoch := time.Unix(1700000000, 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := parser.Parse(strings.NewReader(df), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	res, err := interp.Build(context.Background(), f, interp.Options{ContextDir: t.TempDir(), SourceDateEpoch: &epoch})
	if err != nil {
		t.Fatal(err)
	}
	defer res.Close()
	if _, err := res.Image.ConfigJSON(); err != nil {
		t.Fatal(err)
	}
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// manyLines is a Dockerfile of n lines of one instruction, each naming a variable of
// its own and expanding an earlier one.
func manyLines(keyword string, n int) string {
	var b strings.Builder
	b.WriteString("FROM scratch\n")
	for i := range n {
		fmt.Fprintf(&b, "%s v%d=${v%d}x\n", keyword, i, i/2)
	}
	return b.String()
}

// TestManyInstructionsLinear: the work of a build grows with its number of
// instructions, not with its square (issue 11, fault 9: 20,000 ENV lines took 80 s,
// each copying the whole Env). Measured in bytes allocated, which do not depend on
// the machine: four times the lines may cost at most about four times the bytes.
func TestManyInstructionsLinear(t *testing.T) {
	for _, kw := range []string{"ENV", "LABEL", "ARG"} {
		t.Run(kw, func(t *testing.T) {
			small := buildBytes(t, manyLines(kw, 1000))
			large := buildBytes(t, manyLines(kw, 4000))
			if ratio := float64(large) / float64(small); ratio > 6 {
				t.Errorf("%s: 1,000 lines allocate %d bytes, 4,000 lines %d: %.1f times as much", kw, small, large, ratio)
			}
		})
	}
}

// buildIn builds df in the context dir and returns the bytes allocated, or the
// build's error.
func buildIn(t testing.TB, dir, df string) (uint64, error) {
	t.Helper()
	epoch := time.Unix(1700000000, 0)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f, err := parser.Parse(strings.NewReader(df), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	res, err := interp.Build(context.Background(), f, interp.Options{ContextDir: dir, SourceDateEpoch: &epoch, TempDir: t.TempDir()})
	if err != nil {
		return 0, err
	}
	defer res.Close()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, nil
}

// deepContext makes a context holding one file depth directories deep.
func deepContext(t testing.TB, depth int) string {
	t.Helper()
	dir := t.TempDir()
	deep := filepath.Join(dir, strings.Repeat("a/", depth))
	if err := os.MkdirAll(deep, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(deep, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// deepTar is a tar of one file depth directories deep, with or without its
// directories listed.
func deepTar(t testing.TB, depth int, dirs bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	if dirs {
		for i := 1; i <= depth; i++ {
			tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: strings.Repeat("a/", i), Mode: 0o755})
		}
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: strings.Repeat("a/", depth) + "f", Mode: 0o644, Size: 1})
	tw.Write([]byte("x"))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Deep paths cost the sum of their lengths, as the layers that hold them do, and no
// more (issue 11, faults 4 and 5: a WORKDIR 2,000 deep took 37 s, an ADD of a tar
// 4,000 deep over 120 s, a context 1,500 deep 16 s: each level walked or rebuilt
// every path above it). Measured in bytes allocated: twice the depth may cost four
// times the bytes (every level writes its whole path), not eight.
func TestDeepPathsQuadraticAtMost(t *testing.T) {
	cases := []struct {
		name  string
		build func(t *testing.T, depth int) (uint64, error)
	}{
		{"WORKDIR", func(t *testing.T, depth int) (uint64, error) {
			return buildIn(t, t.TempDir(), "FROM scratch\nWORKDIR "+strings.Repeat("/a", depth)+"\n")
		}},
		{"context", func(t *testing.T, depth int) (uint64, error) {
			return buildIn(t, deepContext(t, depth), "FROM scratch\nCOPY . /\n")
		}},
		{"ADD", func(t *testing.T, depth int) (uint64, error) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "deep.tar"), deepTar(t, depth, true), 0o644); err != nil {
				t.Fatal(err)
			}
			return buildIn(t, dir, "FROM scratch\nADD deep.tar /\n")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			small, err := c.build(t, 200)
			if err != nil {
				t.Fatal(err)
			}
			large, err := c.build(t, 400)
			if err != nil {
				t.Fatal(err)
			}
			if ratio := float64(large) / float64(small); ratio > 5.5 {
				t.Errorf("200 levels allocate %d bytes, 400 levels %d: %.1f times as much", small, large, ratio)
			}
		})
	}
}

// A word that expands past parser.MaxWordSize is an error at its line (issue 11,
// fault 7: forty lines of "ENV a=$a$a" exhausted memory), for ENV, ARG and LABEL
// alike, and the build stops before any value past the limit is made.
func TestWordTooLong(t *testing.T) {
	for _, form := range []string{"ENV a=$a$a", "ARG a=$a$a", "ENV a=${a}${a}\nLABEL l=$a$a$a"} {
		var b strings.Builder
		b.WriteString("FROM scratch\nENV a=x\n")
		for range 40 {
			b.WriteString(form + "\n")
		}
		var err error
		n := allocatedIn(func() { _, err = buildIn(t, t.TempDir(), b.String()) })
		if !errors.Is(err, parser.ErrWordTooLong) || !strings.HasPrefix(err.Error(), "Dockerfile:") {
			t.Errorf("%q: %v, want a word-too-long error at its line", form, err)
		}
		if n > 64<<20 {
			t.Errorf("%q: allocated %d bytes", form, n)
		}
	}
}

func allocatedIn(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A COPY destination that is not UTF-8 is an error at its line (issue 11: BuildKit's
// lexer printed "<input>:1:2: invalid UTF-8 encoding", with no file or line, and
// the build went on with U+FFFD in the name).
func TestCopyDestInvalidUTF8(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := buildIn(t, dir, "FROM scratch\nCOPY f /a\xff/\n")
	if !errors.Is(err, parser.ErrInvalidUTF8) || !strings.HasPrefix(err.Error(), "Dockerfile:2: ") {
		t.Errorf("got %v, want an invalid UTF-8 error at line 2", err)
	}
}
