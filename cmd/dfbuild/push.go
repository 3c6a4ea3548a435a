package main

import (
	"context"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/registry"
)

// pushSpec is where and how the image is pushed: --push, -o type=registry or
// -o type=image,push=true, with buildx's exporter options.
type pushSpec struct {
	names []image.Tag // name= of the output, else the -t tags
	opts  registry.PushOptions
}

// parseRegistryOutput reads an -o value of type registry or image, as buildx reads
// them (type=registry is type=image,push=true). ok is false for any other type, which
// outputPath reads.
func parseRegistryOutput(spec string) (ps *pushSpec, ok bool, err error) {
	if !strings.Contains(spec, "=") {
		return nil, false, nil
	}
	kv := map[string]string{}
	var order []string
	for _, f := range splitOutputFields(spec) {
		k, v, _ := strings.Cut(f, "=")
		k = strings.TrimSpace(k)
		kv[k] = v
		order = append(order, k)
	}
	typ := kv["type"]
	if typ != "registry" && typ != "image" {
		return nil, false, nil
	}
	ps = &pushSpec{opts: registry.PushOptions{Level: -1, OCIMediaTypes: true}}
	push := typ == "registry"
	for _, k := range order {
		v := kv[k]
		switch k {
		case "type":
		case "name":
			for _, n := range strings.Split(v, ",") {
				if n = strings.TrimSpace(n); n == "" {
					continue
				}
				t, err := image.ParseTag(n)
				if err != nil {
					return nil, true, usagef("--output %q: name: %w", spec, err)
				}
				ps.names = append(ps.names, t)
			}
		case "push":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, true, usagef("--output %q: push=%q: expected true or false", spec, v)
			}
			push = push || b
		case "compression":
			switch v {
			case "gzip", "zstd", "uncompressed":
				ps.opts.Compression = v
			case "estargz":
				return nil, true, usagef("--output %q: compression=estargz is not supported; use gzip, zstd or uncompressed", spec)
			default:
				return nil, true, usagef("--output %q: compression=%q: expected gzip, zstd or uncompressed", spec, v)
			}
		case "compression-level":
			n, err := strconv.Atoi(v)
			if err != nil || n < 0 {
				return nil, true, usagef("--output %q: compression-level=%q: expected a number", spec, v)
			}
			ps.opts.Level = n
		case "oci-mediatypes":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, true, usagef("--output %q: oci-mediatypes=%q: expected true or false", spec, v)
			}
			ps.opts.OCIMediaTypes = b
		case "force-compression":
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, true, usagef("--output %q: force-compression=%q: expected true or false", spec, v)
			}
			ps.opts.ForceCompression = b
		case "unpack", "store", "name-canonical", "registry.insecure":
			// Image-store options of BuildKit's exporter: nothing to unpack or store
			// here; registry trust comes from the registry configuration.
		default:
			return nil, true, usagef("--output %q: unknown key %q for type=%s", spec, k, typ)
		}
	}
	if err := checkLevel(ps.opts); err != nil {
		return nil, true, usagef("--output %q: %w", spec, err)
	}
	if !push {
		return nil, true, usagef("--output %q: type=image without push=true keeps the image in BuildKit's image store, which dfbuild does not have: add push=true, or use --load", spec)
	}
	return ps, true, nil
}

// checkLevel checks compression-level against the compression, as BuildKit's
// exporter options do: gzip 0 to 9, zstd 0 to 22.
func checkLevel(o registry.PushOptions) error {
	if o.Level < 0 {
		return nil
	}
	max := 9
	if o.Compression == "zstd" {
		max = 22
	}
	if o.Level > max {
		return fmt.Errorf("compression-level=%d: at most %d for %s", o.Level, max, orDefault(o.Compression, "gzip"))
	}
	return nil
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// splitOutputFields splits an -o value at commas, keeping a quoted name list whole:
// buildx's `-o 'type=image,"name=a:1,b:2",push=true'`.
func splitOutputFields(spec string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for _, r := range spec {
		switch {
		case r == '"':
			quoted = !quoted
		case r == ',' && !quoted:
			out = append(out, cur.String())
			cur.Reset()
		default:
			cur.WriteRune(r)
		}
	}
	return append(out, cur.String())
}

// pushResult pushes the built image under every name and says what each name now
// points at.
func (p *plan) pushResult(ctx context.Context, res *interp.Result) (*registry.Pushed, error) {
	return p.pushImages(ctx, []registry.PushImage{{Image: res.Image}})
}

// pushImages pushes one image, or an index of several platforms, under every name.
func (p *plan) pushImages(ctx context.Context, images []registry.PushImage) (*registry.Pushed, error) {
	names := p.push.names
	if len(names) == 0 {
		names = p.tags
	}
	refs := make([]string, len(names))
	for i, t := range names {
		refs[i] = t.Full
	}
	if p.registry == nil {
		return nil, fmt.Errorf("internal: no registry client")
	}
	// A push streams every layer through compressors and HTTP buffers that leave
	// short-lived garbage; collecting at half the usual heap growth kept a 2 GiB push
	// at 58-61 MiB peak RSS instead of 67-72 MiB, at no measurable cost in time
	// (testdata/bench/registry.sh). GOGC, when set, still decides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}
	return p.registry.Push(ctx, images, refs, p.push.opts)
}
