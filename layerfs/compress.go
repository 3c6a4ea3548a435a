package layerfs

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"fmt"
	"io"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression is a stream compression detected from its first bytes.
type Compression string

// The compressions Docker's own archive code detects (moby go-archive DetectCompression).
const (
	Uncompressed Compression = ""
	Gzip         Compression = "gzip"
	Bzip2        Compression = "bzip2"
	Xz           Compression = "xz"
	Zstd         Compression = "zstd"
)

var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b, 0x08}},
	{Bzip2, []byte("BZh")},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
}

// DetectCompression looks at the first bytes of br without consuming them.
func DetectCompression(br *bufio.Reader) Compression {
	head, _ := br.Peek(8)
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) {
			return m.c
		}
	}
	return Uncompressed
}

// Decompress returns a reader of the decompressed stream.
func Decompress(r io.Reader, c Compression) (io.ReadCloser, error) {
	switch c {
	case Uncompressed:
		return io.NopCloser(r), nil
	case Gzip:
		return gzip.NewReader(r)
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	case Xz:
		xr, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(xr), nil
	case Zstd:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return nil, fmt.Errorf("unknown compression %q", string(c))
}

// BufferSize is the size of the buffer to read or write a stream of about n bytes
// through: n itself within 4 KiB and 1 MiB. A 1 MiB buffer made and cleared for
// every small tarball costs more than reading it (the fuzz targets load thousands).
func BufferSize(n int64) int {
	return int(min(max(n, 4<<10), 1<<20))
}
