package dockerarchive

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
)

// The names of the directory output, besides the layer directories.
const (
	dirManifest  = "manifest.json"
	dirLayerFile = "layer.tar"
)

// WriteDir writes the images unpacked into the directory dest, in the layout of the
// classic recipe that builds an image by hand:
//
//	<diff_id hex>/layer.tar   each layer once, uncompressed
//	<config hex>.json         each image's config
//	manifest.json             [{"Config":"<hex>.json","RepoTags":[...],"Layers":["<hex>/layer.tar",...]}]
//
// `tar -cf image.tar -C dest .` turns it into an archive that docker load accepts.
//
// The tree is written into a staging directory beside dest and renamed into place
// only once it is complete and synced. Each layer is hashed while it is written under
// a temporary name, and its directory is then renamed to the diff_id. An existing
// dest is replaced only when it is empty or looks like an earlier WriteDir output;
// anything else is refused, and an earlier output stays intact until the new tree
// is complete. Directories get mode 0755, files 0644, and every entry a pinned mtime,
// so the same images give the same files. WriteDir stops with ctx's error when ctx is
// cancelled, even in the middle of a layer, and removes what it wrote.
func WriteDir(ctx context.Context, dest string, entries []Entry) (*Result, error) {
	dest = filepath.Clean(dest)
	replace, err := checkDirDest(dest)
	if err != nil {
		return nil, err
	}
	staging, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp-*")
	if err != nil {
		return nil, fmt.Errorf("creating the staging directory: %w", err)
	}
	done := false
	defer func() {
		if !done {
			os.RemoveAll(staging)
		}
	}()
	res, err := writeTree(ctx, staging, entries)
	if err != nil {
		return nil, err
	}
	if err := moveIntoPlace(staging, dest, replace); err != nil {
		return nil, err
	}
	done = true
	return res, nil
}

// CheckDirDest returns the error WriteDir would refuse dest with, so that a caller
// can refuse it before building anything: dest must not exist yet, or be an empty
// directory, or an earlier output of WriteDir.
func CheckDirDest(dest string) error {
	_, err := checkDirDest(filepath.Clean(dest))
	return err
}

// checkDirDest says whether dest, which is clean, exists and may be replaced, or why
// it may not.
func checkDirDest(dest string) (replace bool, err error) {
	if base := filepath.Base(dest); base == "." || base == ".." || base == string(filepath.Separator) {
		return false, fmt.Errorf("name the directory to write, not %q", dest)
	}
	fi, err := os.Lstat(dest)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("checking %s: %w", dest, err)
	}
	refuse := func(why string) error {
		return fmt.Errorf("%s exists and is not an earlier dfbuild dir output (%s); refusing to replace it: remove it or choose another dest", dest, why)
	}
	if !fi.IsDir() {
		return false, refuse("it is not a directory")
	}
	names, err := os.ReadDir(dest)
	if err != nil {
		return false, fmt.Errorf("checking %s: %w", dest, err)
	}
	if len(names) == 0 {
		return true, nil
	}
	manifest := false
	for _, e := range names {
		name := e.Name()
		switch {
		case name == dirManifest && e.Type().IsRegular():
			manifest = true
		case isHex(strings.TrimSuffix(name, ".json")) && strings.HasSuffix(name, ".json") && e.Type().IsRegular():
		case isHex(name) && e.IsDir():
			inner, err := os.ReadDir(filepath.Join(dest, name))
			if err != nil {
				return false, fmt.Errorf("checking %s: %w", dest, err)
			}
			for _, f := range inner {
				if f.Name() != dirLayerFile || !f.Type().IsRegular() {
					return false, refuse(fmt.Sprintf("%q is not part of one", name+"/"+f.Name()))
				}
			}
		default:
			return false, refuse(fmt.Sprintf("%q is not part of one", name))
		}
	}
	if !manifest {
		return false, refuse("it has no " + dirManifest)
	}
	return true, nil
}

// isHex reports whether s is a sha256 digest's 64 lowercase hex digits.
func isHex(s string) bool {
	return layerfs.Digest("sha256:"+s).Validate() == nil
}

// dirWriter writes the tree of WriteDir into its staging directory.
type dirWriter struct {
	root    string
	layers  map[layerfs.Digest]bool // layer directories written
	configs map[string]bool         // configs written, by name
	times   []pinned                // every entry's mtime, set once all are written
}

type pinned struct {
	path  string
	mtime time.Time
}

// writeTree writes the images into root, which exists and is empty, and pins the
// modes and mtimes of root and all it holds. The times follow the archive's: a layer
// or config gets its image's creation time, manifest.json and root the epoch.
func writeTree(ctx context.Context, root string, entries []Entry) (*Result, error) {
	w := &dirWriter{root: root, layers: map[layerfs.Digest]bool{}, configs: map[string]bool{}}
	images, err := writeImages(ctx, w, entries)
	if err != nil {
		return nil, err
	}
	dm, err := marshal(images.dockerManifests(dirConfigPath))
	if err != nil {
		return nil, fmt.Errorf("encoding %s: %w", dirManifest, err)
	}
	if err := w.file(dirManifest, dm, time.Unix(0, 0)); err != nil {
		return nil, fmt.Errorf("writing %s: %w", dirManifest, err)
	}
	if err := w.pin(); err != nil {
		return nil, err
	}
	return images.result(), nil
}

