package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
)

// Config is the "config" object of an image config: how a container starts. The field
// order is Docker's (the OCI ImageConfig followed by Docker's extensions), which is the
// order BuildKit writes.
type Config struct {
	User         string              `json:"User,omitempty"`
	ExposedPorts map[string]struct{} `json:"ExposedPorts,omitempty"`
	Env          []string            `json:"Env,omitempty"`
	Entrypoint   []string            `json:"Entrypoint,omitempty"`
	Cmd          []string            `json:"Cmd,omitempty"`
	Volumes      map[string]struct{} `json:"Volumes,omitempty"`
	WorkingDir   string              `json:"WorkingDir,omitempty"`
	Labels       map[string]string   `json:"Labels,omitempty"`
	StopSignal   string              `json:"StopSignal,omitempty"`
	// ArgsEscaped is set by BuildKit on every CMD; it means something only on Windows.
	ArgsEscaped bool          `json:"ArgsEscaped,omitempty"`
	Healthcheck *HealthConfig `json:"Healthcheck,omitempty"`
	OnBuild     []string      `json:"OnBuild,omitempty"`
	Shell       []string      `json:"Shell,omitempty"`
}

// HealthConfig is Docker's healthcheck; durations are nanoseconds in JSON.
type HealthConfig struct {
	Test          []string      `json:"Test,omitempty"`
	Interval      time.Duration `json:"Interval,omitempty"`
	Timeout       time.Duration `json:"Timeout,omitempty"`
	StartPeriod   time.Duration `json:"StartPeriod,omitempty"`
	StartInterval time.Duration `json:"StartInterval,omitempty"`
	Retries       int           `json:"Retries,omitempty"`
}

// History is one entry of an image's history: one per Dockerfile instruction.
type History struct {
	Created    *time.Time `json:"created,omitempty"`
	CreatedBy  string     `json:"created_by,omitempty"`
	Author     string     `json:"author,omitempty"`
	Comment    string     `json:"comment,omitempty"`
	EmptyLayer bool       `json:"empty_layer,omitempty"`
}

// RootFS lists the layers' diff_ids.
type RootFS struct {
	Type    string           `json:"type"`
	DiffIDs []layerfs.Digest `json:"diff_ids"`
}

// ConfigFile is the image config blob. Its fields are declared in alphabetical order of
// their JSON keys, so encoding/json writes them sorted, as BuildKit's exporter does.
type ConfigFile struct {
	Architecture string     `json:"architecture"`
	Author       string     `json:"author,omitempty"`
	Config       Config     `json:"config"`
	Created      *time.Time `json:"created,omitempty"`
	History      []History  `json:"history,omitempty"`
	OS           string     `json:"os"`
	RootFS       RootFS     `json:"rootfs"`
	Variant      string     `json:"variant,omitempty"`
}

// Image is a config and the layers it describes, bottom first.
type Image struct {
	Config ConfigFile
	Layers []*layerfs.Layer
	// Raw, when set, is a config blob read from an existing archive. It is written
	// back unchanged, so the image keeps its ID; Config then only describes it.
	Raw []byte
}

// ConfigJSON returns the config blob with rootfs.diff_ids taken from the layers. A
// layer whose digest is not known yet is streamed once to compute it.
func (img *Image) ConfigJSON() ([]byte, error) {
	if img.Raw != nil {
		return img.Raw, nil
	}
	cf := img.Config
	cf.RootFS = RootFS{Type: "layers", DiffIDs: make([]layerfs.Digest, 0, len(img.Layers))}
	for i, l := range img.Layers {
		d, err := l.DiffID()
		if err != nil {
			return nil, fmt.Errorf("hashing layer %d: %w", i+1, err)
		}
		cf.RootFS.DiffIDs = append(cf.RootFS.DiffIDs, d)
	}
	if err := checkHistory(cf.History, len(img.Layers)); err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(cf); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// checkHistory enforces what Docker's image store checks on load: exactly one
// non-empty history entry per layer (Docker rejects more; fewer would misattribute).
func checkHistory(h []History, layers int) error {
	if len(h) == 0 {
		return nil
	}
	n := 0
	for _, e := range h {
		if !e.EmptyLayer {
			n++
		}
	}
	if n != layers {
		return fmt.Errorf("history has %d non-empty entries for %d layers", n, layers)
	}
	return nil
}

// ID returns the image ID, the digest of the config blob.
func (img *Image) ID() (layerfs.Digest, error) {
	b, err := img.ConfigJSON()
	if err != nil {
		return "", err
	}
	return layerfs.DigestOf(b), nil
}
