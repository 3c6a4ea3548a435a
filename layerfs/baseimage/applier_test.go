package baseimage_test

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
)

// applyAll stacks layers with layerfs.LayerApplier, file bodies read back from the
// layers' bytes.
func applyAll(t *testing.T, layers ...[]byte) (*layerfs.FS, error) {
	t.Helper()
	app := layerfs.NewLayerApplier()
	for i, l := range layers {
		size, d, err := app.Apply(bytes.NewReader(l), func(off, size int64) layerfs.Opener {
			return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(l[off : off+size])), nil }
		})
		if err != nil {
			return nil, err
		}
		if size != int64(len(l)) || d != layerfs.DigestOf(l) {
			t.Fatalf("layer %d: Apply = %d, %s; want %d, %s", i+1, size, d, len(l), layerfs.DigestOf(l))
		}
	}
	return app.FS(), nil
}

// TestApplierRules covers the whiteout and replacement rules one at a time. want
// lists the tree after the layers (fsListing's lines with the metadata cut: type
// and path, and a symlink's target).
func TestApplierRules(t *testing.T) {
	lower := func(t *testing.T) []byte {
		return layerTar(t, dirE("d/"), fileE("d/x", "x"), dirE("d/sub/"), fileE("d/sub/y", "y"), fileE("f", "f"),
			linkE("l", "d"))
	}
	tests := []struct {
		name   string
		layers func(t *testing.T) [][]byte
		want   string
	}{
		{"whiteout-file", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, whE("f"))}
		}, "d /d\nd /d/sub\nf /d/sub/y\nf /d/x\nl /l -> d\n"},
		{"whiteout-dir", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, whE("d"))}
		}, "f /f\nl /l -> d\n"},
		{"whiteout-missing-and-under-file", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, whE("nothing"), whE("f/nothing"), whE("none/x"))}
		}, "d /d\nd /d/sub\nf /d/sub/y\nf /d/x\nf /f\nl /l -> d\n"},
		{"whiteout-through-symlink-ignored", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, whE("l/x"))}
		}, "d /d\nd /d/sub\nf /d/sub/y\nf /d/x\nf /f\nl /l -> d\n"},
		{"whiteout-then-recreate-above", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, whE("d")), layerTar(t, dirE("d/"), fileE("d/new", "n"))}
		}, "d /d\nf /d/new\nf /f\nl /l -> d\n"},
		{"opaque-first", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, dirE("d/"), opqE("d"), fileE("d/z", "z"))}
		}, "d /d\nf /d/z\nf /f\nl /l -> d\n"},
		{"opaque-last", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, dirE("d/"), fileE("d/z", "z"), opqE("d"))}
		}, "d /d\nf /d/z\nf /f\nl /l -> d\n"},
		{"opaque-keeps-implied-dir", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, fileE("d/sub/z", "z"), opqE("d"))}
		}, "d /d\nd /d/sub\nf /d/sub/z\nf /f\nl /l -> d\n"},
		{"opaque-root", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, fileE("new", "n"), opqE(""))}
		}, "f /new\n"},
		{"opaque-missing-dir", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, opqE("none"))}
		}, "d /d\nd /d/sub\nf /d/sub/y\nf /d/x\nf /f\nl /l -> d\n"},
		{"dir-meets-dir", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, with(dirE("d/"), func(h *tar.Header) { h.Mode = 0o700 }))}
		}, "d /d\nd /d/sub\nf /d/sub/y\nf /d/x\nf /f\nl /l -> d\n"},
		{"file-replaces-dir", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, fileE("d", "now a file"))}
		}, "f /d\nf /f\nl /l -> d\n"},
		{"dir-replaces-file", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, dirE("f/"))}
		}, "d /d\nd /d/sub\nf /d/sub/y\nf /d/x\nd /f\nl /l -> d\n"},
		{"implied-dir-replaces-lower-symlink", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, fileE("l/inside", "i"))}
		}, "d /d\nd /d/sub\nf /d/sub/y\nf /d/x\nf /f\nd /l\nf /l/inside\n"},
		{"symlink-replaces-dir", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, linkE("d", "f"))}
		}, "l /d -> f\nf /f\nl /l -> d\n"},
		{"aufs-metadata-skipped", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t, dirE(".wh..wh.plnk/"), fileE(".wh..wh.plnk/1.2", "x"), fileE(".wh..wh.aufs", ""),
				whE(".wh..wh.orph"))}
		}, "d /d\nd /d/sub\nf /d/sub/y\nf /d/x\nf /f\nl /l -> d\n"},
		{"empty-layers", func(t *testing.T) [][]byte {
			return [][]byte{lower(t), layerTar(t), {}}
		}, "d /d\nd /d/sub\nf /d/sub/y\nf /d/x\nf /f\nl /l -> d\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys, err := applyAll(t, tt.layers(t)...)
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			for _, line := range strings.Split(strings.TrimSuffix(fsListing(t, fsys), "\n"), "\n") {
				f := strings.Fields(line)
				if len(f) < 5 {
					continue
				}
				got.WriteString(f[0] + " " + f[4])
				if f[0] == "l" {
					got.WriteString(" -> " + f[6])
				}
				got.WriteByte('\n')
			}
			if got.String() != tt.want {
				t.Errorf("tree:\n%s\nwant:\n%s", got.String(), tt.want)
			}
		})
	}
}

// TestApplierMetadata checks what the tree keeps of metadata across layers: a
// directory meeting a directory takes the new metadata; a directory an opaque
// marker leaves in place only as a parent loses the lower one; implied parents take
// the build time; and declared directories keep their own times although entries
// were added below them.
func TestApplierMetadata(t *testing.T) {
	l1 := layerTar(t,
		with(dirE("a/"), func(h *tar.Header) { h.Mode, h.Uid = 0o700, 5 }),
		with(dirE("a/b/"), func(h *tar.Header) { h.Mode, h.Uid = 0o711, 6 }),
		fileE("a/b/old", "o"),
		fileE("implied/deep/f", "f"),
	)
	l2 := layerTar(t,
		with(dirE("a/"), func(h *tar.Header) { h.Mode, h.Uid = 0o750, 7 }),
		fileE("a/b/new", "n"),
		opqE("a"),
	)
	fsys, err := applyAll(t, l1, l2)
	must(t, err)
	want := `d 0750 7:0 1600000000 /a
d 0755 0:0 build /a/b
f 0644 0:0 1600000000 /a/b/new 1 sha256:1b16b1df538b
d 0755 0:0 build /implied
d 0755 0:0 build /implied/deep
f 0644 0:0 1600000000 /implied/deep/f 1 sha256:252f10c83610
`
	if got := fsListing(t, fsys); got != want {
		t.Errorf("tree:\n%s\nwant:\n%s", got, want)
	}
}
