package interp_test

import (
	"flag"
	"os"
	"testing"
)

// TestMain makes the fuzzer spend 2 s, not 60, minimizing each input that finds
// new coverage, unless -fuzzminimizetime says otherwise. Go's minimizer tries
// removing every span of bytes, about n² runs for an input of n bytes, and these
// inputs (FuzzExtractTar) are tarballs of kilobytes: every new input took the
// whole 60 s, and the target seemed stuck, a few inputs a minute (issue 11).
func TestMain(m *testing.M) {
	flag.Parse()
	given := false
	flag.Visit(func(f *flag.Flag) { given = given || f.Name == "test.fuzzminimizetime" })
	if !given {
		if err := flag.Set("test.fuzzminimizetime", "2s"); err != nil {
			panic(err)
		}
	}
	os.Exit(m.Run())
}
