package registry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"sync"

	"github.com/klauspost/compress/flate"
)

// blockGzip compresses one stream on several cores into one gzip member whose bytes
// depend only on the input and the level, never on the number of workers or on the
// sizes of the writes: the input is cut at fixed offsets into blocks of blockSize
// bytes; each block is deflated on its own, with the 32 KiB before it as the preset
// dictionary, and ends with a sync flush (the last with the final block), so the
// blocks join into one deflate stream. This is pgzip's layout (klauspost/pgzip),
// except that the cut points are offsets of the input, not of the writes, which is
// what makes the bytes reproducible.
//
// A push spends most of its time here: one core deflates at level 6 at about
// 60 MiB/s, so a layer of gigabytes would otherwise keep a second core idle.
type blockGzip struct {
	w       io.Writer
	level   int
	workers int

	buf  []byte // the block being filled
	dict []byte // the last 32 KiB of the input before buf
	crc  uint32
	size uint32 // input length mod 2^32, for the trailer

	started bool
	jobs    chan *gzBlock
	results chan *gzBlock // in input order
	done    chan error    // the writer goroutine's end
	err     error
}

const (
	gzBlockSize  = 1 << 20
	gzWindowSize = 32 << 10
)

type gzBlock struct {
	in, dict []byte
	final    bool
	out      *bytes.Buffer
	err      error
	ready    chan struct{}
}

var (
	gzBufs = sync.Pool{New: func() any { b := make([]byte, 0, gzBlockSize); return &b }}
	gzOuts = sync.Pool{New: func() any { return bytes.NewBuffer(make([]byte, 0, gzBlockSize)) }}
)

// newBlockGzip returns a writer that compresses into w with workers goroutines.
// The header is the one klauspost/compress/gzip writes with a zero Header: no name,
// MTIME 0, XFL for the level, OS 255.
func newBlockGzip(w io.Writer, level, workers int) (*blockGzip, error) {
	if level < flate.HuffmanOnly || level > flate.BestCompression {
		return nil, errors.New("gzip: invalid compression level")
	}
	if workers < 1 {
		workers = 1
	}
	z := &blockGzip{w: w, level: level, workers: workers, crc: 0}
	b := gzBufs.Get().(*[]byte)
	z.buf = (*b)[:0]
	return z, nil
}

func (z *blockGzip) start() error {
	z.started = true
	hdr := [10]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255}
	switch z.level {
	case flate.BestCompression:
		hdr[8] = 2
	case flate.BestSpeed:
		hdr[8] = 4
	}
	if _, err := z.w.Write(hdr[:]); err != nil {
		return err
	}
	// At most workers+1 blocks are in flight, each 1 MiB in and about as much out:
	// memory stays at a few MiB whatever the layer's size.
	z.jobs = make(chan *gzBlock, z.workers)
	z.results = make(chan *gzBlock, z.workers)
	z.done = make(chan error, 1)
	for i := 0; i < z.workers; i++ {
		go func() {
			// One deflater a worker, reset for each block (ResetDict gives the bytes
			// NewWriterDict gives): a deflater is about a megabyte of tables, too much
			// to make for every block.
			var fw *flate.Writer
			for b := range z.jobs {
				b.out = gzOuts.Get().(*bytes.Buffer)
				b.out.Reset()
				if fw == nil {
					fw, b.err = flate.NewWriterDict(b.out, z.level, b.dict)
				} else {
					fw.ResetDict(b.out, b.dict)
				}
				if b.err == nil {
					b.err = deflateBlock(fw, b.in, b.final)
				}
				close(b.ready)
			}
		}()
	}
	go func() {
		var err error
		for b := range z.results {
			<-b.ready
			if err == nil {
				err = b.err
			}
			if err == nil {
				_, err = z.w.Write(b.out.Bytes())
			}
			in := b.in[:0]
			gzBufs.Put(&in)
			gzOuts.Put(b.out)
		}
		z.done <- err
	}()
	return nil
}

func deflateBlock(fw *flate.Writer, in []byte, final bool) error {
	if _, err := fw.Write(in); err != nil {
		return err
	}
	if final {
		return fw.Close()
	}
	return fw.Flush()
}

func (z *blockGzip) Write(p []byte) (int, error) {
	if z.err != nil {
		return 0, z.err
	}
	if !z.started {
		if z.err = z.start(); z.err != nil {
			return 0, z.err
		}
	}
	n := len(p)
	z.crc = crc32.Update(z.crc, crc32.IEEETable, p)
	z.size += uint32(n)
	for len(p) > 0 {
		k := min(len(p), gzBlockSize-len(z.buf))
		z.buf = append(z.buf, p[:k]...)
		p = p[k:]
		if len(z.buf) == gzBlockSize {
			z.submit(false)
		}
	}
	return n, nil
}

// submit hands the filled block to the workers, in order.
func (z *blockGzip) submit(final bool) {
	b := &gzBlock{in: z.buf, dict: z.dict, final: final, ready: make(chan struct{})}
	if len(z.buf) >= gzWindowSize {
		z.dict = append([]byte(nil), z.buf[len(z.buf)-gzWindowSize:]...)
	} else {
		d := append(append([]byte(nil), z.dict...), z.buf...)
		z.dict = d[max(0, len(d)-gzWindowSize):]
	}
	z.results <- b
	z.jobs <- b
	nb := gzBufs.Get().(*[]byte)
	z.buf = (*nb)[:0]
}

// Close writes the last block and the trailer, and waits for every block to be
// written.
func (z *blockGzip) Close() error {
	if z.err != nil {
		z.abort()
		return z.err
	}
	if !z.started {
		if z.err = z.start(); z.err != nil {
			return z.err
		}
	}
	z.submit(true)
	close(z.jobs)
	close(z.results)
	if err := <-z.done; err != nil {
		z.err = err
		return err
	}
	var tr [8]byte
	binary.LittleEndian.PutUint32(tr[:4], z.crc)
	binary.LittleEndian.PutUint32(tr[4:], z.size)
	_, z.err = z.w.Write(tr[:])
	if z.err == nil {
		z.err = errors.New("gzip: writer closed")
		return nil
	}
	return z.err
}

// abort stops the goroutines after an error, without writing more.
func (z *blockGzip) abort() {
	if !z.started || z.jobs == nil {
		return
	}
	close(z.jobs)
	close(z.results)
	<-z.done
	z.jobs = nil
}
