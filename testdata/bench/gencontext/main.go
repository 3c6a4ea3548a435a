// Command gencontext writes a deterministic build context of a given total size for
// the benchmarks in testdata/bench: many small files, a few hundred medium ones and a
// few large ones, spread over nested directories. The same size and seed always give
// the same names and the same bytes.
//
//	go run ./testdata/bench/gencontext -size 2GiB -seed 1 DIR
package main

import (
	"bufio"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

func main() {
	sizeFlag := flag.String("size", "2GiB", "total bytes of file contents (suffixes KiB, MiB, GiB)")
	seed := flag.Uint64("seed", 1, "seed of the content and size generator")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: gencontext [-size N] [-seed S] DIR")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	total, err := parseSize(*sizeFlag)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencontext:", err)
		os.Exit(2)
	}
	files, dirs, err := generate(flag.Arg(0), total, *seed)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gencontext:", err)
		os.Exit(1)
	}
	fmt.Printf("%d files, %d directories, %d bytes\n", files, dirs, total)
}

func parseSize(s string) (int64, error) {
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"G", 1 << 30}, {"M", 1 << 20}, {"K", 1 << 10}} {
		if t, ok := strings.CutSuffix(s, u.suffix); ok {
			s, mult = t, u.m
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}

// generate splits total into about half large files (up to 256 MiB each), 30% medium
// files (256 KiB to 4 MiB) and 20% small files (512 B to 64 KiB), 100 files to a
// directory.
func generate(root string, total int64, seed uint64) (files, dirs int, err error) {
	sizes := rand.New(rand.NewPCG(seed, 0x64666275696c64))
	content := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})

	var plan []int64
	add := func(budget, lo, hi int64) {
		for budget > 0 {
			n := min(lo+sizes.Int64N(hi-lo+1), budget)
			plan = append(plan, n)
			budget -= n
		}
	}
	large := total / 2
	medium := total * 3 / 10
	add(total-large-medium, 512, 64<<10)
	add(medium, 256<<10, 4<<20)
	add(large, min(large, 64<<20), min(large, 256<<20))

	buf := make([]byte, 1<<20)
	dir := ""
	for i, n := range plan {
		if i%100 == 0 {
			dir = filepath.Join(root, fmt.Sprintf("d%03d", i/10000), fmt.Sprintf("d%03d", i/100%100))
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return files, dirs, err
			}
			dirs++
		}
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("f%06d.bin", i)))
		if err != nil {
			return files, dirs, err
		}
		w := bufio.NewWriterSize(f, len(buf))
		for left := n; left > 0; {
			k := min(left, int64(len(buf)))
			content.Read(buf[:k])
			if _, err := w.Write(buf[:k]); err != nil {
				f.Close()
				return files, dirs, err
			}
			left -= k
		}
		if err := w.Flush(); err != nil {
			f.Close()
			return files, dirs, err
		}
		if err := f.Close(); err != nil {
			return files, dirs, err
		}
		files++
	}
	return files, dirs, nil
}
