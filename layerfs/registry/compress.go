package registry

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"

	"github.com/dfbuild/dfbuild/layerfs"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/klauspost/compress/zstd"
)

// Compressions a push accepts, as buildx spells them (compression=).
const (
	CompressionGzip         = "gzip"
	CompressionZstd         = "zstd"
	CompressionUncompressed = "uncompressed"
)

// Default levels, as BuildKit's (util/compression gzip.go: compress/gzip's
// DefaultCompression, which is flate level 6; zstd.go: klauspost's SpeedDefault, which
// is zstd level 3).
const (
	defaultGzipLevel = 6
	defaultZstdLevel = 3
)

// The gzip writer is klauspost/compress/gzip, not compress/gzip. Measured on one
// 256 MiB tar of /usr/share/doc and /usr/bin (Go 1.26.8, klauspost v1.20.4, one writer,
// 32 KiB writes, a shared 2-core box, so the rates are rough):
//
//	compress/gzip level 6       28 MiB/s  ratio 0.456
//	klauspost gzip level 6      62 MiB/s  ratio 0.463
//	compress/gzip level 1       70 MiB/s  ratio 0.500
//	klauspost gzip level 1     230 MiB/s  ratio 0.502
//	klauspost zstd level 3     229 MiB/s  ratio 0.408
//
// klauspost is 2.2x faster at BuildKit's level for 1.5 % more bytes, so the default
// stays level 6 (the ratio docker users expect) and still beats stdlib's level 1.
// Its bytes do not depend on the sizes of the writes (checked at levels 1, 6 and 9
// with writes of 512 B to 1 MiB) and it is pure Go, so one version gives the same
// bytes on every machine; a klauspost upgrade may change them, as a Go upgrade may
// change compress/gzip's. The header is fixed: no name, no comment, MTIME 0 (a
// zero Header.ModTime writes 0). A layer is deflated by blockGzip: 1 MiB blocks cut at
// fixed input offsets, each with the 32 KiB before it as dictionary, on every core,
// so one big layer uses both cores and the bytes still depend only on the input and
// the level (not on the number of cores or the sizes of the writes; pgzip cuts
// blocks where the writes fall). Several layers also compress at once (pushJobs).
// zstd runs with one encoder goroutine and without concurrent blocks, the setting
// whose output is the serial one (klauspost's zstd/encoder.go turns concurrent
// blocks off at concurrency 1; with them the bytes would depend on the cores).

// compression is a validated compression= and compression-level= pair.
type compression struct {
	kind  string // CompressionGzip, CompressionZstd or CompressionUncompressed
	level int
}

func newCompression(kind string, level int) (compression, error) {
	switch kind {
	case "", CompressionGzip:
		if level < 0 {
			level = defaultGzipLevel
		}
		if level > 9 {
			return compression{}, fmt.Errorf("compression-level %d is out of range for gzip (0-9)", level)
		}
		return compression{CompressionGzip, level}, nil
	case CompressionZstd:
		if level < 0 {
			level = defaultZstdLevel
		}
		if level > 22 {
			return compression{}, fmt.Errorf("compression-level %d is out of range for zstd (0-22)", level)
		}
		return compression{CompressionZstd, level}, nil
	case CompressionUncompressed:
		return compression{CompressionUncompressed, 0}, nil
	case "estargz":
		return compression{}, fmt.Errorf("compression %q is not supported; use gzip, zstd or uncompressed", kind)
	}
	return compression{}, fmt.Errorf("unknown compression %q; use gzip, zstd or uncompressed", kind)
}

// recordKind names the cache records of layers compressed this way ("gzip-6"). The
// level is part of it: another level gives other bytes.
func (c compression) recordKind() string { return fmt.Sprintf("%s-%d", c.kind, c.level) }

