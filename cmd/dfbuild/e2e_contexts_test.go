//go:build linux

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2EStageReplacement compares --build-context builder=DIR, which replaces the
// builder stage (kubebuilder's pattern: the stage's RUN never runs), with docker build
// of the same Dockerfile where that stage starts FROM an image imported from the
// same files. Engine 20.10's BuildKit predates named contexts, so the rewrite is the
// reference. The config, the history and the files must agree, and the image runs.
func TestE2EStageReplacement(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	busybox := e2eBusybox(t)
	builder := e2eFindBuilder(t)
	fx := e2eMakeRootfsContext(t, busybox)
	wallClock := fx.newest.Add(24 * time.Hour)

	// What the builder stage would have made.
	at := func(min int) time.Time { return e2eCtxTime.Add(time.Duration(min) * time.Minute) }
	built := filepath.Join(t.TempDir(), "built")
	e2eMkdir(t, filepath.Join(built, "workspace", "etc"), 0o755)
	e2eWrite(t, filepath.Join(built, "workspace", "manager"), "#!/bin/sh\necho manager ran\n", 0o755, at(20))
	e2eWrite(t, filepath.Join(built, "workspace", "etc", "config.yaml"), "level: info\n", 0o640, at(21))
	e2eTouch(t, filepath.Join(built, "workspace", "etc"), at(22))
	e2eTouch(t, filepath.Join(built, "workspace"), at(23))

	// Names go first, so that the images are removed however the test ends.
	base, builderImage := e2eName("ctxbase:1"), e2eName("builder:1")
	ref, tag := e2eName("replaced:reference"), e2eName("replaced:dfbuild")
	e2eRemoveImagesAfter(t, base, builderImage, ref, tag)
	e2eDocker(t, "import", fx.tar, base)
	builtTar := filepath.Join(t.TempDir(), "built.tar")
	e2eMust(t, nil, "tar", "-C", built, "--numeric-owner", "--owner=0", "--group=0", "-cf", builtTar, ".")
	e2eDocker(t, "import", builtTar, builderImage)

	const final = "FROM %s\nWORKDIR /app\nCOPY --from=builder /workspace/manager ./manager\nCOPY --from=builder /workspace/etc/ /app/etc/\n" +
		"USER 65532:65532\nENTRYPOINT [\"/app/manager\"]\n"
	refDockerfile := filepath.Join(fx.dir, "Dockerfile.replaced-reference")
	e2eWrite(t, refDockerfile, "FROM "+builderImage+" AS builder\n"+strings.Replace(final, "%s", base, 1), 0o644, fx.newest)
	builder.build(t, fx.dir, refDockerfile, ref)

	df := filepath.Join(fx.dir, "Dockerfile.replaced")
	e2eWrite(t, df, "FROM golang:1.22 AS builder\nWORKDIR /workspace\nCOPY . .\nRUN go build -o manager ./cmd\n\n"+
		strings.Replace(final, "%s", "base", 1), 0o644, fx.newest)
	out := filepath.Join(t.TempDir(), "replaced.tar")
	e2eDFBuild(t, buildOptions{contextDir: fx.dir, file: df, tags: []string{tag}, output: out,
		buildContexts: []string{"builder=" + built, "base=" + fx.tar}})
	e2eDockerLoad(t, out, tag)

	if got := e2eDockerRun(t, tag); got != "manager ran\n" {
		t.Errorf("docker run %s printed %q, want %q", tag, got, "manager ran\n")
	}
	ours, theirs := e2eReadArchive(t, out).Images[0], e2eDockerSave(t, ref)
	e2eCompareInspect(t, e2eImageInspect(t, tag), e2eImageInspect(t, ref))
	e2eCompareHistory(t, ours.Config, theirs.Config, nil)
	e2eCompareLayers(t, ours, theirs, wallClock, nil)
	diffs, notes := e2eCompareTrees(e2eExport(t, tag), e2eExport(t, ref), "dfbuild", "reference", e2eWallClockPolicy(wallClock))
	e2eLogNotes(t, "exported filesystems", notes)
	e2eReport(t, "exported filesystems", diffs, nil)
}
