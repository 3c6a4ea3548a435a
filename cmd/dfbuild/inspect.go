package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/cobra"

	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

type inspectOptions struct {
	json, files, config bool
}

func newInspectCmd() *cobra.Command {
	var o inspectOptions
	cmd := &cobra.Command{
		Use:   "inspect [--json] [--files] [--config] ARCHIVE|DIR",
		Short: "Show an image archive's history, layers, file changes and wasted space",
		Long: `inspect reads an image archive or layout and shows, for each image, its names and
ID, then one row per history entry, as docker history does: the instruction, the
layer it made (or "config only"), the size of its files, and how many paths it
added, changed (they existed in a lower layer) and removed (whiteouts). The totals
end with the wasted space: bytes of files that a later layer overwrites or removes.

ARCHIVE is any image tar: dfbuild's, docker save's (any Engine version), podman
save's, skopeo's docker-archive or oci-archive, gzipped or not. DIR is an OCI image
layout (skopeo copy ... oci:DIR) or an unpacked docker-archive directory.

--json prints the same data as JSON; the schema is documented in package
github.com/dfbuild/dfbuild/layerfs/inspect (type Report). With --files it also
lists every entry of every layer.`,
		Example: `  dfbuild inspect hello.tar
  dfbuild inspect --files hello.tar
  docker save app:1 -o app.tar && dfbuild inspect --json app.tar`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("inspect takes one ARCHIVE or DIR, got %d arguments", len(args))
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
	f.SortFlags = false
	return cmd
}

func runInspect(ctx context.Context, stdout io.Writer, p string, o inspectOptions) error {
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return usagef("no archive or directory at %s", p)
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
