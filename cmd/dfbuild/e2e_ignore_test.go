//go:build linux

package main

// The differential test of .dockerignore (semantics.md §1.13): the same contexts,
// each with an ignore file, built by the reference builder and by dfbuild, and the
// history, the new layers and the exported filesystems compared, as e2eDiffCase does.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EDockerignore covers, each on a fresh copy of the rootfs context:
//
//   - context: the context's .dockerignore with a comment, a blank line, a leading
//     "/", "**", an exception that brings back a file under an excluded directory
//     (whose mode the copy keeps), the last match winning, a wildcard that skips an
//     excluded file, and the Dockerfiles excluded by a pattern (C29-C32);
//   - dockerfile-specific: "<Dockerfile>.dockerignore" wins over the context's file;
//   - glob-exception: an exception with wildcards under an excluded directory;
//   - excluded-source: an explicit source that .dockerignore excludes fails in both.
func TestE2EDockerignore(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	busybox := e2eBusybox(t)
	builder := e2eFindBuilder(t)
	base := e2eName("busybox:ignore-base")
	e2eRemoveImagesAfter(t, base)
	e2eDocker(t, "import", e2eMakeRootfsContext(t, busybox).tar, base)

	// newCtx makes a fresh rootfs context with the given ignore files (paths relative
	// to the context), dated like the rest of the context.
	newCtx := func(t *testing.T, files map[string]string) (*e2eRootfsCtx, time.Time) {
		fx := e2eMakeRootfsContext(t, busybox)
		for name, content := range files {
			e2eWrite(t, filepath.Join(fx.dir, name), content, 0o644, e2eCtxTime.Add(30*time.Minute))
		}
		// Inputs are from 2020 and 2024; anything newer was stamped by a build.
		return fx, fx.newest.Add(24 * time.Hour)
	}

	t.Run("context", func(t *testing.T) {
		fx, wallClock := newCtx(t, map[string]string{".dockerignore": `# the Dockerfiles are ordinary context files: these patterns keep them out

/Dockerfile*
tree/nested
!tree/nested/deeper/data.bin
**/link-to-*
tools/*.sh
!tools/run.sh
tree/suid
!tree/s*
tree/sticky
motd
`})
		e2eDiffCase(t, builder, fx, base, wallClock, "ignore-context", `COPY . /ctx/
COPY tree /srv/tree
COPY m* *.txt /srv/top/
`, nil)
	})

	t.Run("dockerfile-specific", func(t *testing.T) {
		// e2eDiffCase names the reference's Dockerfile and dfbuild's after the case.
		const specific = "Dockerfile*\nmotd\ntree\n"
		fx, wallClock := newCtx(t, map[string]string{
			".dockerignore": "greeting.txt\n",
			"Dockerfile.ignore-specific-reference.dockerignore": specific,
			"Dockerfile.ignore-specific.dockerignore":           specific,
		})
		e2eDiffCase(t, builder, fx, base, wallClock, "ignore-specific", "COPY . /ctx/\n", nil)
	})

	t.Run("glob-exception", func(t *testing.T) {
		fx, wallClock := newCtx(t, map[string]string{".dockerignore": "Dockerfile*\ntree\n!tree/**/*.bin\n"})
		var known e2eKnown
		if builder.oldBuildKit() {
			// Checked by hand with DOCKER_BUILDKIT=1 docker build on Engine 20.10: its
			// BuildKit v0.8 does not bring back tree/nested/deeper/data.bin.
			known = func(d string) string {
				if strings.Contains(d, "only in dfbuild") && strings.Contains(d, "/tree") {
					return "BuildKit v0.8 ignores an exception with wildcards under an excluded directory; current BuildKit brings the files back, like dfbuild"
				}
				return ""
			}
		}
		e2eDiffCase(t, builder, fx, base, wallClock, "ignore-glob", "COPY . /ctx/\n", known)
	})

	t.Run("excluded-source", func(t *testing.T) {
		fx, _ := newCtx(t, map[string]string{".dockerignore": "# secrets\n\nmotd\n"})
		steps := "COPY greeting.txt motd /srv/\n"
		refDockerfile := filepath.Join(fx.dir, "Dockerfile.ignore-source-reference")
		e2eWrite(t, refDockerfile, "FROM "+base+"\n"+steps, 0o644, fx.newest)
		ref := e2eName("ignore-source:reference")
		e2eRemoveImagesAfter(t, ref)
		args := append(append([]string{}, builder.argv[1:]...), "-f", refDockerfile, "-t", ref, fx.dir)
		_, stderr, err := e2eExec(builder.env, nil, builder.argv[0], args...)
		if err == nil || !strings.Contains(stderr, "not found") {
			t.Errorf("the reference build of an excluded source: err %v, want a failure saying \"not found\"; stderr:\n%s", err, stderr)
		}

		df := filepath.Join(fx.dir, "Dockerfile.ignore-source")
		e2eWrite(t, df, "FROM busybox-rootfs.tar\n"+steps, 0o644, fx.newest)
		out := filepath.Join(t.TempDir(), "out.tar")
		var o, e strings.Builder
		err = runBuild(t.Context(), strings.NewReader(""), &o, &e, buildOptions{contextDir: fx.dir, file: df, output: out})
		want := `COPY: source "motd": not found in the build context: excluded by ` + filepath.Join(fx.dir, ".dockerignore") + ` line 3 ("motd")`
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("dfbuild: err %v, want one containing %q", err, want)
		}
		if _, err := os.Stat(out); err == nil {
			t.Errorf("dfbuild wrote %s after a failed build", out)
		}
	})
}
