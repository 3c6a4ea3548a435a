package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/dfbuild/dfbuild/layerfs"
)

// Cache is the content-addressed blob cache: an OCI image layout directory.
type Cache struct {
	Dir string
}

// Annotations naming a cached reference in index.json, as containerd and the OCI
// image layout name images.
const (
	annotationName = "io.containerd.image.name"
	annotationRef  = "org.opencontainers.image.ref.name"
)

func (c *Cache) blobPath(d v1.Hash) string {
	return filepath.Join(c.Dir, "blobs", d.Algorithm, d.Hex)
}

// init creates the layout's skeleton if it is missing.
func (c *Cache) init() error {
	if err := os.MkdirAll(filepath.Join(c.Dir, "blobs", "sha256"), 0o755); err != nil {
		return fmt.Errorf("creating the cache %s: %w", c.Dir, err)
	}
	p := filepath.Join(c.Dir, "oci-layout")
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		if err := layerfs.WriteFileAtomic(p, []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
			return err
		}
	}
	return nil
}

// HasBlob tells whether the cache holds the blob with that digest and size, hashing
// it to be sure; a blob whose bytes no longer match is removed, so it is fetched
// again.
func (c *Cache) HasBlob(d v1.Hash, size int64) bool {
	f, err := os.Open(c.blobPath(d))
	if err != nil {
		return false
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() || (size >= 0 && fi.Size() != size) {
		os.Remove(c.blobPath(d))
		return false
	}
	h, err := newHasher(d)
	if err != nil {
		return false
	}
	if _, err := io.Copy(h, f); err != nil || hex.EncodeToString(h.Sum(nil)) != d.Hex {
		os.Remove(c.blobPath(d))
		return false
	}
	return true
}

// ReadBlob returns the bytes of a small cached blob (a manifest, an index, a
// config), checked against its digest.
func (c *Cache) ReadBlob(d v1.Hash) ([]byte, error) {
	b, err := os.ReadFile(c.blobPath(d))
	if err != nil {
		return nil, err
	}
	h, err := newHasher(d)
	if err != nil {
		return nil, err
	}
	h.Write(b)
	if hex.EncodeToString(h.Sum(nil)) != d.Hex {
		os.Remove(c.blobPath(d))
		return nil, fmt.Errorf("cached blob %s is corrupt", d)
	}
	return b, nil
}

func newHasher(d v1.Hash) (hash.Hash, error) {
	if d.Algorithm != "sha256" {
		return nil, fmt.Errorf("unsupported digest algorithm %q", d.Algorithm)
	}
	return sha256.New(), nil
}

// PutBlob stores r's bytes as the blob d of the given size (-1: unknown): written to
// a temporary file, hashed on the way, checked, synced and renamed into place. A
// mismatch keeps nothing. done, when set, is told how many bytes have been written.
func (c *Cache) PutBlob(ctx context.Context, d v1.Hash, size int64, r io.Reader, done func(int64)) error {
	_, _, err := c.writeBlob(ctx, r, done, func(got v1.Hash, n int64) error {
		if got != d {
			return fmt.Errorf("blob %s: received bytes with digest %s", d, got)
		}
		if size >= 0 && n != size {
			return fmt.Errorf("blob %s: received %d bytes, expected %d", d, n, size)
		}
		return nil
	})
	return err
}

// WriteBlob stores what write produces as a blob named by its own digest, and
// returns that digest and size.
func (c *Cache) WriteBlob(ctx context.Context, write func(io.Writer) error) (v1.Hash, int64, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(write(pw)) }()
	d, n, err := c.writeBlob(ctx, pr, nil, nil)
	pr.CloseWithError(err)
	return d, n, err
}

