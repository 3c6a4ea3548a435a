package imagetest

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

// Validate checks the archive at file and fails tb with every problem found:
//   - dfbuild's reader: each layer re-hashed against its diff_id, one non-empty
//     history entry per layer, unique paths and no symlinks in the outer tar;
//   - go-containerregistry's tarball reader plus validate.Image, once per tag;
//   - the OCI half read as an image layout, each manifest validated. An archive in
//     the classic layout (<hex>/layer.tar, no blobs/ at all, such as a tar of
//     dockerarchive.WriteDir's tree) has no OCI half, and skips this check.
func Validate(tb testing.TB, file string) {
	tb.Helper()
	for _, err := range Check(file) {
		tb.Errorf("validating %s: %v", file, err)
	}
}

// Check is Validate returning the problems instead of reporting them.
func Check(file string) []error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	hasBlobs, err := checkOuterTar(file)
	if err != nil {
		add("outer tar: %v", err)
	}
	entries, closeArchive, err := inspect.ReadEntries(file)
	if err != nil {
		return append(errs, fmt.Errorf("dfbuild reader: %w", err))
	}
	defer closeArchive()
	for i, e := range entries {
		for j, l := range e.Image.Layers {
			if _, err := l.WriteTo(io.Discard); err != nil {
				add("image %d layer %d: %v", i+1, j+1, err)
			}
		}
		var cf image.ConfigFile
		if err := json.Unmarshal(e.Image.Raw, &cf); err != nil {
			add("image %d config: %v", i+1, err)
			continue
		}
		nonEmpty := 0
		for _, h := range cf.History {
			if !h.EmptyLayer {
				nonEmpty++
			}
		}
		if len(cf.History) > 0 && nonEmpty != len(e.Image.Layers) {
			add("image %d: %d non-empty history entries for %d layers", i+1, nonEmpty, len(e.Image.Layers))
		}
		if cf.OS == "" || cf.Architecture == "" || cf.RootFS.Type != "layers" {
			add("image %d: config lacks os, architecture or rootfs.type", i+1)
		}
	}

	// go-containerregistry, docker-archive side.
	for i, e := range entries {
		tags := e.Tags
		if len(tags) == 0 && len(entries) == 1 {
			tags = []image.Tag{{}}
		}
		for _, t := range tags {
			var tag *name.Tag
			if t.Full != "" {
				nt, err := name.NewTag(t.Full)
				if err != nil {
					add("ggcr: tag %q: %v", t.Full, err)
					continue
				}
				tag = &nt
			}
			img, err := tarball.ImageFromPath(file, tag)
			if err != nil {
				add("ggcr tarball: image %d %s: %v", i+1, t.Full, err)
				continue
			}
			if err := validate.Image(img); err != nil {
				add("ggcr validate: image %d %s: %v", i+1, t.Full, err)
			}
		}
	}

	// go-containerregistry, OCI layout side, for the shape docker save has written
	// since Engine 25 (what dockerarchive.Write produces).
	if hasBlobs {
		if err := checkLayout(file); err != nil {
			add("ggcr layout: %v", err)
		}
	}
	return errs
}

// checkOuterTar checks the archive's own entries, and reports whether any lies in
// blobs/, the OCI half. User and group names are refused only in an archive that has
// one: a classic-layout archive is packed by whatever tar the user ran.
func checkOuterTar(file string) (hasBlobs bool, err error) {
	f, err := os.Open(file)
	if err != nil {
		return false, err
	}
	defer f.Close()
	seen := map[string]bool{}
	var named error
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if hasBlobs && named != nil {
				return hasBlobs, named
			}
			return hasBlobs, nil
		}
		if err != nil {
			return hasBlobs, err
		}
		if seen[h.Name] {
			return hasBlobs, fmt.Errorf("duplicate entry %q", h.Name)
		}
		seen[h.Name] = true
		if p := strings.TrimPrefix(path.Clean("/"+h.Name), "/"); p == "blobs" || strings.HasPrefix(p, "blobs/") {
			hasBlobs = true
		}
		switch {
		case h.Typeflag == tar.TypeSymlink || h.Typeflag == tar.TypeLink:
			return hasBlobs, fmt.Errorf("link entry %q: loaders mishandle links in archives", h.Name)
		case strings.HasPrefix(h.Name, "/") || strings.Contains(h.Name, ".."):
			return hasBlobs, fmt.Errorf("unsafe entry name %q", h.Name)
		case (h.Uname != "" || h.Gname != "") && named == nil:
			named = fmt.Errorf("entry %q carries user or group names", h.Name)
		}
	}
}

func checkLayout(file string) error {
	dir, err := os.MkdirTemp("", "imagetest-layout-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := extract(file, dir); err != nil {
		return err
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		return err
	}
	idx, err := p.ImageIndex()
	if err != nil {
		return err
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	for _, d := range im.Manifests {
		img, err := idx.Image(d.Digest)
		if err != nil {
			return fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		// validate.Fast skips re-reading layer bodies: ggcr's layout reader assumes
		// gzip-compressed blobs, and these layers are uncompressed on purpose (the
		// docker-archive check above reads every byte).
		if err := validate.Image(img, validate.Fast); err != nil {
			return fmt.Errorf("manifest %s: %w", d.Digest, err)
		}
		if d.MediaType != "application/vnd.oci.image.manifest.v1+json" {
			return fmt.Errorf("manifest %s: media type %q", d.Digest, d.MediaType)
		}
		var _ v1.Hash = d.Digest
	}
	return nil
}

func extract(file, dir string) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			out, err := os.Create(p)
			if err != nil {
				return err
			}
			if _, err := io.Copy(out, tr); err != nil {
				out.Close()
				return err
			}
			if err := out.Close(); err != nil {
				return err
			}
		}
	}
}
