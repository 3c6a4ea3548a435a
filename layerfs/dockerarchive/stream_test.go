package dockerarchive_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// onlyWriter hides every method but Write, as a pipe would.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }

// rawLayer is a layer whose diff_id is given up front, as a base tarball's is.
func rawLayer(b []byte) *layerfs.Layer {
	return layerfs.NewLayer(int64(len(b)), layerfs.DigestOf(b), func(w io.Writer) error { _, err := w.Write(b); return err })
}

// TestWriteStreamSameBytes writes each case once with WriteFile and once with
// WriteStream into a writer that cannot seek, from fresh layers each time (WriteFile
// learns the diff_ids as it writes), and requires the same bytes and result.
func TestWriteStreamSameBytes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name    string
		entries func(t *testing.T) []dockerarchive.Entry
	}{
		{"two layers", func(t *testing.T) []dockerarchive.Entry {
			return []dockerarchive.Entry{{Image: imageOf(layerOf(t, "a", "alpha"), layerOf(t, "b", "beta")), Tags: []image.Tag{tag(t, "app:1"), tag(t, "registry.example:5000/x/app:2")}}}
		}},
		{"no layers, no tags", func(t *testing.T) []dockerarchive.Entry {
			return []dockerarchive.Entry{{Image: imageOf()}}
		}},
		{"same bytes in two images", func(t *testing.T) []dockerarchive.Entry {
			return []dockerarchive.Entry{
				{Image: imageOf(layerOf(t, "same", "bytes")), Tags: []image.Tag{tag(t, "a")}},
				{Image: imageOf(layerOf(t, "same", "bytes"), layerOf(t, "other", "x")), Tags: []image.Tag{tag(t, "b")}},
			}
		}},
		{"same bytes twice in one image", func(t *testing.T) []dockerarchive.Entry {
			return []dockerarchive.Entry{{Image: imageOf(layerOf(t, "same", "bytes"), layerOf(t, "x", "x"), layerOf(t, "same", "bytes"))}}
		}},
		{"one layer value in two images", func(t *testing.T) []dockerarchive.Entry {
			shared := layerOf(t, "shared", "s")
			return []dockerarchive.Entry{
				{Image: imageOf(shared), Tags: []image.Tag{tag(t, "a")}},
				{Image: imageOf(shared, layerOf(t, "y", "y")), Tags: []image.Tag{tag(t, "b")}},
			}
		}},
		{"known and unknown diff_ids", func(t *testing.T) []dockerarchive.Entry {
			base := layerOf(t, "base", "base")
			var buf bytes.Buffer
			if _, err := base.WriteTo(&buf); err != nil {
				t.Fatal(err)
			}
			// The same bytes once with a known diff_id and once computed.
			return []dockerarchive.Entry{{Image: imageOf(rawLayer(buf.Bytes()), layerOf(t, "base", "base"), layerOf(t, "z", "z"))}}
		}},
		{"the same image twice", func(t *testing.T) []dockerarchive.Entry {
			return []dockerarchive.Entry{
				{Image: imageOf(layerOf(t, "a", "a")), Tags: []image.Tag{tag(t, "one")}},
				{Image: imageOf(layerOf(t, "a", "a")), Tags: []image.Tag{tag(t, "two")}},
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			out := filepath.Join(t.TempDir(), "a.tar")
			want, err := dockerarchive.WriteFile(context.Background(), out, c.entries(t))
			if err != nil {
				t.Fatal(err)
			}
			wantBytes, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			res, err := dockerarchive.WriteStream(context.Background(), onlyWriter{&got}, c.entries(t))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), wantBytes) {
				t.Errorf("WriteStream wrote %d bytes, WriteFile %d; they differ", got.Len(), len(wantBytes))
			}
			if len(res.Images) != len(want.Images) {
				t.Fatalf("results: %d images, want %d", len(res.Images), len(want.Images))
			}
			for i := range res.Images {
				if res.Images[i].ID != want.Images[i].ID || res.Images[i].Manifest != want.Images[i].Manifest {
					t.Errorf("image %d: %+v, want %+v", i, res.Images[i], want.Images[i])
				}
			}
		})
	}
}

// A read-back archive (every diff_id known) streams to the same bytes as the file.
func TestWriteStreamReadBack(t *testing.T) {
	t.Parallel()
	out := filepath.Join(t.TempDir(), "a.tar")
	entries := []dockerarchive.Entry{{Image: imageOf(layerOf(t, "a", "alpha"), layerOf(t, "b", "beta")), Tags: []image.Tag{tag(t, "app:1")}}}
	if _, err := dockerarchive.WriteFile(context.Background(), out, entries); err != nil {
		t.Fatal(err)
	}
	back, err := readEntries(out)
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	if _, err := dockerarchive.WriteStream(context.Background(), onlyWriter{&got}, back); err != nil {
		t.Fatal(err)
	}
	if want, _ := os.ReadFile(out); !bytes.Equal(got.Bytes(), want) {
		t.Error("a read-back archive streams to other bytes")
	}
}

// Faults: a layer that fails while it is hashed ahead, a reader that goes away, and
// cancellation, each an error rather than a hang.
func TestWriteStreamFaults(t *testing.T) {
	t.Parallel()
	bad := layerfs.NewLayer(2048, "", func(w io.Writer) error {
		w.Write(make([]byte, 1000))
		return errors.New("disk on fire")
	})
	_, err := dockerarchive.WriteStream(context.Background(), io.Discard, []dockerarchive.Entry{{Image: imageOf(layerOf(t, "ok", "ok"), bad)}})
	if err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Errorf("failing layer: err = %v", err)
	}

	pr, pw := io.Pipe()
	pr.CloseWithError(errors.New("reader gone"))
	_, err = dockerarchive.WriteStream(context.Background(), pw, []dockerarchive.Entry{{Image: imageOf(layerOf(t, "a", "a"))}})
	if err == nil || !strings.Contains(err.Error(), "reader gone") {
		t.Errorf("closed pipe: err = %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = dockerarchive.WriteStream(ctx, io.Discard, []dockerarchive.Entry{{Image: imageOf(layerOf(t, "a", "a"), layerOf(t, "b", "b"))}})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: err = %v, want context.Canceled", err)
	}
}
