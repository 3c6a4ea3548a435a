// Package interp runs a parsed Dockerfile against in-memory filesystems and produces an
// image, doing what `docker build` with BuildKit does for every instruction that needs
// no container.
//
// Build takes the parsed file and the build context, runs the target stage's
// instructions in order (one dispatch function per instruction), and returns the image:
// its config, its history (one entry per instruction, as BuildKit writes it) and its
// layers (one per filesystem-changing instruction, holding only what changed).
//
// What it does today:
//   - FROM scratch; FROM a root filesystem tarball in the build context (plain, gzip,
//     bzip2, xz or zstd, detected by content); FROM a name that --build-context maps to
//     such a tarball.
//   - COPY from the build context: wildcards, directory contents, the destination rules
//     (trailing slash, existing directory, relative to WORKDIR, symlinks resolved inside
//     the image root), new parents 0755 root:root, modes and mtimes preserved, owner
//     0:0, symlinks inside directories kept, top-level symlinks followed inside the
//     context.
//   - COPY --chown with ids or names: names are looked up in the image's own
//     /etc/passwd and /etc/group as they are at that COPY, a user alone takes its
//     primary gid, and an unknown name or a missing file is an error (BuildKit uses 0).
//   - COPY --chmod with an octal mode (which new parents get too, as in BuildKit) or a
//     symbolic one such as u=rwX,go=rX, applied to each entry's own mode.
//   - ENTRYPOINT and CMD in exec and shell form.
//   - .dockerignore (Options.Ignore; ReadIgnoreFile picks "<Dockerfile>.dockerignore"
//     over the context's ".dockerignore", as BuildKit does): what it excludes is
//     missing from every read of the context, for COPY sources, wildcards, directory
//     walks, symlinks followed inside the context and FROM tarballs. An excluded
//     explicit source is "not found", naming the pattern and its line. Exceptions
//     bring back paths under an excluded directory, which keeps its own metadata.
//
// Everything else is refused with an error at its line saying it is not supported yet;
// RUN is refused for good, because dfbuild never runs a container.
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
