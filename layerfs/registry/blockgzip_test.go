package registry

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// TestBlockGzip checks that the block-parallel gzip is valid gzip, and that its bytes
// depend neither on the number of workers nor on the sizes of the writes.
func TestBlockGzip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	mixed := make([]byte, 5*gzBlockSize+12345)
	for i := range mixed {
		if i%3 == 0 {
			mixed[i] = byte(rng.IntN(256))
		} else {
			mixed[i] = byte('a' + i%7)
		}
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"small", []byte("hello, world\n")},
		{"one block exactly", mixed[:gzBlockSize]},
		{"several blocks", mixed},
	} {
		var want [32]byte
		for i, cfg := range []struct{ workers, chunk int }{{1, 1 << 20}, {2, 4096}, {4, 777}, {3, 3 << 20}} {
			var out bytes.Buffer
			z, err := newBlockGzip(&out, 6, cfg.workers)
			if err != nil {
				t.Fatal(err)
			}
			for p := tc.in; len(p) > 0; {
				k := min(len(p), cfg.chunk)
				if _, err := z.Write(p[:k]); err != nil {
					t.Fatal(err)
				}
				p = p[k:]
			}
			if err := z.Close(); err != nil {
				t.Fatal(err)
			}
			r, err := gzip.NewReader(bytes.NewReader(out.Bytes()))
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			back, err := io.ReadAll(r)
			if err != nil {
				t.Fatalf("%s: reading back: %v", tc.name, err)
			}
			if !bytes.Equal(back, tc.in) {
				t.Fatalf("%s: the data did not survive", tc.name)
			}
			sum := sha256.Sum256(out.Bytes())
			if i == 0 {
				want = sum
			} else if sum != want {
				t.Errorf("%s: %d workers and %d-byte writes gave other bytes", tc.name, cfg.workers, cfg.chunk)
			}
		}
	}
}

// BenchmarkBlockGzip compresses 64 MiB of half-compressible bytes on one worker and
// on every core; the ratio of the two is what a push of a big layer gains.
func BenchmarkBlockGzip(b *testing.B) {
	rng := rand.New(rand.NewPCG(3, 4))
	in := make([]byte, 64<<20)
	for i := range in {
		if i%2 == 0 {
			in[i] = byte(rng.IntN(256))
		} else {
			in[i] = byte('a' + i%13)
		}
	}
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				z, err := newBlockGzip(io.Discard, 6, workers)
				if err != nil {
					b.Fatal(err)
				}
				z.Write(in)
				if err := z.Close(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
