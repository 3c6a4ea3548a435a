// Package interp runs a parsed Dockerfile against in-memory filesystems and produces an
// image, doing what `docker build` with BuildKit does for every instruction that needs
// no container.
//
// Build takes the parsed file and the build context, runs the target stage's
// instructions in order (one dispatch function per instruction), and returns the image:
// its config, its history (one entry per instruction, as BuildKit writes it) and its
// layers (one per filesystem-changing instruction, holding only what changed).
//
// What it does:
//   - Stages: FROM scratch, FROM an earlier stage (which continues from its tree,
//     config, history and ARGs), FROM an image (an image archive, OCI layout or
//     unpacked dfbuild directory) or a root filesystem tarball, served by
//     --build-context, found in the build context, or pulled through Options.Images;
//     FROM --platform. Only the
//     target stage (Options.Target, else the last) and the stages it needs through
//     FROM and COPY --from are built, each after those it needs; cycles, unknown
//     stages and forward FROM references are errors before anything runs.
//   - ARG: the global scope (the automatic platform ARGs, then ARGs before the first
//     FROM), which FROM lines expand with; ARGs in a stage take --build-arg values,
//     their defaults, or the global value, and override an ENV of the same name for
//     expansion until the next ENV, as in BuildKit; they never enter Env.
//   - Every instruction that needs no container: COPY and ADD (config.go for the
//     others: ENV, LABEL, USER, WORKDIR, EXPOSE, VOLUME, STOPSIGNAL, SHELL,
//     HEALTHCHECK, ONBUILD, MAINTAINER), CMD and ENTRYPOINT, with BuildKit's config
//     fields and history text. ONBUILD triggers of a base run right after its FROM.
//   - COPY from the build context or --from a stage or image: wildcards, directory
//     contents, the destination rules (trailing slash, existing directory, relative to
//     WORKDIR, symlinks resolved inside the image root), new parents 0755, modes and
//     mtimes preserved, symlinks inside directories kept, top-level symlinks followed
//     inside the context, hard links kept; --chown with ids or names looked up in the
//     image's own /etc/passwd and /etc/group (an unknown name is an error, where
//     BuildKit uses 0); --chmod octal or symbolic.
//   - .dockerignore (Options.Ignore; ReadIgnoreFile picks "<Dockerfile>.dockerignore"
//     over the context's ".dockerignore", as BuildKit does): what it excludes is
//     missing from every read of the context, for COPY sources, wildcards, directory
//     walks, symlinks followed inside the context and FROM tarballs. An excluded
//     explicit source is "not found", naming the pattern and its line.
//   - Named contexts (Options.BuildContexts, contexts.go), in buildx's forms: a
//     directory (read through the same contextSource as the build context, with its
//     own .dockerignore), an image file, docker-image://REF, oci-layout://PATH. Names
//     match as BuildKit matches them (ContextKey). A context named like a stage
//     replaces it: the stage runs nothing and needs nothing. Contexts nothing looks
//     up, and digest pins an image does not meet, draw warnings.
//
// RUN is refused for good, because dfbuild never runs a container; its error names
// the --build-context that would replace the stage it is in.
//
// Invariants:
//   - Nothing reads the clock. Times come from Options.SourceDateEpoch or, without it,
//     from the newest modification time among the inputs the build read.
//   - The build context is read only through an fs.FS and never escapes its root:
//     ".." and absolute symlinks are resolved inside it. Every read goes through
//     contextSource, which leaves out the build's own output and what .dockerignore
//     excludes.
//   - Every error names the Dockerfile line (a *parser.Error).
//   - The package prints nothing; progress is reported through Options.Progress.
package interp