// mediaType is the layer media type of this compression.
func (c compression) mediaType(oci bool) types.MediaType {
	switch c.kind {
	case CompressionZstd:
		return types.OCILayerZStd
	case CompressionUncompressed:
		if oci {
			return types.OCIUncompressedLayer
		}
		return types.DockerUncompressedLayer
	}
	if oci {
		return types.OCILayer
	}
	return types.DockerLayer
}

// compress streams l through the compressor into w; progress, when set, is told how
// many bytes of the layer went in.
func (c compression) compress(w io.Writer, l *layerfs.Layer, progress func(int64)) error {
	var zw io.WriteCloser
	switch c.kind {
	case CompressionGzip:
		gw, err := newBlockGzip(w, c.level, runtime.GOMAXPROCS(0))
		if err != nil {
			return err
		}
		zw = gw
	case CompressionZstd:
		zs, err := zstd.NewWriter(w,
			zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(c.level)),
			zstd.WithEncoderConcurrency(1))
		if err != nil {
			return err
		}
		zw = zs
	default:
		_, err := l.WriteTo(w)
		return err
	}
	var in io.Writer = zw
	if progress != nil {
		in = &progressWriter{w: zw, report: progress}
	}
	if _, err := l.WriteTo(in); err != nil {
		zw.Close()
		return err
	}
	return zw.Close()
}

// layerKind says what compression a layer media type has, and whether it is one a
// push may rename between Docker's and OCI's names.
func layerKind(mt types.MediaType) (kind string, known bool) {
	switch mt {
	case types.DockerLayer, types.OCILayer:
		return CompressionGzip, true
	case types.OCILayerZStd, dockerLayerZstd:
		return CompressionZstd, true
	case types.DockerUncompressedLayer, types.OCIUncompressedLayer:
		return CompressionUncompressed, true
	}
	return "", false
}

// convertMediaType names a kept blob's media type the way the manifest's family
// does, as BuildKit's exporter converts base layers (ConvertLayerMediaType).
// Unknown types (foreign or non-distributable layers) are kept as they are.
func convertMediaType(mt types.MediaType, oci bool) types.MediaType {
	kind, ok := layerKind(mt)
	if !ok {
		return mt
	}
	return compression{kind: kind}.mediaType(oci)
}

// blob is a layer blob whose digest, size and diff_id are known before any byte is
// read, so go-containerregistry checks the registry with a HEAD (or mounts it)
// before it opens it: a partial.CompressedLayer with DiffID.
type blob struct {
	digest    v1.Hash
	size      int64
	diffID    v1.Hash
	mediaType types.MediaType
	open      func() (io.ReadCloser, error)
	// read, when set, is told how many bytes of the blob were read so far.
	read func(done int64)
}

func (b *blob) Digest() (v1.Hash, error)            { return b.digest, nil }
func (b *blob) Size() (int64, error)                { return b.size, nil }
func (b *blob) DiffID() (v1.Hash, error)            { return b.diffID, nil }
func (b *blob) MediaType() (types.MediaType, error) { return b.mediaType, nil }

func (b *blob) Compressed() (io.ReadCloser, error) {
	rc, err := b.open()
	if err != nil {
		return nil, err
	}
	if b.read == nil {
		return rc, nil
	}
	return &countingReader{rc: rc, report: b.read}, nil
}

// countingReader reports progress every MiB and at the end.
type countingReader struct {
	rc     io.ReadCloser
	n      int64
	last   int64
	report func(int64)
}

func (r *countingReader) Read(p []byte) (int, error) {
	n, err := r.rc.Read(p)
	r.n += int64(n)
	if r.n-r.last >= 1<<20 || (err == io.EOF && r.n != r.last) {
		r.last = r.n
		r.report(r.n)
	}
	return n, err
}

func (r *countingReader) Close() error { return r.rc.Close() }

