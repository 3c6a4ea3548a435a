package main

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"
)

const examples = `  # Build ./Dockerfile in the current directory; writes hello.tar
  dfbuild -t hello:scratch .

  # Load and run the result
  docker load -i hello.tar && docker run --rm hello:scratch

  # Straight into the Docker Engine, with no file: streamed, or through a pipe
  dfbuild --load -t hello:scratch .
  dfbuild -t hello:scratch -o - . | docker load

  # A Dockerfile elsewhere, or from standard input
  dfbuild -f build/Dockerfile.web -t web:1.0 .
  dfbuild -f - -t notes:latest . < Dockerfile

  # Serve "FROM alpine:3.18" from a root filesystem tarball; no pulling
  dfbuild --build-context alpine:3.18=alpine-minirootfs-3.18.4-x86_64.tar.gz -t hello:alpine .

  # Add a second image to an existing archive (blobs are stored once)
  dfbuild -f Dockerfile.alpine -t hello:alpine -o hello.tar --append .

  # The classic recipe's directory: <diff_id>/layer.tar, <config>.json, manifest.json
  dfbuild -t hello:scratch -o type=dir,dest=hello .
  tar -cf hello.tar -C hello . && docker load -i hello.tar

  # Reproducible: the same inputs and epoch give the same bytes
  SOURCE_DATE_EPOCH=0 dfbuild -t hello:scratch -o hello.tar .`

func newRootCmd() *cobra.Command {
	var o buildOptions
	cmd := &cobra.Command{
		Use:   "dfbuild [flags] [CONTEXT]",
		Short: "Build container images from Dockerfiles without a daemon",
		Long: `dfbuild reads a Dockerfile, carries out every instruction that needs no container
against an in-memory filesystem, and writes an image archive that docker load,
podman load, skopeo and containerd accept, byte for byte the same on every run.

CONTEXT is the build context directory (default "."). COPY sources and base
tarballs are looked up inside it. RUN is never executed.

Environment:
  SOURCE_DATE_EPOCH  seconds since 1970: the image's creation time, and the latest
                     file time in new layers. Without it, the newest modification
                     time among the files the build read is used.`,
		Example:       examples,
		Args:          cobra.MaximumNArgs(1),
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			o.contextDir = "."
			if len(args) == 1 {
				o.contextDir = args[0]
			}
			return runBuild(cmd.Context(), cmd.InOrStdin(), cmd.OutOrStdout(), cmd.ErrOrStderr(), o)
		},
	}
	cmd.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%w (see dfbuild --help)", err)}
	})
	cmd.SetArgs(nil)
	bindBuildFlags(cmd, &o)
	cmd.Args = func(c *cobra.Command, args []string) error {
		if len(args) > 1 {
			return usagef("expected at most one CONTEXT argument, got %d: %s", len(args), strings.Join(args, " "))
		}
		return nil
	}
	cmd.AddCommand(newInspectCmd())
	cmd.AddCommand(newExplainCmd())
	cmd.AddCommand(newPruneCmd())
	return cmd
}

// bindBuildFlags declares the build's flags on cmd and binds them to o. The build
// and explain share it, so explain takes a build's command line as it is.
func bindBuildFlags(cmd *cobra.Command, o *buildOptions) {
	f := cmd.Flags()
	f.SortFlags = false
	f.StringVarP(&o.file, "file", "f", "", `the Dockerfile (default "CONTEXT/Dockerfile"); "-" reads it from standard input`)
	f.StringArrayVarP(&o.tags, "tag", "t", nil, `name and optionally a tag, "name:tag" (repeatable); ":latest" when no tag is given`)
	f.StringVarP(&o.output, "output", "o", "", `where to write the archive: PATH or type=docker,dest=PATH (default "<name of the first tag>.tar", or "image.tar"); "-" or dest=- is standard output; type=oci,dest=PATH is the same archive; type=dir,dest=DIR writes the image unpacked`)
	f.StringArrayVar(&o.buildContexts, "build-context", nil, buildContextHelp)
	f.StringArrayVar(&o.buildArgs, "build-arg", nil, "KEY=VALUE: set a build argument that an ARG declares; KEY alone takes the value from the environment (repeatable)")
	f.StringVar(&o.target, "target", "", "the stage to build (default: the last one); only the stages it needs are built")
	f.StringArrayVar(&o.labels, "label", nil, "KEY=VALUE: add a label to the image (repeatable)")
	f.StringVar(&o.platform, "platform", "", `the platform to build for, "os/arch[/variant]", or several separated by commas (default: linux on this machine's architecture)`)
	f.StringVar(&o.progress, "progress", "auto", `how to show progress on standard error: auto, plain, tty, quiet, or json (one event per line)`)
	f.BoolVar(&o.append, "append", false, "add the image to the archive (or type=dir directory) named by --output instead of replacing it; tags it already has move to the new image")
	f.StringVar(&o.iidFile, "iidfile", "", "a file to write the image ID (sha256:...) to, once the image is written")
	f.StringVar(&o.metadataFile, "metadata-file", "", "a file to write the build result to, as JSON, as docker buildx build --metadata-file does")
	addOutputFlags(f, &o.out)
	addRegistryFlags(f, &o.reg)
	addLimitFlags(f, &o.limits)
	addPushFlag(f, &o.reg)
	_ = cmd.RegisterFlagCompletionFunc("progress", cobra.FixedCompletions(progressModes, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.MarkFlagFilename("file")
}
