package dockerarchive

import (
	"context"

	"github.com/dfbuild/dfbuild/layerfs"
)

// Trace receives events while an archive is written, for progress displays. Any field
// may be nil. Like net/http/httptrace, it travels in the context, so the writers'
// signatures stay about what they write.
type Trace struct {
	// Start is called once, with the number of layer bytes the archive will hold at
	// most (every layer of every image, before blobs stored twice are dropped).
	Start func(totalBytes int64)
	// Layer is called after layer j of image i was written, or found stored already.
	Layer func(i, j int, diffID layerfs.Digest, size int64, reused bool)
	// Wrote is called as layer bytes stream into the archive.
	Wrote func(n int)
	// File is called as each file (anything but a directory) of a layer built by
	// this build is written.
	File func()
}

type traceKey struct{}

// WithTrace returns a context that makes the writers in this package report to t.
func WithTrace(ctx context.Context, t *Trace) context.Context {
	return context.WithValue(ctx, traceKey{}, t)
}

// traceFrom returns the context's trace, or an empty one.
func traceFrom(ctx context.Context) *Trace {
	if t, ok := ctx.Value(traceKey{}).(*Trace); ok && t != nil {
		return t
	}
	return &Trace{}
}

// totalLayerBytes is the Start figure for entries.
func totalLayerBytes(entries []Entry) int64 {
	var n int64
	for _, e := range entries {
		for _, l := range e.Image.Layers {
			n += l.Size()
		}
	}
	return n
}
