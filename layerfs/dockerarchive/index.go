package dockerarchive

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
)

// annotationCreated is set on index.json's entries by BuildKit's oci exporter.
const annotationCreated = "org.opencontainers.image.created"

// Platform is an OCI platform object, as an image index names each manifest's
// platform. The fields are in the order of the OCI Go types, which containerd and
// BuildKit marshal.
type Platform struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Variant      string `json:"variant,omitempty"`
}

// String is os/arch[/variant].
func (p Platform) String() string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// PlatformImage is one image of a multi-platform index and the platform it is for.
type PlatformImage struct {
	Image    *image.Image
	Platform Platform
}

// platformDescriptor is a Descriptor with the platform an index gives it.
type platformDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      layerfs.Digest    `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations,omitempty"`
	Platform    *Platform         `json:"platform,omitempty"`
}

type platformIndex struct {
	SchemaVersion int                  `json:"schemaVersion"`
	MediaType     string               `json:"mediaType"`
	Manifests     []platformDescriptor `json:"manifests"`
}

// IndexResult describes a written multi-platform image.
type IndexResult struct {
	Index  layerfs.Digest // the image index's digest: the image's name by digest
	Images []ImageResult  // each platform's image, in the order given
}

// WriteIndexFile writes the images as one multi-platform image to the archive at
// dest, atomically as WriteFile does. The archive is what buildx writes with -o
// type=oci,dest=FILE for several platforms (BuildKit's oci exporter, containerd's
// archive exporter): an OCI image layout whose index.json lists the image index once
// per tag. That nested index lists each platform's manifest with its platform, in the
// order given; each blob is stored once, so layers the platforms share are stored
// once. There is no manifest.json: a Docker archive cannot name several platforms
// under one tag, so docker load refuses the file (buildx's docker exporter refuses
// to write it).
func WriteIndexFile(ctx context.Context, dest string, images []PlatformImage, tags []image.Tag) (*IndexResult, error) {
	// Only a regular file is replaced, as WriteFile replaces one.
	if err := CheckFileDest(dest); err != nil {
		return nil, err
	}
	return writeFileAtomic(dest, func(f File) (*IndexResult, error) { return WriteIndex(ctx, f, images, tags) })
}

// WriteIndex writes the multi-platform archive WriteIndexFile describes to f, which
// must be empty.
func WriteIndex(ctx context.Context, f File, images []PlatformImage, tags []image.Tag) (*IndexResult, error) {
	w := newWriter(f)
	return w.writeIndex(ctx, w, images, tags)
}

// WriteIndexStream writes the same bytes as WriteIndex to a writer that cannot seek,
// hashing layers one pass ahead as WriteStream does.
func WriteIndexStream(ctx context.Context, out io.Writer, images []PlatformImage, tags []image.Tag) (*IndexResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	entries := make([]Entry, len(images))
	for i, pi := range images {
		entries[i] = Entry{Image: pi.Image}
	}
	h := startHashing(ctx, entries)
	defer func() {
		cancel()
		h.wg.Wait()
	}()
	w := newWriter(streamFile{out})
	return w.writeIndex(ctx, &streamSink{writer: w, h: h}, images, tags)
}

func (w *writer) writeIndex(ctx context.Context, s sink, images []PlatformImage, tags []image.Tag) (*IndexResult, error) {
	if len(images) == 0 {
		return nil, errors.New("no image to write")
	}
	for _, dir := range []string{"blobs/", "blobs/sha256/"} {
		if err := w.header(&tar.Header{Typeflag: tar.TypeDir, Name: dir, Mode: 0o755}, time.Unix(0, 0)); err != nil {
			return nil, err
		}
	}
	trace := traceFrom(ctx)
	if trace.Start != nil {
		entries := make([]Entry, len(images))
		for i, pi := range images {
			entries[i] = Entry{Image: pi.Image}
		}
		trace.Start(totalLayerBytes(entries))
	}
	res := &IndexResult{}
	var manifests []platformDescriptor
	created := time.Unix(0, 0)
	for k, pi := range images {
		// writeImages numbers the images it is given: each platform is written on its
		// own, so the trace is told the platform's number instead.
		pctx := WithTrace(ctx, &Trace{
			Wrote: trace.Wrote,
			File:  trace.File,
			Layer: func(_, j int, d layerfs.Digest, size int64, reused bool) {
				if trace.Layer != nil {
					trace.Layer(k, j, d, size, reused)
				}
			},
		})
		set, err := writeImages(pctx, s, []Entry{{Image: pi.Image}})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", pi.Platform, err)
		}
		img := set.list[0]
		p := pi.Platform
		manifests = append(manifests, platformDescriptor{MediaType: img.manifest.MediaType,
			Digest: img.manifest.Digest, Size: img.manifest.Size, Platform: &p})
		res.Images = append(res.Images, ImageResult{ID: img.config, Manifest: img.manifest.Digest, Tags: tags})
		if c := pi.Image.Config.Created; c != nil && c.After(created) {
			created = *c
		}
	}
	idx, err := marshal(platformIndex{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: manifests})
	if err != nil {
		return nil, err
	}
	if err := w.blob(idx, created); err != nil {
		return nil, fmt.Errorf("writing the image index: %w", err)
	}
	top := Descriptor{MediaType: MediaTypeIndex, Digest: layerfs.DigestOf(idx), Size: int64(len(idx))}
	res.Index = top.Digest
	var entries []Descriptor
	for _, t := range tags {
		d := top
		d.Annotations = map[string]string{annotationName: t.Full, annotationRef: t.Tag,
			annotationCreated: created.UTC().Format(time.RFC3339)}
		entries = append(entries, d)
	}
	if entries == nil {
		entries = []Descriptor{top}
	}
	layout, err := marshal(Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: entries})
	if err != nil {
		return nil, err
	}
	for _, file := range []struct {
		name string
		data []byte
	}{
		{"index.json", layout},
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
	return res, nil
}
