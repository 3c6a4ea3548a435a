package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// The benchmarks build "FROM scratch" + "COPY . /data/" over a context generated in a
// temporary directory and write the archive there, as the dfbuild command does. They
// run only with -bench:
//
//	go test ./cmd/dfbuild -run '^$' -bench Build -benchtime 5x
//
// MB/s counts the bytes of file contents in the context. testdata/bench/compare.sh
// measures the whole command against tar on a large context.

const benchDockerfile = "FROM scratch\nCOPY . /data/\n"

// BenchmarkBuildMixed copies 64 MiB in 418 files: about 400 small ones (512 B to
// 64 KiB, 13 MiB in all), about ten medium ones (256 KiB to 4 MiB) and one of 32 MiB.
func BenchmarkBuildMixed(b *testing.B) {
	dir := b.TempDir()
	var sizes []int64
	r := rand.New(rand.NewPCG(1, 2))
	fill := func(budget, lo, hi int64) {
		for budget > 0 {
			n := min(lo+r.Int64N(hi-lo+1), budget)
			sizes = append(sizes, n)
			budget -= n
		}
	}
	fill(13<<20, 512, 64<<10)
	fill(19<<20, 256<<10, 4<<20)
	fill(32<<20, 32<<20, 32<<20)
	benchBuild(b, dir, sizes)
}

// BenchmarkBuildSmallFiles copies 20,000 files of 1 KiB, where per-file costs
// (stat, open, headers, tree nodes) dominate.
func BenchmarkBuildSmallFiles(b *testing.B) {
	dir := b.TempDir()
	sizes := make([]int64, 20000)
	for i := range sizes {
		sizes[i] = 1 << 10
	}
	benchBuild(b, dir, sizes)
}

func benchBuild(b *testing.B, dir string, sizes []int64) {
	ctxDir := filepath.Join(dir, "context")
	total := writeContext(b, ctxDir, sizes)
	df := filepath.Join(dir, "Dockerfile")
	if err := os.WriteFile(df, []byte(benchDockerfile), 0o644); err != nil {
		b.Fatal(err)
	}
	out := filepath.Join(dir, "out.tar")
	b.Setenv("SOURCE_DATE_EPOCH", "0")
	o := buildOptions{contextDir: ctxDir, file: df, output: out}

	b.SetBytes(total)
	b.ReportAllocs()
	for b.Loop() { // b.Loop starts the timer afresh, after the setup above
		if err := runBuild(context.Background(), nil, io.Discard, io.Discard, o); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	fi, err := os.Stat(out)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(sizes)), "files")
	b.ReportMetric(float64(fi.Size())/float64(total), "archive-bytes/byte")
}

// writeContext writes the files, 100 to a directory, with pseudo-random contents that
// are the same on every run, and returns their total size.
func writeContext(b *testing.B, root string, sizes []int64) int64 {
	b.Helper()
	content := rand.NewChaCha8([32]byte{1})
	buf := make([]byte, 1<<20)
	var total int64
	dir := ""
	for i, n := range sizes {
		if i%100 == 0 {
			dir = filepath.Join(root, fmt.Sprintf("d%03d", i/100))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				b.Fatal(err)
			}
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%06d.bin", i)))
		if err != nil {
			b.Fatal(err)
		}
		for left := n; left > 0; {
			k := min(left, int64(len(buf)))
			content.Read(buf[:k])
			if _, err := f.Write(buf[:k]); err != nil {
				b.Fatal(err)
			}
			left -= k
		}
		if err := f.Close(); err != nil {
			b.Fatal(err)
		}
		total += n
	}
	return total
}
