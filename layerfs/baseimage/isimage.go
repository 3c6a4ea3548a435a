package baseimage

import (
	"archive/tar"
	"bufio"
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
// file that is not a tar at all gives false; only a path that cannot be read is an
// error.
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
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if err != nil {
			// The end, or a damaged tar: what was seen decides.
			return indexed, nil
		}
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
			}
		case first == "blobs":
		case isHexID(first) && !strings.Contains(rest, "/"):
			// docker save's <v1 id>/layer.tar, VERSION and json; type=dir's layers
		default:
			return false, nil
		}
	}
}

// isHexID reports whether s is 64 lowercase hex digits, the name docker save and
// dfbuild give layer directories.
func isHexID(s string) bool {
	return layerfs.Digest("sha256:"+s).Validate() == nil
}
