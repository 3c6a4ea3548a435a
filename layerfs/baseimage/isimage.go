package baseimage

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	slashpath "path"
	"path/filepath"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
)

// IsImage reports whether path looks like an image archive or OCI layout (as opposed
// to a plain root filesystem tarball), by content, without reading it all.
//
// A directory is an image layout when it has manifest.json or index.json. A file is
// read as a tar (decompressed first if it is compressed, as docker load accepts a
// gzipped docker save) and is an image archive when it has a top-level manifest.json
// or index.json and nothing but what image archives hold: top-level files (configs,
// layers, repositories, oci-layout...), blobs/ and <64 hex digits>/ directories of
// layers. The first entry that fits none of these (bin/, etc/... in a root
// filesystem) ends the scan with false, so a root filesystem tarball is rejected
// after a few entries; the bodies of an uncompressed tar are skipped, not read. A
// file that is not a tar at all gives false. A path that cannot be read is an
// error, and so is a tarball with a manifest among entries that no image archive
// holds (ErrMixedArchive): it is not silently taken as a root filesystem.
func IsImage(path string) (bool, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	if fi.IsDir() {
		for _, name := range []string{"manifest.json", "index.json"} {
			if fi, err := os.Stat(filepath.Join(path, name)); err == nil && fi.Mode().IsRegular() {
				return true, nil
			}
		}
		return false, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	br := bufio.NewReaderSize(f, 64<<10)
	var r io.Reader
	if c := layerfs.DetectCompression(br); c != layerfs.Uncompressed {
		dr, err := layerfs.Decompress(br, c)
		if err != nil {
			return false, nil
		}
		defer dr.Close()
		r = dr
	} else {
		// Straight from the file, so that archive/tar seeks over the bodies.
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return false, err
		}
		r = f
	}
	indexed := false
	odd := ""   // the first entry no image archive holds
	budget := 0 // entries still read after it, looking for a manifest
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err != nil || odd != "" && budget == 0 {
			// The end, or a damaged tar: what was seen decides.
			return indexed && odd == "", mixedError(indexed, odd)
		}
		budget--
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		name := strings.TrimPrefix(slashpath.Clean("/"+hdr.Name), "/")
		first, rest, nested := strings.Cut(name, "/")
		isDir := hdr.Typeflag == tar.TypeDir
		switch {
		case name == "":
			// the "./" entry of a tar made with -C DIR .
		case !nested && !isDir:
			if name == "manifest.json" || name == "index.json" {
				indexed = true
				if odd != "" {
					return false, mixedError(indexed, odd)
				}
			}
		case first == "blobs":
		case isHexID(first) && !strings.Contains(rest, "/"):
			// docker save's <v1 id>/layer.tar, VERSION and json; type=dir's layers
		case odd == "":
			// A root filesystem, most likely: a manifest would still make it
			// ambiguous, so the next entries are read for one, a few only, since
			// image archives keep their manifest among few entries.
			if indexed {
				return false, mixedError(indexed, name)
			}
			odd, budget = name, oddLookahead
		}
	}
}

// oddLookahead is how many entries IsImage reads past one that no image archive
// holds, looking for a top-level manifest.json or index.json.
const oddLookahead = 256

// ErrMixedArchive is the error of a tarball that has an image archive's manifest
// but also entries no image archive holds: read as either, it would be misread.
var ErrMixedArchive = errors.New("not read as an image archive nor as a root filesystem tarball")

func mixedError(indexed bool, odd string) error {
	if !indexed || odd == "" {
		return nil
	}
	return fmt.Errorf("%w: it has a top-level manifest.json or index.json, as an image archive has, "+
		"but also %q, which image archives do not hold (their layer directories are named by 64 hex digits, "+
		"or are under blobs/); repack it with docker save, skopeo copy or podman save, "+
		"or leave the manifest out of a root filesystem tarball", ErrMixedArchive, layerfs.Shorten(odd))
}

// isHexID reports whether s is 64 lowercase hex digits, the name docker save and
// dfbuild give layer directories.
func isHexID(s string) bool {
	return layerfs.Digest("sha256:"+s).Validate() == nil
}
