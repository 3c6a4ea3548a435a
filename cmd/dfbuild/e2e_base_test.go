//go:build linux

package main

import (
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// TestE2EImageBase starts FROM an image that Docker saved (the reference imports the
// busybox tarball; dfbuild reads `docker save` of that image through
// --build-context) and compares the result with the reference built FROM the same
// image: the whole history and every layer must agree, the base's included, and the
// image must run.
func TestE2EImageBase(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	busybox := e2eBusybox(t)
	builder := e2eFindBuilder(t)
	fx := e2eMakeRootfsContext(t, busybox)
	wallClock := fx.newest.Add(24 * time.Hour)

	base := e2eName("busybox:saved")
	e2eRemoveImagesAfter(t, base)
	e2eDocker(t, "import", "--change", `CMD ["/bin/sh"]`, "--change", "ENV BASE_VAR=from-the-base", fx.tar, base)
	saved := filepath.Join(t.TempDir(), "saved.tar")
	e2eDocker(t, "save", "-o", saved, base)

	const steps = "COPY greeting.txt /srv/app/\nCOPY tree /srv/app/tree\nENTRYPOINT [\"/bin/cat\"]\nCMD [\"/srv/app/greeting.txt\"]\n"
	refDockerfile := filepath.Join(fx.dir, "Dockerfile.saved-reference")
	e2eWrite(t, refDockerfile, "FROM "+base+"\n"+steps, 0o644, fx.newest)
	ref := e2eName("saved:reference")
	builder.build(t, fx.dir, refDockerfile, ref)

	df := filepath.Join(fx.dir, "Dockerfile.saved")
	e2eWrite(t, df, "FROM busybox:saved\n"+steps, 0o644, fx.newest)
	out := filepath.Join(t.TempDir(), "saved-base.tar")
	tag := e2eName("saved:dfbuild")
	e2eDFBuild(t, buildOptions{contextDir: fx.dir, file: df, tags: []string{tag}, output: out,
		buildContexts: []string{"busybox:saved=" + saved}})
	e2eDockerLoad(t, out, tag)

	if got := e2eDockerRun(t, tag); got != e2eGreeting {
		t.Errorf("docker run %s printed %q, want %q", tag, got, e2eGreeting)
	}
	ours, theirs := e2eReadArchive(t, out).Images[0], e2eDockerSave(t, ref)
	if !slices.Equal(ours.Config.RootFS.DiffIDs[:1], theirs.Config.RootFS.DiffIDs[:1]) {
		t.Errorf("base layer: dfbuild %v, reference %v", ours.Config.RootFS.DiffIDs[:1], theirs.Config.RootFS.DiffIDs[:1])
	}
	e2eCompareInspect(t, e2eImageInspect(t, tag), e2eImageInspect(t, ref))
	e2eCompareHistory(t, ours.Config, theirs.Config, nil)
	e2eCompareLayers(t, ours, theirs, wallClock, nil)
	diffs, notes := e2eCompareTrees(e2eExport(t, tag), e2eExport(t, ref), "dfbuild", "reference", e2eWallClockPolicy(wallClock))
	e2eLogNotes(t, "exported filesystems", notes)
	e2eReport(t, "exported filesystems", diffs, nil)
}