func (c *Cache) writeBlob(ctx context.Context, r io.Reader, done func(int64), check func(v1.Hash, int64) error) (v1.Hash, int64, error) {
	if err := c.init(); err != nil {
		return v1.Hash{}, 0, err
	}
	tmp, err := os.CreateTemp(filepath.Join(c.Dir, "blobs", "sha256"), ".tmp-*")
	if err != nil {
		return v1.Hash{}, 0, fmt.Errorf("writing to the cache: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	h := sha256.New()
	w := io.MultiWriter(tmp, h)
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return v1.Hash{}, n, err
		}
		m, rerr := r.Read(buf)
		if m > 0 {
			if _, err := w.Write(buf[:m]); err != nil {
				return v1.Hash{}, n, fmt.Errorf("writing to the cache: %w", err)
			}
			n += int64(m)
			if done != nil {
				done(n)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return v1.Hash{}, n, rerr
		}
	}
	d := v1.Hash{Algorithm: "sha256", Hex: hex.EncodeToString(h.Sum(nil))}
	if check != nil {
		if err := check(d, n); err != nil {
			return d, n, err
		}
	}
	// No fsync: a blob torn by a crash is caught by the hash every use makes of it
	// (HasBlob, ReadBlob, the upload's check), removed and fetched or compressed
	// again; syncing a gigabyte layer would cost seconds on every pull and push.
	if err := tmp.Chmod(0o644); err != nil {
		return d, n, err
	}
	if err := tmp.Close(); err != nil {
		return d, n, err
	}
	if err := os.Rename(tmp.Name(), c.blobPath(d)); err != nil {
		return d, n, fmt.Errorf("writing to the cache: %w", err)
	}
	keep = true
	return d, n, nil
}

// putSmall stores a small blob whose bytes are at hand.
func (c *Cache) putSmall(ctx context.Context, d v1.Hash, b []byte) error {
	if _, err := os.Stat(c.blobPath(d)); err == nil {
		if _, err := c.ReadBlob(d); err == nil {
			return nil
		}
	}
	return c.PutBlob(ctx, d, int64(len(b)), bytes.NewReader(b), nil)
}

// index is index.json of the layout.
type index struct {
	SchemaVersion int             `json:"schemaVersion"`
	MediaType     string          `json:"mediaType,omitempty"`
	Manifests     []v1.Descriptor `json:"manifests"`
}

func (c *Cache) readIndex() (*index, error) {
	b, err := os.ReadFile(filepath.Join(c.Dir, "index.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return &index{SchemaVersion: 2, MediaType: "application/vnd.oci.image.index.v1+json"}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the cache's index: %w", err)
	}
	var idx index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, fmt.Errorf("reading the cache's index %s: %w", filepath.Join(c.Dir, "index.json"), err)
	}
	return &idx, nil
}

// lookup returns what a reference resolved to when it was last pulled.
func (c *Cache) lookup(ref string) (v1.Descriptor, bool) {
	idx, err := c.readIndex()
	if err != nil {
		return v1.Descriptor{}, false
	}
	for _, d := range idx.Manifests {
		if d.Annotations[annotationName] == ref {
			return d, true
		}
	}
	return v1.Descriptor{}, false
}

// setRef records that ref resolved to desc, replacing what it named before, under
// the cache's lock.
func (c *Cache) setRef(ref string, desc v1.Descriptor) error {
	if err := c.init(); err != nil {
		return err
	}
	unlock, err := lockFile(filepath.Join(c.Dir, "lock"))
	if err != nil {
		return fmt.Errorf("locking the cache: %w", err)
	}
	defer unlock()
	idx, err := c.readIndex()
	if err != nil {
		return err
	}
	out := idx.Manifests[:0]
	for _, d := range idx.Manifests {
		if d.Annotations[annotationName] != ref {
			out = append(out, d)
		}
	}
	desc.Annotations = map[string]string{annotationName: ref, annotationRef: ref}
	desc.Platform = nil
	out = append(out, desc)
	sort.Slice(out, func(i, j int) bool { return out[i].Annotations[annotationName] < out[j].Annotations[annotationName] })
	idx.Manifests = out
	b, err := json.MarshalIndent(idx, "", "  ")
	if err != nil {
		return err
	}
	return layerfs.WriteFileAtomic(filepath.Join(c.Dir, "index.json"), b)
}

// Prune empties the cache and returns how many bytes it freed.
func (c *Cache) Prune() (int64, error) {
	if _, err := os.Stat(c.Dir); errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	unlock, err := lockFile(filepath.Join(c.Dir, "lock"))
	if err != nil {
		return 0, fmt.Errorf("locking the cache: %w", err)
	}
	defer unlock()
	var freed int64
	for _, name := range []string{"blobs", "index.json", "oci-layout", "dfbuild"} {
		p := filepath.Join(c.Dir, name)
		err := filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil
			}
			if fi, err := d.Info(); err == nil && fi.Mode().IsRegular() {
				freed += fi.Size()
			}
			return nil
		})
		if err != nil {
			return freed, err
		}
		if err := os.RemoveAll(p); err != nil {
			return freed, fmt.Errorf("emptying the cache %s: %w", c.Dir, err)
		}
	}
	return freed, nil
}