func (w *dirWriter) layerPath(d layerfs.Digest) string { return dirLayerPath(d) }

// image stores the config; the directory layout has no OCI manifest.
func (w *dirWriter) image(cfg, _ []byte, cfgDigest layerfs.Digest, mtime time.Time) error {
	name := dirConfigPath(cfgDigest)
	if w.configs[name] {
		return nil
	}
	w.configs[name] = true
	return w.file(name, cfg, mtime)
}

func dirLayerPath(d layerfs.Digest) string  { return d.Hex() + "/" + dirLayerFile }
func dirConfigPath(d layerfs.Digest) string { return d.Hex() + ".json" }

// layer writes one layer into a directory of a temporary name, hashing it on the way,
// and renames the directory to the diff_id. A layer stored already is written once:
// when its digest is known in advance it is not written again, otherwise the copy is
// removed after hashing. reused is what Trace.Layer is told, as Write tells it.
func (w *dirWriter) layer(ctx context.Context, l *layerfs.Layer, mtime time.Time) (d layerfs.Digest, reused bool, err error) {
	if known, ok := l.KnownDiffID(); ok && w.layers[known] {
		return known, true, nil
	}
	tmp, err := os.MkdirTemp(w.root, ".layer-*")
	if err != nil {
		return "", false, err
	}
	err = createFile(filepath.Join(tmp, dirLayerFile), func(f io.Writer) error {
		return writeLayer(ctx, l, f)
	})
	if err != nil {
		return "", false, err
	}
	d, _ = l.KnownDiffID()
	if w.layers[d] {
		return d, true, os.RemoveAll(tmp)
	}
	if err := os.Rename(tmp, filepath.Join(w.root, d.Hex())); err != nil {
		return "", false, fmt.Errorf("naming the layer directory: %w", err)
	}
	w.layers[d] = true
	w.times = append(w.times,
		pinned{filepath.Join(w.root, filepath.FromSlash(dirLayerPath(d))), mtime},
		pinned{filepath.Join(w.root, d.Hex()), mtime})
	return d, false, nil
}

func (w *dirWriter) file(name string, data []byte, mtime time.Time) error {
	p := filepath.Join(w.root, name)
	if err := createFile(p, func(f io.Writer) error { _, err := f.Write(data); return err }); err != nil {
		return err
	}
	w.times = append(w.times, pinned{p, mtime})
	return nil
}

// pin sets the fixed modes of the directories and every entry's mtime, once nothing
// more is created in them (creating an entry changes its directory's mtime), and
// syncs the directories so the renames that follow find their contents on disk.
func (w *dirWriter) pin() error {
	for _, p := range w.times {
		fi, err := os.Stat(p.path)
		if err != nil {
			return fmt.Errorf("pinning times: %w", err)
		}
		if fi.IsDir() {
			if err := os.Chmod(p.path, 0o755); err != nil {
				return fmt.Errorf("pinning modes: %w", err)
			}
			if err := syncDir(p.path); err != nil {
				return err
			}
		}
		if err := os.Chtimes(p.path, p.mtime, p.mtime); err != nil {
			return fmt.Errorf("pinning times: %w", err)
		}
	}
	if err := os.Chmod(w.root, 0o755); err != nil {
		return fmt.Errorf("pinning modes: %w", err)
	}
	if err := syncDir(w.root); err != nil {
		return err
	}
	epoch := time.Unix(0, 0)
	if err := os.Chtimes(w.root, epoch, epoch); err != nil {
		return fmt.Errorf("pinning times: %w", err)
	}
	return nil
}

// moveIntoPlace renames the complete staging tree to dest. An earlier output at dest
// is first moved aside under a temporary name, put back if the rename fails, and
// removed once the new tree is in place.
func moveIntoPlace(staging, dest string, replace bool) error {
	parent := filepath.Dir(dest)
	if !replace {
		if err := os.Rename(staging, dest); err != nil {
			return fmt.Errorf("moving the directory into place: %w", err)
		}
		return syncDir(parent)
	}
	// staging's name is unique in parent, and so is this one; it also starts with
	// ".DEST.tmp-", which a build hides from its context.
	old := staging + "-old"
	if err := os.Rename(dest, old); err != nil {
		return fmt.Errorf("moving the previous %s aside: %w", dest, err)
	}
	if err := os.Rename(staging, dest); err != nil {
		if rerr := os.Rename(old, dest); rerr != nil {
			return fmt.Errorf("moving the directory into place: %w (and putting the previous one back failed: %v; it is at %s)", err, rerr, old)
		}
		return fmt.Errorf("moving the directory into place: %w", err)
	}
	if err := syncDir(parent); err != nil {
		return err
	}
	if err := os.RemoveAll(old); err != nil {
		return fmt.Errorf("the new %s is in place, but removing the previous one failed: %w", dest, err)
	}
	return nil
}

// createFile writes a new file at p through a buffer, gives it mode 0644 whatever the
// umask, and syncs it.
func createFile(p string, write func(io.Writer) error) (err error) {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil && cerr != nil {
			err = cerr
		}
	}()
	bw := bufio.NewWriterSize(f, 1<<20)
	if err := write(bw); err != nil {
		return err
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", p, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}
