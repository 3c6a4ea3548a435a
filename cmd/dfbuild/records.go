package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/registry"
)

// writeBuildRecords writes the files that tell scripts what was built, once the image
// output is written: --iidfile gets the image ID, --metadata-file the build result in
// the shape docker buildx build --metadata-file writes.
func writeBuildRecords(o buildOptions, id layerfs.Digest, written *dockerarchive.Result, pushed *registry.Pushed, names []string) error {
	if o.iidFile != "" {
		// buildx writes the bare digest, without a newline.
		if err := layerfs.WriteFileAtomic(o.iidFile, []byte(id)); err != nil {
			return fmt.Errorf("writing the image ID to %s: %w", o.iidFile, err)
		}
	}
	if o.metadataFile != "" {
		b, err := buildMetadata(id, written, pushed, names)
		if err != nil {
			return fmt.Errorf("encoding the metadata for %s: %w", o.metadataFile, err)
		}
		if err := layerfs.WriteFileAtomic(o.metadataFile, b); err != nil {
			return fmt.Errorf("writing the metadata to %s: %w", o.metadataFile, err)
		}
	}
	return nil
}

// buildMetadata is the JSON of --metadata-file: buildx's keys for an image export,
// indented by two spaces as buildx writes them. image.name is left out when the image
// has no tag, as buildx leaves it out when there is no name.
//
// After a push, containerimage.digest is the pushed manifest's digest, as buildx
// reports it: the registry's manifest names compressed layers, so it differs from the
// archive's, whose layers are plain tars.
func buildMetadata(id layerfs.Digest, written *dockerarchive.Result, pushed *registry.Pushed, names []string) ([]byte, error) {
	m := map[string]string{"containerimage.config.digest": string(id)}
	if written != nil {
		for _, img := range written.Images {
			if img.ID == id {
				m["containerimage.digest"] = string(img.Manifest)
				break
			}
		}
	}
	if pushed != nil {
		m["containerimage.digest"] = pushed.Digest.String()
	}
	if m["containerimage.digest"] == "" {
		return nil, fmt.Errorf("internal: image %s is not among those written", id)
	}
	if len(names) > 0 {
		m["image.name"] = strings.Join(names, ",")
	}
	return json.MarshalIndent(m, "", "  ")
}
