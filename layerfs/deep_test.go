package layerfs_test

import (
	"errors"
	"runtime"
	"strings"
	"syscall"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
)

// allocated returns the bytes fn allocates.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// Deep paths cost memory in proportion to their depth (issue 11, fault 4: a rootfs
// tarball holding one file 20,000 directories deep took 1.4 GB, 40,000 deep more
// than 4 GB, because every implied parent got a path string of its own). Twice the
// depth may cost about twice the bytes, not four times.
func TestDeepPathsLinear(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, depth int)
	}{
		{"LoadRootfs", func(t *testing.T, depth int) {
			if _, err := load(t, makeTar(t, reg(strings.Repeat("a/", depth)+"f", "x"))); err != nil {
				t.Fatal(err)
			}
		}},
		{"MkdirAll+Commit", func(t *testing.T, depth int) {
			fsys := layerfs.New()
			if _, err := fsys.MkdirAll(strings.Repeat("/a", depth), layerfs.Node{Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
			if c := fsys.Commit(); len(c.Entries) != depth {
				t.Fatalf("%d entries, want %d", len(c.Entries), depth)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			small := allocated(func() { c.run(t, 1000) })
			large := allocated(func() { c.run(t, 2000) })
			if ratio := float64(large) / float64(small); ratio > 3 {
				t.Errorf("1,000 levels allocate %d bytes, 2,000 levels %d: %.1f times as much", small, large, ratio)
			}
		})
	}
}

// A path of MaxPathLen bytes or more is refused, as Linux refuses it, with
// ENAMETOOLONG and the name shortened: tar's PAX records can carry any length, and
// a deep name would otherwise cost its depth squared.
func TestPathLimit(t *testing.T) {
	longest := strings.Repeat("/a", layerfs.MaxPathLen/2-2) + "/bc" // 4095 bytes
	fsys := layerfs.New()
	if _, err := fsys.MkdirAll(longest, layerfs.Node{Mode: 0o755}); err != nil {
		t.Fatalf("a path of %d bytes: %v", len(longest), err)
	}
	if _, err := fsys.MkdirAll(longest+"d", layerfs.Node{Mode: 0o755}); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("a path of %d bytes: %v, want ENAMETOOLONG", len(longest)+1, err)
	}
	if err := fsys.Put("/l", linkNode(strings.Repeat("x", layerfs.MaxPathLen))); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Fatalf("a symlink target of %d bytes: %v, want ENAMETOOLONG", layerfs.MaxPathLen, err)
	}

	// 20,000 levels: refused at once, naming the entry in a few hundred bytes.
	deep := strings.Repeat("a/", 20000) + "f"
	var err error
	n := allocated(func() { _, err = load(t, makeTar(t, reg(deep, "x"))) })
	if !errors.Is(err, syscall.ENAMETOOLONG) || len(err.Error()) > 300 || !strings.Contains(err.Error(), "a/a/a") {
		t.Fatalf("a file 20,000 deep: %v", err)
	}
	if n > 16<<20 {
		t.Errorf("refusing a file 20,000 deep allocated %d bytes", n)
	}
	if _, err := load(t, makeTar(t, symlinkEnt("l", strings.Repeat("x", layerfs.MaxPathLen)))); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("a symlink with a target of %d bytes: %v", layerfs.MaxPathLen, err)
	}
}