// openCached opens a cached blob, hashing it as it is read: a blob whose bytes no
// longer match (a corrupted cache) fails the read at its end and is removed, so
// the next push compresses or fetches it again. The registry checks the digest too,
// and would refuse the upload; this makes the error say where the fault is.
func (c *Cache) openCached(d v1.Hash, size int64) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(c.blobPath(d))
		if err != nil {
			return nil, fmt.Errorf("reading blob %s from the cache: %w", d, err)
		}
		return &verifyingReader{f: f, h: sha256.New(), d: d, size: size, remove: func() { os.Remove(c.blobPath(d)) }}, nil
	}
}

type verifyingReader struct {
	f *os.File
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
	d      v1.Hash
	size   int64
	n      int64
	remove func()
}

var errCorruptBlob = errors.New("the cached blob is corrupt")

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	v.n += int64(n)
	if err == io.EOF && (v.n != v.size || hex.EncodeToString(v.h.Sum(nil)) != v.d.Hex) {
		v.remove()
		return n, fmt.Errorf("blob %s: %w (removed; push again)", v.d, errCorruptBlob)
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }

// progressWriter reports every MiB written.
type progressWriter struct {
	w      io.Writer
	n      int64
	last   int64
	report func(int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.n-p.last >= 1<<20 {
		p.last = p.n
		p.report(p.n)
	}
	return n, err
}

// compressLayer makes the blob of a layer in compression c: the one the cache
// recorded for it, or a new one compressed once into the cache and recorded. A zero
// diffID means the layer's is not known yet: it is computed while the layer streams
// into the compressor.
func (c *Client) compressLayer(ctx context.Context, l *layerfs.Layer, diffID v1.Hash, comp compression, oci bool, ref string) (*blob, error) {
	mt := comp.mediaType(oci)
	if comp.kind == CompressionUncompressed {
		// The blob is the tar itself: its digest is the diff_id, and it streams
		// straight from the layer when the registry lacks it.
		return &blob{digest: diffID, size: l.Size(), diffID: diffID, mediaType: mt, open: func() (io.ReadCloser, error) {
			pr, pw := io.Pipe()
			go func() {
				_, err := l.WriteTo(pw)
				pw.CloseWithError(err)
			}()
			return pr, nil
		}}, nil
	}
	kind := comp.recordKind()
	if diffID != (v1.Hash{}) {
		if rec, ok := c.cache.LookupLayer(kind, diffID); ok {
			d := rec.Descriptor
			return &blob{digest: d.Digest, size: d.Size, diffID: diffID, mediaType: mt, open: c.cache.openCached(d.Digest, d.Size)}, nil
		}
	}
	ev := Event{Action: "push", Ref: ref, Digest: diffID.String(), Total: l.Size(), Status: "compressing"}
	d, n, err := c.cache.WriteBlob(ctx, func(w io.Writer) error {
		return comp.compress(w, l, func(done int64) {
			e := ev
			e.Done = done
			c.report(e)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("compressing a layer: %w", err)
	}
	if diffID == (v1.Hash{}) {
		// The layer hashed itself as it streamed (layerfs.Layer.WriteTo).
		ld, _ := l.KnownDiffID()
		if diffID, err = v1.NewHash(string(ld)); err != nil {
			return nil, fmt.Errorf("compressing a layer: %w", err)
		}
	}
	rec := LayerRecord{DiffID: diffID, Descriptor: v1.Descriptor{MediaType: mt, Digest: d, Size: n}}
	if err := c.cache.RecordLayer(kind, rec); err != nil {
		return nil, err
	}
	// The blob was hashed as it was written a moment ago: the upload reads it as it is
	// (the registry checks the digest again).
	path := c.cache.blobPath(d)
	return &blob{digest: d, size: n, diffID: diffID, mediaType: mt, open: func() (io.ReadCloser, error) { return os.Open(path) }}, nil
}

// dockerLayerZstd is the Docker-named zstd layer type some tools write (moby
// accepts it on pull); go-containerregistry has no constant for it.
const dockerLayerZstd types.MediaType = "application/vnd.docker.image.rootfs.diff.tar.zstd"
