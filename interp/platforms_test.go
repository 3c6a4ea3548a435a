package interp_test

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/parser"
)

func TestParsePlatforms(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in, want, err string
	}{
		{in: "linux/amd64", want: "linux/amd64"},
		{in: "linux/amd64,linux/arm64", want: "linux/amd64 linux/arm64"},
		{in: "linux/arm64, linux/arm,linux/arm64/v8", err: "linux/arm64 is listed twice"},
		{in: "linux/amd64,linux/arm", want: "linux/amd64 linux/arm/v7"},
		{in: "local", want: interp.HostPlatform().String()},
		{in: "linux/amd64,", err: "empty item"},
		{in: "linux/amd64,linux/nope", err: `unknown architecture "nope"`},
	} {
		ps, err := interp.ParsePlatforms(c.in)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ParsePlatforms(%q) = %v, %v; want an error with %q", c.in, ps, err, c.err)
			}
			continue
		}
		var got []string
		for _, p := range ps {
			got = append(got, p.String())
		}
		if err != nil || strings.Join(got, " ") != c.want {
			t.Errorf("ParsePlatforms(%q) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

// TestBuildPlatforms builds a goreleaser-style Dockerfile for three platforms: each
// image has its platform's binary and config, a $BUILDPLATFORM stage that reads no
// TARGET* argument runs once, one that does runs per platform, and each image is
// what Build makes for its platform alone.
func TestBuildPlatforms(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	files := map[string]string{
		"Dockerfile": `FROM --platform=$BUILDPLATFORM scratch AS tools
COPY tools.txt /tools/
FROM --platform=$BUILDPLATFORM scratch AS gen
ARG TARGETARCH
COPY --from=tools /tools /tools
COPY gen.txt /gen-${TARGETARCH}.txt
FROM scratch
ARG TARGETOS TARGETARCH TARGETVARIANT
COPY shared.txt /
COPY bin/${TARGETOS}_${TARGETARCH}${TARGETVARIANT}/app /app
COPY --from=gen / /gen/
ENTRYPOINT ["/app"]
`,
		"tools.txt":              "tools\n",
		"gen.txt":                "gen\n",
		"shared.txt":             "shared\n",
		"bin/linux_amd64/app":    "amd64 binary\n",
		"bin/linux_arm64/app":    "arm64 binary\n",
		"bin/linux_armv7/app":    "arm v7 binary\n",
		"bin/linux_riscv64/app":  "unused\n",
		"bin/linux_ppc64le/app":  "unused\n",
		"bin/windows_amd64/app":  "unused\n",
		"bin/linux_386/app.note": "unused\n",
	}
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(data), 0o644))
	}
	f, err := parser.Parse(strings.NewReader(files["Dockerfile"]), "Dockerfile")
	must(t, err)
	epoch := time.Unix(defaultEpoch, 0).UTC()
	platforms, err := interp.ParsePlatforms("linux/amd64,linux/arm64,linux/arm/v7")
	must(t, err)
	var progress []interp.Step
	opts := interp.Options{ContextDir: dir, SourceDateEpoch: &epoch, TempDir: t.TempDir()}
	multiOpts := opts
	multiOpts.Progress = func(s interp.Step) { progress = append(progress, s) }
	mr, err := interp.BuildPlatforms(context.Background(), f, multiOpts, platforms)
	must(t, err)
	defer mr.Close()

	// Progress: the tools stage once, gen and the final stage per platform, numbered
	// across the builds.
	ran := map[string]int{}
	for i, s := range progress {
		if s.Number != i+1 {
			t.Errorf("progress step %d is numbered %d", i+1, s.Number)
		}
		if s.Platform == "" {
			t.Errorf("progress step %d has no platform", s.Number)
		}
		if s.Index == 1 {
			ran[s.Stage+" "+s.Platform]++
		}
	}
	host := interp.HostPlatform().String()
	want := map[string]int{"tools " + host: 1, "gen " + host: 3,
		"stage-2 linux/amd64": 1, "stage-2 linux/arm64": 1, "stage-2 linux/arm/v7": 1}
	if !maps.Equal(ran, want) {
		t.Errorf("stages run: %v, want %v", ran, want)
	}

	if len(mr.Results) != 3 {
		t.Fatalf("%d results, want 3", len(mr.Results))
	}
	for i, res := range mr.Results {
		p := platforms[i]
		cf := res.Image.Config
		if cf.OS != p.OS || cf.Architecture != p.Arch || cf.Variant != p.Variant {
			t.Errorf("%s: config platform %s/%s/%s", p, cf.OS, cf.Architecture, cf.Variant)
		}
		if len(res.LayerSteps) != len(res.Image.Layers) {
			t.Errorf("%s: %d layer steps for %d layers", p, len(res.LayerSteps), len(res.Image.Layers))
		}
		shared := 0
		for _, s := range res.Steps {
			if s.Shared {
				shared++
				if s.Stage != "tools" {
					t.Errorf("%s: step %q of stage %s is marked shared", p, s.Instruction, s.Stage)
				}
			}
		}
		if wantShared := min(i, 1) * 2; shared != wantShared {
			t.Errorf("%s: %d shared steps, want %d", p, shared, wantShared)
		}
		// Each platform's image is the one Build makes for it alone.
		o := opts
		o.Platform = &platforms[i]
		single, err := interp.Build(context.Background(), f, o)
		must(t, err)
		id1, err := single.Image.ID()
		must(t, err)
		id2, err := res.Image.ID()
		must(t, err)
		if id1 != id2 {
			t.Errorf("%s: the multi-platform build made image %s, Build alone %s", p, id2, id1)
		}
		single.Close()
		// The shared file's layer is the same in every platform's image.
		if i > 0 {
			d0, _ := mr.Results[0].Image.Layers[0].KnownDiffID()
			d, _ := res.Image.Layers[0].KnownDiffID()
			if d0 == "" || d != d0 {
				t.Errorf("%s: the shared layer is %q, linux/amd64's %q", p, d, d0)
			}
		}
	}
}

