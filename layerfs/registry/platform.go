package registry

import (
	"fmt"
	"sort"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// normalVariant spells an architecture's default variant out, as containerd's
// platforms.Normalize does: arm64 is v8 and arm v7 unless said otherwise, amd64 v1.
func normalVariant(arch, variant string) string {
	if variant != "" {
		return variant
	}
	switch arch {
	case "arm64":
		return "v8"
	case "arm":
		return "v7"
	case "amd64":
		return "v1"
	}
	return ""
}

// matchPlatform tells whether an index entry's platform serves the one a build
// asks for: the same OS and architecture, and the same variant once defaults are
// spelled out.
func matchPlatform(have, want v1.Platform) bool {
	return have.OS == want.OS && have.Architecture == want.Architecture &&
		normalVariant(have.Architecture, have.Variant) == normalVariant(want.Architecture, want.Variant)
}

func formatPlatform(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// choosePlatform picks the manifest of an index for a platform, or says which
// platforms the index has.
func choosePlatform(idx *v1.IndexManifest, want v1.Platform) (v1.Descriptor, error) {
	var have []string
	for _, d := range idx.Manifests {
		if d.Platform == nil {
			continue // attestations and other artifacts carry no platform
		}
		if d.Platform.OS == "unknown" {
			continue // BuildKit's attestation manifests
		}
		if matchPlatform(*d.Platform, want) {
			return d, nil
		}
		have = append(have, formatPlatform(*d.Platform))
	}
	sort.Strings(have)
	if len(have) == 0 {
		return v1.Descriptor{}, fmt.Errorf("the index lists no platform, and %s was asked for", formatPlatform(want))
	}
	return v1.Descriptor{}, fmt.Errorf("no image for %s: the index has %s", formatPlatform(want), strings.Join(have, ", "))
}
