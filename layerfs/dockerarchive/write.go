package dockerarchive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// Media types written into the OCI half of the archive.
const (
	MediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	MediaTypeManifest = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeConfig   = "application/vnd.oci.image.config.v1+json"
	MediaTypeLayer    = "application/vnd.oci.image.layer.v1.tar"

	annotationName = "io.containerd.image.name"
	annotationRef  = "org.opencontainers.image.ref.name"
)

// Entry is one image to store and the names it goes by.
type Entry struct {
	Image *image.Image
	Tags  []image.Tag
}

// Descriptor is an OCI content descriptor.
type Descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      layerfs.Digest    `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Manifest is an OCI image manifest.
type Manifest struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Config        Descriptor   `json:"config"`
	Layers        []Descriptor `json:"layers"`
}

// Index is an OCI image index (index.json).
type Index struct {
	SchemaVersion int          `json:"schemaVersion"`
	MediaType     string       `json:"mediaType"`
	Manifests     []Descriptor `json:"manifests"`
}

// DockerManifest is one element of manifest.json.
type DockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// Result describes what was written for each image, in order.
type Result struct {
	Images []ImageResult
}

// ImageResult is one image of a written archive.
type ImageResult struct {
	ID       layerfs.Digest // the config digest
	Manifest layerfs.Digest
	Tags     []image.Tag
}

// WriteFile writes the images to the archive at dest atomically: into a temporary
// file in dest's directory, renamed over dest only once everything was written,
// synced and checked.
//
// dest must not exist yet or be a regular file (CheckFileDest): a device, FIFO,
// socket, symlink or directory there is refused, before anything is written and
// again right before the rename.
func WriteFile(ctx context.Context, dest string, entries []Entry) (*Result, error) {
	if err := CheckFileDest(dest); err != nil {
		return nil, err
	}
	return writeFileAtomic(dest, func(f File) (*Result, error) { return Write(ctx, f, entries) })
}

// writeFileAtomic runs write on a temporary file beside dest and renames it over
// dest only once it is written, synced and dest is still fit to replace, so a failure
// leaves whatever dest was. WriteFile and WriteIndexFile share it.
func writeFileAtomic[R any](dest string, write func(File) (R, error)) (R, error) {
	var zero R
	tmp, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return zero, fmt.Errorf("creating the output file: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	res, err := write(tmp)
	if err != nil {
		return zero, err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return zero, err
	}
	if err := tmp.Sync(); err != nil {
		return zero, fmt.Errorf("syncing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return zero, err
	}
	if err := CheckFileDest(dest); err != nil {
		return zero, err
	}
	if err := os.Rename(tmp.Name(), dest); err != nil {
		return zero, fmt.Errorf("moving the archive into place: %w", err)
	}
	ok = true
	return res, nil
}

// CheckFileDest returns the error WriteFile would refuse dest with, so that a caller
// can refuse it before building anything. The rename that puts an archive in place
// replaces whatever has the name: run as root, an output of /dev/null would replace
// the host's /dev/null with a regular file (issue 11, fault 2). So dest must not
// exist yet, or be a regular file, such as an earlier archive.
func CheckFileDest(dest string) error {
	fi, err := os.Lstat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking %s: %w", dest, err)
	}
	m := fi.Mode()
	if m.IsRegular() {
		return nil
	}
	var what string
	switch {
	case m.IsDir():
		return fmt.Errorf("%s is a directory; name an archive file to write (a path in it, or a new one)", dest)
	case m&fs.ModeSymlink != 0:
		what = "symlink"
	case m&fs.ModeNamedPipe != 0:
		what = "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		what = "socket"
	case m&fs.ModeCharDevice != 0:
		what = "character device"
	case m&fs.ModeDevice != 0:
		what = "block device"
	default:
		what = "special file"
	}
	return fmt.Errorf("%s is a %s, not a regular file; refusing to replace it: an archive is written only where no file is, or over a regular file", dest, what)
}

// File is what Write needs of its output: a file it can write, seek in, patch and
// truncate (an *os.File). Each layer's header is written before its bytes are hashed,
// so its name is patched in afterwards; that is what lets a layer be read, hashed and
// written in one pass.
type File interface {
	io.Writer
	io.WriterAt
	io.Seeker
	Truncate(size int64) error
}

// Write writes the images as one archive to f, which must be empty. It stops with
// ctx's error when ctx is cancelled, even in the middle of a layer.
func Write(ctx context.Context, f File, entries []Entry) (*Result, error) {
	w := newWriter(f)
	return w.write(ctx, w, entries)
}

func newWriter(f File) *writer {
	w := &writer{f: f, blobs: map[layerfs.Digest]bool{}}
	w.bw = bufio.NewWriterSize(&offsetWriter{w: f, n: &w.off}, 1<<20)
	w.tw = tar.NewWriter(w.bw)
	return w
}

// write writes the archive, storing the images' parts through s (w itself, or a sink
// that wraps it).
func (w *writer) write(ctx context.Context, s sink, entries []Entry) (*Result, error) {
	var index []Descriptor

	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := w.header(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}, time.Unix(0, 0)); err != nil {
			return nil, err
		}
	}
	images, err := writeImages(ctx, s, entries)
	if err != nil {
		return nil, err
	}
	for _, s := range images.list {
		if len(s.tags) == 0 {
			index = append(index, s.manifest)
		}
		for _, t := range s.tags {
			d := s.manifest
			d.Annotations = map[string]string{annotationName: t.Full, annotationRef: t.Tag}
			index = append(index, d)
		}
	}
	if index == nil {
		index = []Descriptor{}
	}
	idx, err := marshal(Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: index})
	if err != nil {
		return nil, err
	}
	dm, err := marshal(images.dockerManifests(blobPath))
	if err != nil {
		return nil, err
	}
	for _, file := range []struct {
		name string
		data []byte
	}{
		{"index.json", idx},
		{"manifest.json", dm},
		{"oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)},
	} {
		if err := w.file(file.name, file.data, time.Unix(0, 0)); err != nil {
			return nil, err
		}
	}
	if err := w.tw.Close(); err != nil {
		return nil, err
	}
	if err := w.bw.Flush(); err != nil {
		return nil, err
	}
	return images.result(), nil
}

func blobPath(d layerfs.Digest) string { return "blobs/sha256/" + d.Hex() }

func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

type writer struct {
	f     File
	bw    *bufio.Writer
	tw    *tar.Writer
	off   int64 // bytes handed to f so far
	blobs map[layerfs.Digest]bool
}

// pos is the archive offset of the next byte written.
func (w *writer) pos() int64 { return w.off + int64(w.bw.Buffered()) }

func (w *writer) header(h *tar.Header, mtime time.Time) error {
	h.ModTime = mtime.Truncate(time.Second)
	h.Format = tar.FormatPAX
	if h.Mode == 0 {
		h.Mode = 0o644
	}
	return w.tw.WriteHeader(h)
}

func (w *writer) file(name string, data []byte, mtime time.Time) error {
	if err := w.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: int64(len(data))}, mtime); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	if _, err := w.tw.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

func (w *writer) blob(data []byte, mtime time.Time) error {
	d := layerfs.DigestOf(data)
	if w.blobs[d] {
		return nil
	}
	w.blobs[d] = true
	return w.file(blobPath(d), data, mtime)
}

// placeholder stands in for a digest not known until the layer has been streamed;
// it has the same length, so the header it is patched with has the same size.
const placeholder = layerfs.Digest("sha256:0000000000000000000000000000000000000000000000000000000000000000")

// layer writes one layer blob, hashing it on the way, and returns its digest. When the
// digest was not known in advance, the header is written with a placeholder name and
// patched afterwards; when the blob turns out to be in the archive already, what was
// just written is cut off again.
func (w *writer) layer(ctx context.Context, l *layerfs.Layer, mtime time.Time) (layerfs.Digest, bool, error) {
	known, isKnown := l.KnownDiffID()
	if isKnown && w.blobs[known] {
		return known, true, nil
	}
	name := placeholder
	if isKnown {
		name = known
	}
	// archive/tar pads the previous entry only when the next header is written; pad
	// it now, so start is where this header really begins.
	if err := w.tw.Flush(); err != nil {
		return "", false, err
	}
	start := w.pos()
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: blobPath(name), Size: l.Size()}
	if err := w.header(hdr, mtime); err != nil {
		return "", false, err
	}
	headerLen := w.pos() - start
	if err := writeLayer(ctx, l, w.tw); err != nil {
		return "", false, err
	}
	d, _ := l.KnownDiffID()
	if err := w.tw.Flush(); err != nil {
		return "", false, err
	}
	if d == name {
		w.blobs[d] = true
		return d, false, nil
	}
	if err := w.bw.Flush(); err != nil {
		return "", false, err
	}
	if w.blobs[d] {
		// The same bytes are stored already: drop this copy.
		if err := w.f.Truncate(start); err != nil {
			return "", false, err
		}
		if _, err := w.f.Seek(start, io.SeekStart); err != nil {
			return "", false, err
		}
		w.off = start
		w.tw = tar.NewWriter(w.bw)
		return d, true, nil
	}
	var patched bytes.Buffer
	final := &tar.Header{Typeflag: tar.TypeReg, Name: blobPath(d), Size: l.Size(), Mode: 0o644,
		ModTime: hdr.ModTime, Format: tar.FormatPAX}
	if err := tar.NewWriter(&patched).WriteHeader(final); err != nil {
		return "", false, err
	}
	if int64(patched.Len()) != headerLen {
		return "", false, errors.New("internal: patched layer header changed size")
	}
	if _, err := w.f.WriteAt(patched.Bytes(), start); err != nil {
		return "", false, fmt.Errorf("naming the layer blob: %w", err)
	}
	w.blobs[d] = true
	return d, false, nil
}

func (w *writer) layerPath(d layerfs.Digest) string { return blobPath(d) }

// image stores the config and manifest blobs.
func (w *writer) image(cfg, manifest []byte, _ layerfs.Digest, mtime time.Time) error {
	if err := w.blob(cfg, mtime); err != nil {
		return err
	}
	return w.blob(manifest, mtime)
}

// ctxWriter fails its writes once ctx is cancelled, so an interrupted build stops
// within one buffer of a large layer.
type ctxWriter struct {
	ctx   context.Context
	w     io.Writer
	wrote func(int) // Trace.Wrote, or nil
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	if c.wrote != nil {
		c.wrote(n)
	}
	return n, err
}

type offsetWriter struct {
	w io.Writer
	n *int64
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.w.Write(p)
	*o.n += int64(n)
	return n, err
}