// TestBuildPlatformsErrors names the platform whose build failed.
func TestBuildPlatformsErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(dir, "bin/linux_amd64"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "bin/linux_amd64/app"), nil, 0o644))
	df := "FROM scratch\nARG TARGETOS TARGETARCH\nCOPY bin/${TARGETOS}_${TARGETARCH}/app /app\n"
	f, err := parser.Parse(strings.NewReader(df), "Dockerfile")
	must(t, err)
	platforms, err := interp.ParsePlatforms("linux/amd64,linux/arm64")
	must(t, err)
	_, err = interp.BuildPlatforms(context.Background(), f, interp.Options{ContextDir: dir, TempDir: t.TempDir()}, platforms)
	if err == nil || !strings.HasPrefix(err.Error(), "building for linux/arm64: Dockerfile:3: COPY") {
		t.Errorf("error %v, want one naming linux/arm64 and the COPY", err)
	}
	_, err = interp.BuildPlatforms(context.Background(), f, interp.Options{ContextDir: dir, TempDir: t.TempDir()}, nil)
	if err == nil {
		t.Errorf("no platforms: no error")
	}
}

// TestParsePlatform: the aliases and variants containerd's platforms package
// normalises, and dfbuild's refusals around it.
func TestParsePlatform(t *testing.T) {
	for in, want := range map[string]string{
		"linux/amd64":      "linux/amd64",
		" Linux/X86_64 ":   "linux/amd64",
		"linux/x86-64":     "linux/amd64",
		"linux/amd64/v1":   "linux/amd64",
		"linux/amd64/v3":   "linux/amd64/v3",
		"linux/aarch64":    "linux/arm64",
		"linux/arm64/v8":   "linux/arm64",
		"linux/arm64/v9":   "linux/arm64/v9",
		"linux/arm":        "linux/arm/v7",
		"linux/armhf":      "linux/arm/v7",
		"linux/armel":      "linux/arm/v6",
		"linux/arm/v5":     "linux/arm/v5",
		"linux/i386":       "linux/386",
		"linux/i686":       "linux/386",
		"linux/s390x":      "linux/s390x",
		"arm64":            `platform "arm64": expected os/arch[/variant], such as linux/amd64`,
		"linux/amd64/v1/x": `platform "linux/amd64/v1/x": expected os/arch[/variant], such as linux/amd64`,
		"windows/amd64":    `platform "windows/amd64": dfbuild builds Linux images only`,
		"linux/sparc":      `platform "linux/sparc": unknown architecture "sparc"`,
		"linux/amd64/v1 x": `platform "linux/amd64/v1 x": "v1 x" is an invalid component`,
	} {
		p, err := interp.ParsePlatform(in)
		got := p.String()
		if err != nil {
			got = err.Error()
		}
		if !strings.HasPrefix(got, want) {
			t.Errorf("ParsePlatform(%q) = %q, want %q", in, got, want)
		}
	}
}
