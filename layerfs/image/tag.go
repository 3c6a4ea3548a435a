package image

import (
	"errors"
	"fmt"

	"github.com/distribution/reference"
)

// Tag is an image name with a tag, in the forms each consumer wants.
type Tag struct {
	Full     string // docker.io/library/hello:scratch, what dfbuild writes into archives
	Familiar string // hello:scratch, what docker shows
	Name     string // docker.io/library/hello
	Tag      string // scratch
}

// ParseTag parses a name as docker build -t does: "name", "name:tag",
// "registry/path/name:tag"; without a tag it means ":latest". Digests are refused:
// an image being built has no digest to be named by.
func ParseTag(s string) (Tag, error) {
	named, err := reference.ParseNormalizedNamed(s)
	if err != nil {
		return Tag{}, fmt.Errorf("invalid tag %q: %w", s, err)
	}
	if _, ok := named.(reference.Digested); ok {
		return Tag{}, fmt.Errorf("invalid tag %q: a digest cannot name an image being built", s)
	}
	tagged, ok := reference.TagNameOnly(named).(reference.NamedTagged)
	if !ok {
		return Tag{}, errors.New("internal: tag missing after normalisation")
	}
	return Tag{
		Full:     tagged.String(),
		Familiar: reference.FamiliarString(tagged),
		Name:     tagged.Name(),
		Tag:      tagged.Tag(),
	}, nil
}
