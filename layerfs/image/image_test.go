package image

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
)

func TestParseTag(t *testing.T) {
	for _, c := range []struct {
		in, full, familiar, tag, err string
	}{
		{in: "hello", full: "docker.io/library/hello:latest", familiar: "hello:latest", tag: "latest"},
		{in: "hello:scratch", full: "docker.io/library/hello:scratch", familiar: "hello:scratch", tag: "scratch"},
		{in: "team/app:1.0", full: "docker.io/team/app:1.0", familiar: "team/app:1.0", tag: "1.0"},
		{in: "localhost:5000/a/b:c", full: "localhost:5000/a/b:c", familiar: "localhost:5000/a/b:c", tag: "c"},
		{in: "docker.io/library/x:t", full: "docker.io/library/x:t", familiar: "x:t", tag: "t"},
		{in: "Upper:case", err: "must be lowercase"},
		{in: "", err: "invalid tag"},
		{in: "a:b:c", err: "invalid tag"},
		{in: "x@sha256:" + strings.Repeat("0", 64), err: "digest cannot name"},
		{in: "x:" + strings.Repeat("t", 129), err: "invalid tag"},
	} {
		got, err := ParseTag(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParseTag(%q) error %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTag(%q): %v", c.in, err)
			continue
		}
		if got.Full != c.full || got.Familiar != c.familiar || got.Tag != c.tag {
			t.Errorf("ParseTag(%q) = %+v", c.in, got)
		}
	}
}

// The config's JSON is what the image ID hashes, so its exact bytes are pinned:
// sorted top-level keys, Docker's field order inside "config", empty fields left out,
// diff_ids taken from the layers.
func TestConfigJSON(t *testing.T) {
	when := time.Unix(1700000000, 0).UTC()
	body := "hello"
	layer := layerfs.NewLayer(int64(len(body)), "", func(w io.Writer) error {
		_, err := io.WriteString(w, body)
		return err
	})
	img := &Image{Layers: []*layerfs.Layer{layer}}
	img.Config = ConfigFile{
		Architecture: "amd64",
		OS:           "linux",
		Created:      &when,
		Config: Config{
			Env:         []string{"PATH=/bin"},
			Cmd:         []string{"/bin/sh", "-c", "echo <hi> & bye"},
			Entrypoint:  []string{"/e"},
			WorkingDir:  "/",
			ArgsEscaped: true,
		},
		History: []History{
			{Created: &when, CreatedBy: "COPY x / # buildkit", Comment: "buildkit.dockerfile.v0"},
			{Created: &when, CreatedBy: "CMD", EmptyLayer: true},
		},
	}
	got, err := img.ConfigJSON()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"architecture":"amd64","config":{"Env":["PATH=/bin"],"Entrypoint":["/e"],"Cmd":["/bin/sh","-c","echo <hi> & bye"],"WorkingDir":"/","ArgsEscaped":true},` +
		`"created":"2023-11-14T22:13:20Z","history":[{"created":"2023-11-14T22:13:20Z","created_by":"COPY x / # buildkit","comment":"buildkit.dockerfile.v0"},` +
		`{"created":"2023-11-14T22:13:20Z","created_by":"CMD","empty_layer":true}],"os":"linux",` +
		`"rootfs":{"type":"layers","diff_ids":["sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"]}}`
	if string(got) != want {
		t.Errorf("config JSON\n got %s\nwant %s", got, want)
	}
	id, err := img.ID()
	if err != nil || id != layerfs.DigestOf(got) {
		t.Errorf("ID = %s, %v", id, err)
	}

	// Zero layers still give "diff_ids": [], which every loader requires.
	empty := &Image{Config: ConfigFile{Architecture: "amd64", OS: "linux"}}
	b, err := empty.ConfigJSON()
	if err != nil || !strings.Contains(string(b), `"diff_ids":[]`) {
		t.Errorf("empty image config %s, %v", b, err)
	}

	// More non-empty history entries than layers is what Docker refuses on load.
	img.Config.History[1].EmptyLayer = false
	if _, err := img.ConfigJSON(); err == nil || !strings.Contains(err.Error(), "2 non-empty entries for 1 layers") {
		t.Errorf("history check: %v", err)
	}
}
