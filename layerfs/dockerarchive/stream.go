package dockerarchive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
)

// WriteStream writes the images as one archive to w, which need not be seekable (a
// pipe, standard output, an HTTP request body). The bytes are the same WriteFile
// writes for the same entries.
//
// Write names a layer blob by its diff_id in the header before the layer's bytes, so
// a layer whose diff_id is not known yet is written under a placeholder name that is
// patched afterwards, and a layer that turns out to be stored already is cut off
// again. Neither can be done to a stream. WriteStream therefore hashes every layer
// whose diff_id is unknown before the archive gets to it, which makes both cases
// impossible: every header is written with its final name, and a duplicate is known
// and skipped before a byte of it is written. The hashing runs one pass ahead of the
// writer in a goroutine, so the extra pass over the layers costs time only while the
// writer waits for a layer that is still being hashed, not the whole pass again.
//
// A failure can leave a truncated archive in w; the caller owns what w is.
func WriteStream(ctx context.Context, w io.Writer, entries []Entry) (*Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	h := startHashing(ctx, entries)
	defer func() {
		// No goroutine may touch a layer after WriteStream returns: the caller may
		// close what the layers read from.
		cancel()
		h.wg.Wait()
	}()
	aw := newWriter(streamFile{w})
	return aw.write(ctx, &streamSink{writer: aw, h: h}, entries)
}

// errNotSeekable is what streamFile's random-access methods return. They are never
// called when every layer's diff_id is known before it is written; the error is a
// guard, not a path.
var errNotSeekable = errors.New("internal: the archive stream cannot be patched or truncated")

// streamFile gives a plain writer the File interface Write wants.
type streamFile struct{ io.Writer }

func (streamFile) WriteAt([]byte, int64) (int, error) { return 0, errNotSeekable }
func (streamFile) Seek(int64, int) (int64, error)     { return 0, errNotSeekable }
func (streamFile) Truncate(int64) error               { return errNotSeekable }

// hashing computes the diff_ids of the layers that lack one, in the order the archive
// writes them, one layer at a time.
type hashing struct {
	wg   sync.WaitGroup
	done map[*layerfs.Layer]chan struct{} // closed once the layer's diff_id is known
	mu   sync.Mutex
	errs map[*layerfs.Layer]error
}

func startHashing(ctx context.Context, entries []Entry) *hashing {
	h := &hashing{done: map[*layerfs.Layer]chan struct{}{}, errs: map[*layerfs.Layer]error{}}
	var todo []*layerfs.Layer
	for _, e := range entries {
		for _, l := range e.Image.Layers {
			if _, known := l.KnownDiffID(); known || h.done[l] != nil {
				continue
			}
			h.done[l] = make(chan struct{})
			todo = append(todo, l)
		}
	}
	if len(todo) == 0 {
		return h
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for _, l := range todo {
			// WriteTo records the diff_id in the layer; ctxWriter stops a long
			// layer once the archive has failed or was cancelled.
			_, err := l.WriteTo(ctxWriter{ctx: ctx, w: io.Discard})
			if err != nil {
				h.mu.Lock()
				h.errs[l] = err
				h.mu.Unlock()
			}
			close(h.done[l])
		}
	}()
	return h
}

// wait blocks until l's diff_id is known.
func (h *hashing) wait(ctx context.Context, l *layerfs.Layer) error {
	done := h.done[l]
	if done == nil {
		return nil
	}
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if err := h.errs[l]; err != nil {
		return fmt.Errorf("computing the diff_id: %w", err)
	}
	return nil
}

// streamSink is the archive writer with every layer's diff_id known before the
// layer is written.
type streamSink struct {
	*writer
	h *hashing
}

func (s *streamSink) layer(ctx context.Context, l *layerfs.Layer, mtime time.Time) (layerfs.Digest, bool, error) {
	if err := s.h.wait(ctx, l); err != nil {
		return "", false, err
	}
	return s.writer.layer(ctx, l, mtime)
}
