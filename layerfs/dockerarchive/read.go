package dockerarchive

import (
	"archive/tar"
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// Read opens the image archive at file — one dfbuild wrote, or one from docker save
// (any version), podman or skopeo — and returns its images, each with its tags. The
// layers refer to their bytes inside file by offset; they are checked against their
// diff_ids whenever they are written again.
func Read(file string) ([]Entry, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	type section struct{ off, size int64 }
	sections := map[string]section{}
	links := map[string]string{}
	pr := &layerfs.CountingReader{R: bufio.NewReaderSize(f, 1<<16)}
	tr := tar.NewReader(pr)
	var manifestJSON []byte
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading the archive: %w", err)
		}
		name := cleanEntry(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg:
			sections[name] = section{pr.N, hdr.Size}
			if name == "manifest.json" {
				if manifestJSON, err = io.ReadAll(io.LimitReader(tr, 64<<20)); err != nil {
					return nil, fmt.Errorf("reading manifest.json: %w", err)
				}
			}
		case tar.TypeSymlink:
			// docker save before Engine 25 links repeated layers to their first copy.
			links[name] = cleanEntry(path.Join(path.Dir(name), hdr.Linkname))
		}
	}
	if manifestJSON == nil {
		return nil, errors.New("not an image archive: no manifest.json")
	}
	return entriesOf(manifestJSON, func(name string) (member, error) {
		name = cleanEntry(name)
		for i := 0; i < 8; i++ {
			if s, ok := sections[name]; ok {
				return member{size: s.size, open: func() (io.ReadCloser, error) {
					f, err := os.Open(file)
					if err != nil {
						return nil, err
					}
					return struct {
						io.Reader
						io.Closer
					}{io.NewSectionReader(f, s.off, s.size), f}, nil
				}}, nil
			}
			target, ok := links[name]
			if !ok {
				break
			}
			name = target
		}
		return member{}, fmt.Errorf("%q is listed in manifest.json but missing from the archive", name)
	})
}

// member is a file that manifest.json names, in an archive (Read) or in a directory
// (ReadDir).
type member struct {
	size int64
	open func() (io.ReadCloser, error) // exactly size bytes
}

// entriesOf returns the images manifest.json lists, each with its tags; find locates
// the files it names. The layers read their member again whenever they are written.
func entriesOf(manifestJSON []byte, find func(name string) (member, error)) ([]Entry, error) {
	var manifests []DockerManifest
	if err := json.Unmarshal(manifestJSON, &manifests); err != nil {
		return nil, fmt.Errorf("parsing manifest.json: %w", err)
	}
	var out []Entry
	for i, m := range manifests {
		cm, err := find(m.Config)
		if err != nil {
			return nil, err
		}
		if cm.size > 64<<20 {
			return nil, fmt.Errorf("image %d: config of %d bytes is too large", i+1, cm.size)
		}
		raw, err := readMember(cm, cm.size)
		if err != nil {
			return nil, fmt.Errorf("image %d: reading its config: %w", i+1, err)
		}
		img := &image.Image{Raw: raw}
		if err := json.Unmarshal(raw, &img.Config); err != nil {
			return nil, fmt.Errorf("image %d: parsing its config: %w", i+1, err)
		}
		diffIDs := img.Config.RootFS.DiffIDs
		if len(diffIDs) != len(m.Layers) {
			return nil, fmt.Errorf("image %d: %d layers but %d diff_ids in its config", i+1, len(m.Layers), len(diffIDs))
		}
		for j, lp := range m.Layers {
			lm, err := find(lp)
			if err != nil {
				return nil, err
			}
			if err := diffIDs[j].Validate(); err != nil {
				return nil, fmt.Errorf("image %d, layer %d: %w", i+1, j+1, err)
			}
			head, err := readMember(lm, min(lm.size, 8))
			if err != nil {
				return nil, fmt.Errorf("image %d, layer %d: %w", i+1, j+1, err)
			}
			if c := layerfs.DetectCompression(bufio.NewReader(bytes.NewReader(head))); c != layerfs.Uncompressed {
				return nil, fmt.Errorf("image %d, layer %d is %s-compressed; dfbuild reads uncompressed layers only", i+1, j+1, c)
			}
			img.Layers = append(img.Layers, layerfs.NewLayer(lm.size, diffIDs[j], memberWriter(lm)))
		}
		e := Entry{Image: img}
		for _, rt := range m.RepoTags {
			t, err := image.ParseTag(rt)
			if err != nil {
				return nil, fmt.Errorf("image %d: %w", i+1, err)
			}
			e.Tags = append(e.Tags, t)
		}
		out = append(out, e)
	}
	return out, nil
}

// readMember reads the first n bytes of m.
func readMember(m member, n int64) ([]byte, error) {
	r, err := m.open()
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, err
	}
	return b, nil
}

func memberWriter(m member) func(io.Writer) error {
	return func(w io.Writer) error {
		r, err := m.open()
		if err != nil {
			return err
		}
		defer r.Close()
		_, err = io.Copy(w, r)
		return err
	}
}

func cleanEntry(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// Merge adds an image to the images of an existing archive the way docker load
// would treat them: the new image's tags move to it, and an old image left without
// any tag is dropped. An old image identical to the new one keeps its other tags;
// Write lists the two as one image.
func Merge(old []Entry, add Entry) []Entry {
	taken := map[string]bool{}
	for _, t := range add.Tags {
		taken[t.Full] = true
	}
	var out []Entry
	for _, e := range old {
		var keep []image.Tag
		for _, t := range e.Tags {
			if !taken[t.Full] {
				keep = append(keep, t)
			}
		}
		if len(keep) > 0 {
			out = append(out, Entry{Image: e.Image, Tags: keep})
		}
	}
	return append(out, add)
}
