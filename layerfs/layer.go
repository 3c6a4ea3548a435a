package layerfs

import (
	"crypto/sha256"
	"fmt"
	"io"
	"strings"

	"github.com/opencontainers/go-digest"
)

// Digest is a content digest in OCI form, "sha256:<64 hex digits>": a
// go-digest Digest restricted to sha256, the only algorithm layers and configs use.
type Digest string

// Hex is the digest without its algorithm prefix.
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), "sha256:") }

// Validate reports whether d is a well-formed sha256 digest.
func (d Digest) Validate() error {
	if !strings.HasPrefix(string(d), "sha256:") || digest.Digest(d).Validate() != nil {
		return fmt.Errorf("invalid digest %q", string(d))
	}
	return nil
}

// DigestOf returns the sha256 digest of b.
func DigestOf(b []byte) Digest {
	return Digest(digest.SHA256.FromBytes(b))
}

// Layer is one uncompressed layer tar. Its size is known before it is written; its
// digest (the diff_id) is known from the start for layers that already exist
// (a base tarball, a blob in an archive) and is computed while the first write
// streams it for layers built from changes.
type Layer struct {
	size   int64
	diffID Digest
	write  func(w io.Writer) error
	// onEntry, when set, is called as each file of a layer built from changes is
	// written, for progress displays.
	onEntry func()
}

// OnEntry sets a function called as each file of the layer is written (layers read
// whole from a file, such as a base tarball, never call it). nil removes it.
func (l *Layer) OnEntry(fn func()) { l.onEntry = fn }

// NewLayer returns a layer of exactly size bytes that write produces. diffID may be
// empty when it is not known yet.
func NewLayer(size int64, diffID Digest, write func(w io.Writer) error) *Layer {
	return &Layer{size: size, diffID: diffID, write: write}
}

// Size is the exact length of the tar stream in bytes.
func (l *Layer) Size() int64 { return l.size }

// KnownDiffID returns the diff_id if it has been computed or was given.
func (l *Layer) KnownDiffID() (Digest, bool) { return l.diffID, l.diffID != "" }

// DiffID returns the sha256 of the layer's bytes, streaming the layer once to compute
// it if it is not known yet.
func (l *Layer) DiffID() (Digest, error) {
	if l.diffID != "" {
		return l.diffID, nil
	}
	if _, err := l.WriteTo(io.Discard); err != nil {
		return "", err
	}
	return l.diffID, nil
}

// WriteTo streams the layer into w, hashing the bytes on their way. It fails if the
// stream's length or digest differs from what the layer promised, so a writer that
// relies on Size and DiffID can trust what it wrote.
func (l *Layer) WriteTo(w io.Writer) (int64, error) {
	h := sha256.New()
	cw := &countingWriter{w: w, h: h}
	if err := l.write(cw); err != nil {
		return cw.n, err
	}
	if cw.n != l.size {
		return cw.n, fmt.Errorf("layer stream has %d bytes, expected %d", cw.n, l.size)
	}
	d := Digest(digest.NewDigest(digest.SHA256, h))
	if l.diffID != "" && d != l.diffID {
		return cw.n, fmt.Errorf("layer stream has digest %s, expected %s", d, l.diffID)
	}
	l.diffID = d
	return cw.n, nil
}

type countingWriter struct {
	w io.Writer
	h io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.h.Write(p[:n])
	c.n += int64(n)
	return n, err
}
