package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

type inspectOptions struct {
	json, files, config bool
	platform            string
	reg                 registryOptions
}

func newInspectCmd() *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [--json] [--files] [--config] ARCHIVE|DIR|REF",
		Short: "Show an image archive's history, layers, file changes and wasted space",
		Long: `inspect reads an image archive or layout and shows, for each image, its names and
ID, then one row per history entry, as docker history does: the instruction, the
layer it made (or "config only"), the size of its files, and how many paths it
added, changed (they existed in a lower layer) and removed (whiteouts). The totals
end with the wasted space: bytes of files that a later layer overwrites or removes.

ARCHIVE is any image tar: dfbuild's, docker save's (any Engine version), podman
save's, skopeo's docker-archive or oci-archive, gzipped or not. DIR is an OCI image
layout (skopeo copy ... oci:DIR) or an unpacked docker-archive directory.

REF is an image in a registry, such as busybox:1.36 or ghcr.io/org/app@sha256:...,
read through the registry cache as a build reads it (see dfbuild --help for where
credentials, mirrors and the cache are). Without --files only its manifest and config
are fetched, so the layers' changes are not shown; --files downloads the layers.
--platform picks the image of a multi-platform index (default: linux on this machine).

--json prints the same data as JSON; the schema is documented in package
github.com/dfbuild/dfbuild/layerfs/inspect (type Report). With --files it also
lists every entry of every layer.`,
		Example: `  dfbuild inspect hello.tar
  dfbuild inspect --files hello.tar
  docker save app:1 -o app.tar && dfbuild inspect --json app.tar
  dfbuild inspect --platform linux/arm64 registry.example:5000/app:1`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("inspect takes one ARCHIVE, DIR or REF, got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return runInspect(cmd.Context(), cmd.OutOrStdout(), args[0], o)
		},
	}
	f := cmd.Flags()
	f.BoolVar(&o.json, "json", false, "print JSON instead of text")
	f.BoolVar(&o.files, "files", false, "list each layer's entries: what it added, changed and removed")
	f.BoolVar(&o.config, "config", false, "print each image's config (text output; JSON always has it)")
	f.StringVar(&o.platform, "platform", "", "for a registry REF: the platform to take from an index (default: linux on this machine)")
	addRegistryFlags(f, &o.reg)
	f.SortFlags = false
	return cmd
}

func runInspect(ctx context.Context, stdout io.Writer, p string, o inspectOptions) error {
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		if looksLikePath(p) {
			return usagef("no archive or directory at %s", p)
		}
		if _, err := name.ParseReference(p); err != nil {
			return usagef("no archive or directory at %s, and not an image reference: %v", p, err)
		}
		return inspectRemote(ctx, stdout, p, o)
	}
	a, err := inspect.Open(p)
	if err != nil {
		return err
	}
	defer a.Close()
	rep, err := inspect.AnalyzeArchive(ctx, a)
	if err != nil {
		return fmt.Errorf("inspecting %s: %w", p, err)
	}
	ro := inspect.Options{Files: o.files, Config: o.config}
	if o.json {
		return inspect.WriteJSON(stdout, rep, ro)
	}
	return inspect.WriteText(stdout, rep, ro)
}

// inspectRemote reports an image of a registry: from its manifest and config alone,
// or, with --files, from its layers pulled into the cache.
func inspectRemote(ctx context.Context, stdout io.Writer, ref string, o inspectOptions) error {
	pl := interp.HostPlatform()
	if o.platform != "" {
		var err error
		if pl, err = interp.ParsePlatform(o.platform); err != nil {
			return usagef("--platform: %w", err)
		}
	}
	c, err := newRegistryClient(o.reg, nil)
	if err != nil {
		return err
	}
	platform := v1.Platform{OS: pl.OS, Architecture: pl.Arch, Variant: pl.Variant}
	var rep *inspect.Report
	if o.files {
		pulled, err := c.Pull(ctx, ref, platform)
		if err != nil {
			return err
		}
		a, err := inspect.OpenLayoutManifest(pulled.Layout, layerfs.Digest(pulled.Manifest.String()), "")
		if err != nil {
			return err
		}
		defer a.Close()
		if rep, err = inspect.AnalyzeArchive(ctx, a); err != nil {
			return fmt.Errorf("inspecting %s: %w", ref, err)
		}
		rep.Images[0].Tags = []string{pulled.Name}
		rep.Source, rep.Format, rep.Storage = pulled.Name, "registry", "registry"
	} else {
		pulled, m, config, err := c.Describe(ctx, ref, platform)
		if err != nil {
			return err
		}
		layers := make([]inspect.StoredLayer, len(m.Layers))
		for i, l := range m.Layers {
			layers[i] = inspect.StoredLayer{StoredSize: l.Size, Compression: compressionOf(l.MediaType)}
		}
		img, err := inspect.Describe(config, layers)
		if err != nil {
			return fmt.Errorf("inspecting %s: %w", ref, err)
		}
		img.Tags = []string{pulled.Name}
		rep = &inspect.Report{Source: pulled.Name, Format: "registry", Storage: "registry", Images: []*inspect.ImageReport{img}}
	}
	ro := inspect.Options{Files: o.files, Config: o.config}
	if o.json {
		return inspect.WriteJSON(stdout, rep, ro)
	}
	return inspect.WriteText(stdout, rep, ro)
}

// compressionOf names a layer media type's compression as inspect reports it.
func compressionOf(mt types.MediaType) string {
	s := string(mt)
	switch {
	case strings.HasSuffix(s, "gzip"):
		return "gzip"
	case strings.HasSuffix(s, "zstd"):
		return "zstd"
	}
	return ""
}

// looksLikePath tells a mistyped file name from an image reference, so that
// "inspect missing.tar" says the file is missing instead of asking a registry for
// docker.io/library/missing.tar.
func looksLikePath(p string) bool {
	if strings.HasPrefix(p, "/") || strings.HasPrefix(p, "./") || strings.HasPrefix(p, "../") || strings.Contains(p, string(os.PathSeparator)+".") {
		return true
	}
	for _, ext := range []string{".tar", ".tgz", ".gz", ".zst", ".xz", ".bz2", ".json", ".oci"} {
		if strings.HasSuffix(p, ext) {
			return true
		}
	}
	return false
}
