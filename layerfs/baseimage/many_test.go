package baseimage_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs/baseimage"
)

// A name missing from an archive of thousands of images gives an error that names a
// few of them and the count, not every one (issue 11: an archive of 20,000 images
// made a 509 KB error).
func TestMissingNameManyImages(t *testing.T) {
	const n = 3000
	layer := layerTar(t, fileE("f", "x"))
	sum := sha256.Sum256(layer)
	config := fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}`, hex.EncodeToString(sum[:]))
	type entry struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	var manifest []entry
	for i := range n {
		manifest = append(manifest, entry{Config: "config.json", RepoTags: []string{fmt.Sprintf("img%d:latest", i)}, Layers: []string{"layer.tar"}})
	}
	mj, err := json.Marshal(manifest)
	must(t, err)
	archive := filepath.Join(t.TempDir(), "many.tar")
	must(t, os.WriteFile(archive, layerTar(t, fileE("config.json", config), fileE("layer.tar", string(layer)), fileE("manifest.json", string(mj))), 0o644))

	_, err = baseimage.Load(archive, "missing:1", t.TempDir())
	if err == nil {
		t.Fatal("a missing name loaded")
	}
	msg := err.Error()
	if len(msg) > 1000 || !strings.Contains(msg, "img0:latest") || !strings.Contains(msg, fmt.Sprint(n)) {
		t.Errorf("error of %d bytes: %.500s", len(msg), msg)
	}
}
