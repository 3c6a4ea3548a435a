package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
)

// limitOptions are the bounds of ADD's downloads (issue 11, fault 8).
type limitOptions struct {
	addMaxSize byteSize
	addTimeout time.Duration
}

func addLimitFlags(f *pflag.FlagSet, o *limitOptions) {
	o.addMaxSize = byteSize(interp.DefaultAddMaxSize)
	f.Var(&o.addMaxSize, "add-max-size", "the largest file ADD may download from a URL, in bytes or with a unit (KiB, MiB, GiB, KB, MB, GB); a larger body fails the build")
	f.DurationVar(&o.addTimeout, "add-timeout", interp.DefaultAddTimeout, "how long one ADD download may take; a server that does not answer, or sends less than 16 KiB, in 2 minutes fails sooner")
}

// byteSize is a flag's size: a number of bytes, optionally with a unit.
type byteSize int64

var sizeUnits = []struct {
	suffix string
	n      int64
}{
	{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
	{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
	{"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"T", 1 << 40},
	{"B", 1},
}

func (b *byteSize) Set(s string) error {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range sizeUnits {
		if strings.HasSuffix(strings.ToUpper(num), strings.ToUpper(u.suffix)) {
			num, mult = strings.TrimSpace(num[:len(num)-len(u.suffix)]), u.n
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return fmt.Errorf("want a positive size such as 500MiB or 8GiB")
	}
	*b = byteSize(n * mult)
	return nil
}

func (b *byteSize) String() string {
	n := int64(*b)
	for _, u := range []struct {
		suffix string
		n      int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.n && n%u.n == 0 {
			return strconv.FormatInt(n/u.n, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10)
}

func (b *byteSize) Type() string { return "size" }

// checkFileDest refuses, before the build, an archive destination the write would
// refuse after it: a device, FIFO, socket, symlink or directory (issue 11, fault 2).
func checkFileDest(s sinks, p *plan) error {
	if !s.file || s.stdout || p.typ == outputDir {
		return nil
	}
	if err := dockerarchive.CheckFileDest(p.dest); err != nil {
		return fmt.Errorf("writing %s: %w", p.dest, err)
	}
	return nil
}

// lockOutput holds the output's lock while it is read and rewritten, so that
// parallel --append builds each add their image (issue 11, fault 3); a build that
// has to wait says so.
func lockOutput(ctx context.Context, dest string, prog *progress) (func(), error) {
	unlock, err := dockerarchive.LockOutput(ctx, dest, func() {
		prog.notice(fmt.Sprintf("waiting for another dfbuild writing %s to finish", dest))
	})
	if err != nil {
		return nil, fmt.Errorf("writing %s: %w", dest, err)
	}
	return func() { unlock() }, nil
}
