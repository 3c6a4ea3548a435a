package dockerarchive

import "github.com/dfbuild/dfbuild/layerfs/image"

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
