//go:build linux

package main

// End-to-end tests against real tools: the Docker Engine (load, run, and BuildKit as the
// reference builder for a differential comparison), podman and skopeo, plus a
// reproducibility test that needs no daemon. Run them with
//
//	go test ./cmd/dfbuild -run E2E -v
//
// Tests that need a tool skip without it, and fail instead when CI=true. The Docker,
// podman and skopeo tests also skip with -short, unless CI=true. Images are named
// dfbuild-e2e-PID/... and removed (by name) when each test ends; containers
// likewise. BuildKit's build cache in the daemon is left alone.
//
// The reference builder is chosen by e2eFindBuilder; DFBUILD_E2E_BUILDER=classic
// compares with the classic builder instead (expect the differences of
// semantics.md §5).

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

// ---- fixtures ----------------------------------------------------------------------

// e2eCtxTime is the base of the mtimes given to the build context's files.
var e2eCtxTime = time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC)

// e2eRootfsSteps follow the FROM line of the rootfs Dockerfiles: COPY of a file to a
// new directory; of a directory with nested directories, symlinks, an executable, a
// setuid file, a sticky and an empty directory; of a symlink (followed) and an
// executable into a new directory; of files and a directory's contents into the
// existing /etc; ENTRYPOINT and CMD in both forms.
const e2eRootfsSteps = `COPY greeting.txt /srv/app/
COPY tree /srv/app/tree
COPY tree/link-to-readme tools/run.sh /usr/local/bin/
COPY motd tree/README /etc/
COPY tree/nested /etc/
ENTRYPOINT echo shell form entrypoint
CMD ["exec", "form", "cmd"]
ENTRYPOINT ["/usr/local/bin/run.sh"]
CMD echo "from the shell-form CMD"
`

const (
	e2eGreeting = "hello from the build context\n"
	e2eReadme   = "This is tree/README.\n"
	e2eRunSh    = "#!/bin/sh\necho \"run.sh: $#\"\nfor a in \"$@\"; do echo \"[$a]\"; done\n"
	// What the image's default ENTRYPOINT + CMD print.
	e2eRunOutput = "run.sh: 3\n[/bin/sh]\n[-c]\n[echo \"from the shell-form CMD\"]\n"
)

// e2eRootfsCtx is a build context holding the busybox base tarballs and the files the
// rootfs Dockerfiles copy.
type e2eRootfsCtx struct {
	dir     string    // the build context
	tar, gz string    // busybox-rootfs.tar and busybox-rootfs.tar.gz in it
	outside string    // a copy of the gzip tarball outside the context
	tarSHA  string    // sha256 of the uncompressed tarball
	newest  time.Time // the mtime of the Dockerfiles: the newest input
}

func e2eMakeRootfsContext(t *testing.T, busybox []byte) *e2eRootfsCtx {
	t.Helper()
	root := t.TempDir()
	fx := &e2eRootfsCtx{dir: filepath.Join(root, "ctx"), newest: e2eCtxTime.Add(time.Hour)}
	d := func(p string) string { return filepath.Join(fx.dir, filepath.FromSlash(p)) }
	at := func(min int) time.Time { return e2eCtxTime.Add(time.Duration(min) * time.Minute) }

	raw := e2eRootfsTar(busybox)
	fx.tarSHA = e2eSHA256(raw)
	fx.tar, fx.gz = d("busybox-rootfs.tar"), d("busybox-rootfs.tar.gz")
	fx.outside = filepath.Join(root, "elsewhere", "alpine-minirootfs.tar.gz")
	e2eWrite(t, fx.tar, string(raw), 0o644, e2eCtxTime)
	e2eWrite(t, fx.gz, string(e2eGzip(raw)), 0o644, e2eCtxTime)
	e2eWrite(t, fx.outside, string(e2eGzip(raw)), 0o644, e2eCtxTime)

	// A sub-second mtime: both builders must cut it to whole seconds.
	e2eWrite(t, d("greeting.txt"), e2eGreeting, 0o644, at(1).Add(750*time.Millisecond))
	e2eWrite(t, d("motd"), "message of the day\n", 0o600, at(2))
	e2eMkdir(t, d("tools"), 0o755)
	e2eWrite(t, d("tools/run.sh"), e2eRunSh, 0o755, at(3))

	e2eMkdir(t, d("tree"), 0o750)
	e2eWrite(t, d("tree/README"), e2eReadme, 0o644, at(4))
	e2eWrite(t, d("tree/tool"), "#!/bin/sh\necho tool\n", 0o755, at(5))
	// Context files are copied as 0:0 whoever owns them (C19); chown fails unless root.
	if err := os.Lchown(d("tree/tool"), 1234, 5678); err != nil {
		t.Logf("cannot give tree/tool another owner (%v); ownership of context files goes untested", err)
	}
	e2eWrite(t, d("tree/suid"), "#!/bin/sh\necho suid\n", 0o755|os.ModeSetuid, at(6))
	e2eSymlink(t, "README", d("tree/link-to-readme"), at(7))
	e2eSymlink(t, "/etc/passwd", d("tree/abs-link"), at(7))
	e2eSymlink(t, "nested", d("tree/link-to-nested"), at(7))
	e2eMkdir(t, d("tree/nested/deeper"), 0o755)
	e2eWrite(t, d("tree/nested/deeper/data.bin"), strings.Repeat("\x00\x01\x02\xfe\xff", 300), 0o640, at(9))
	e2eMkdir(t, d("tree/sticky"), 0o755)
	e2eWrite(t, d("tree/sticky/.keep"), "", 0o644, at(10))
	e2eMkdir(t, d("tree/empty"), 0o755)
	// Directory modes and times last, children first.
	if err := os.Chmod(d("tree/nested"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(d("tree/sticky"), 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		name string
		min  int
	}{{"tree/nested/deeper", 11}, {"tree/nested", 12}, {"tree/sticky", 13}, {"tree/empty", 14}, {"tree", 15}, {"tools", 16}} {
		e2eTouch(t, d(p.name), at(p.min))
	}
	return fx
}

// e2eHelloBinary compiles testdata/hello/hello.go as a static binary into dir.
func e2eHelloBinary(t *testing.T, dir string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return e2eGoBuild(t, dir, "hello", filepath.Join("..", "..", "testdata", "hello", "hello.go"))
}

// e2eHelloContext makes dir/ctx: the hello binary and testdata/hello's Dockerfile.
func e2eHelloContext(t *testing.T, dir string) string {
	t.Helper()
	ctxDir := filepath.Join(dir, "ctx")
	e2eHelloBinary(t, ctxDir)
	e2eCopyFile(t, filepath.Join("..", "..", "testdata", "hello", "Dockerfile"), filepath.Join(ctxDir, "Dockerfile"), 0o644, e2eCtxTime)
	return ctxDir
}

// e2eAppendContext makes dir/ctx for the two-image archive: the hello binary, a
// busybox rootfs tarball, and the two Dockerfiles e2eWriteAppendDockerfiles writes.
func e2eAppendContext(t *testing.T, dir string) (ctxDir, dfHello, dfBusybox string) {
	t.Helper()
	busybox := e2eBusybox(t)
	ctxDir = filepath.Join(dir, "ctx")
	e2eHelloBinary(t, ctxDir)
	e2eWrite(t, filepath.Join(ctxDir, "greeting.txt"), e2eGreeting, 0o644, e2eCtxTime)
	e2eWrite(t, filepath.Join(ctxDir, "busybox-rootfs.tar"), string(e2eRootfsTar(busybox)), 0o644, e2eCtxTime)
	dfHello, dfBusybox = e2eWriteAppendDockerfiles(t, ctxDir)
	return ctxDir, dfHello, dfBusybox
}

// ---- 1. hello ----------------------------------------------------------------------

// TestE2EHello builds testdata/hello's Dockerfile (FROM scratch, COPY of a static
// binary, ENTRYPOINT) with two tags, loads the archive into Docker and runs both tags.
func TestE2EHello(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	dir := t.TempDir()
	ctxDir := e2eHelloContext(t, dir)

	tagScratch, tagLatest := e2eName("hello:scratch"), e2eName("hello")
	out := filepath.Join(dir, "hello.tar")
	id := e2eDFBuild(t, buildOptions{contextDir: ctxDir, tags: []string{tagScratch, tagLatest}, output: out})

	e2eDockerLoad(t, out, tagScratch, tagLatest+":latest")
	if got := e2eImageInspect(t, tagScratch).ID; got != id {
		t.Errorf("docker's image ID is %s, dfbuild printed %s", got, id)
	}
	for _, tag := range []string{tagScratch, tagLatest} {
		if got := e2eDockerRun(t, tag); got != "hello world\n" {
			t.Errorf("docker run %s printed %q, want %q", tag, got, "hello world\n")
		}
	}
}

// ---- 2. a rootfs tarball as the base, compared with BuildKit -------------------------

// TestE2ERootfsBase builds a Dockerfile whose base is a busybox root filesystem
// tarball, three ways (FROM the .tar in the context, FROM the .tar.gz, and FROM
// alpine:3.18 served by --build-context), runs the images, and compares each with the
// image BuildKit builds from the same steps on top of `docker import` of the tarball:
// the exported filesystems, the config, the layers and the history.
func TestE2ERootfsBase(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	busybox := e2eBusybox(t)
	builder := e2eFindBuilder(t)
	fx := e2eMakeRootfsContext(t, busybox)
	// The inputs are from 2020 and 2024: anything newer was stamped by a build, during
	// this run or an earlier one whose cached layers BuildKit reuses.
	wallClock := fx.newest.Add(24 * time.Hour)

	// The reference: docker import the tarball, build the same steps on top of it.
	base := e2eName("busybox:imported")
	e2eRemoveImagesAfter(t, base)
	e2eDocker(t, "import", fx.tar, base)
	refDockerfile := filepath.Join(fx.dir, "Dockerfile.reference")
	e2eWrite(t, refDockerfile, "FROM "+base+"\n"+e2eRootfsSteps, 0o644, fx.newest)
	ref := e2eName("rootfs:reference")
	builder.build(t, fx.dir, refDockerfile, ref)
	refSaved := e2eDockerSave(t, ref)
	refInspect := e2eImageInspect(t, ref)
	refFS := e2eExport(t, ref)
	if got := refSaved.Config.RootFS.DiffIDs; len(got) == 0 || got[0] != "sha256:"+fx.tarSHA {
		t.Fatalf("docker import: the base layer is %v, expected the tarball itself, sha256:%s", got, fx.tarSHA)
	}

	variants := []struct {
		name, from string
		contexts   []string
	}{
		{"tar", "busybox-rootfs.tar", nil},
		{"gzip", "busybox-rootfs.tar.gz", nil},
		{"build-context", "alpine:3.18", []string{"alpine:3.18=" + fx.outside}},
	}
	diffIDs := map[string][]string{}
	for _, v := range variants {
		t.Run(v.name, func(t *testing.T) {
			df := filepath.Join(fx.dir, "Dockerfile."+v.name)
			e2eWrite(t, df, "FROM "+v.from+"\n"+e2eRootfsSteps, 0o644, fx.newest)
			out := filepath.Join(t.TempDir(), "rootfs.tar")
			tag := e2eName("rootfs:" + v.name)
			id := e2eDFBuild(t, buildOptions{contextDir: fx.dir, file: df, tags: []string{tag}, output: out, buildContexts: v.contexts})
			ours := e2eReadArchive(t, out).Images[0]
			diffIDs[v.name] = ours.Config.RootFS.DiffIDs

			e2eDockerLoad(t, out, tag)
			inspect := e2eImageInspect(t, tag)
			if inspect.ID != id {
				t.Errorf("docker's image ID is %s, dfbuild printed %s", inspect.ID, id)
			}
			if !slices.Equal(inspect.RootFS.Layers, ours.Config.RootFS.DiffIDs) {
				t.Errorf("docker loaded the layers %v, the archive has %v", inspect.RootFS.Layers, ours.Config.RootFS.DiffIDs)
			}

			// Run it.
			if got := e2eDockerRun(t, tag); got != e2eRunOutput {
				t.Errorf("docker run %s (ENTRYPOINT + CMD) printed:\n%s\nwant:\n%s", tag, got, e2eRunOutput)
			}
			if v.name == "tar" {
				if got := e2eDockerRun(t, "--entrypoint", "/bin/busybox", tag, "cat", "/srv/app/greeting.txt"); got != e2eGreeting {
					t.Errorf("cat /srv/app/greeting.txt printed %q, want %q", got, e2eGreeting)
				}
				wantLs := "busybox\n" + strings.Join(e2eBusyboxApplets, "\n") + "\n"
				if got := e2eDockerRun(t, "--entrypoint", "/bin/ls", tag, "/bin"); got != wantLs {
					t.Errorf("ls /bin printed:\n%s\nwant:\n%s", got, wantLs)
				}
				if got := e2eDockerRun(t, "--entrypoint", "/bin/cat", tag, "/srv/app/tree/link-to-readme", "/usr/local/bin/link-to-readme", "/etc/README"); got != strings.Repeat(e2eReadme, 3) {
					t.Errorf("cat of the copied README and links printed %q", got)
				}
			}

			// The config, as docker shows it.
			e2eCompareInspect(t, inspect, refInspect)
			// Layers and history.
			e2eCompareHistory(t, ours.Config, refSaved.Config, nil)
			e2eCompareLayers(t, ours, refSaved, wallClock, nil)
			// The filesystem a container sees.
			diffs, notes := e2eCompareTrees(e2eExport(t, tag), refFS, "dfbuild", "reference", e2eWallClockPolicy(wallClock))
			e2eLogNotes(t, "exported filesystems", notes)
			e2eReport(t, "exported filesystems", diffs, nil)
		})
	}
	t.Run("hard-links", func(t *testing.T) {
		e2eHardLinks(t, builder, fx, base, wallClock)
	})
	t.Run("chown-chmod", func(t *testing.T) {
		e2eChownChmod(t, builder, fx, base, wallClock)
	})
	t.Run("through-symlinks", func(t *testing.T) {
		e2eThroughSymlinks(t, builder, fx, base, wallClock)
	})
	// The three bases are the same bytes once decompressed, so the layers must agree.
	for _, v := range variants[1:] {
		if got, want := diffIDs[v.name], diffIDs["tar"]; got != nil && want != nil && !slices.Equal(got, want) {
			t.Errorf("the %s variant's diff_ids differ from the tar variant's:\n%s\n%s", v.name, got, want)
		}
	}
}

// e2eDiffCase builds steps on the busybox base with dfbuild and with the reference
// builder (on the imported base), and compares the history, the new layers and the
// exported filesystems.
func e2eDiffCase(t *testing.T, builder e2eBuilder, fx *e2eRootfsCtx, base string, wallClock time.Time, name, steps string, known e2eKnown) {
	t.Helper()
	refDockerfile := filepath.Join(fx.dir, "Dockerfile."+name+"-reference")
	e2eWrite(t, refDockerfile, "FROM "+base+"\n"+steps, 0o644, fx.newest)
	ref := e2eName(name + ":reference")
	builder.build(t, fx.dir, refDockerfile, ref)

	df := filepath.Join(fx.dir, "Dockerfile."+name)
	e2eWrite(t, df, "FROM busybox-rootfs.tar\n"+steps, 0o644, fx.newest)
	out := filepath.Join(t.TempDir(), name+".tar")
	tag := e2eName(name + ":dfbuild")
	e2eDFBuild(t, buildOptions{contextDir: fx.dir, file: df, tags: []string{tag}, output: out})
	e2eDockerLoad(t, out, tag)

	ours, theirs := e2eReadArchive(t, out).Images[0], e2eDockerSave(t, ref)
	e2eCompareHistory(t, ours.Config, theirs.Config, known)
	e2eCompareLayers(t, ours, theirs, wallClock, known)
	diffs, notes := e2eCompareTrees(e2eExport(t, tag), e2eExport(t, ref), "dfbuild", "reference", e2eWallClockPolicy(wallClock))
	e2eLogNotes(t, "exported filesystems", notes)
	e2eReport(t, "exported filesystems", diffs, known)
}

// e2eHardLinks copies a directory holding hard-linked files. semantics.md C21:
// BuildKit recreates files hard-linked to each other within one copied tree as hard
// links (tar link entries to the first name).
func e2eHardLinks(t *testing.T, builder e2eBuilder, fx *e2eRootfsCtx, base string, wallClock time.Time) {
	d := func(p string) string { return filepath.Join(fx.dir, "links", filepath.FromSlash(p)) }
	e2eWrite(t, d("a"), "linked content\n", 0o644, e2eCtxTime)
	e2eMkdir(t, d("sub"), 0o755)
	for _, l := range []string{"b", "sub/c"} {
		if err := os.Link(d("a"), d(l)); err != nil {
			t.Fatal(err)
		}
	}
	e2eWrite(t, d("other"), "not linked\n", 0o644, e2eCtxTime)
	e2eTouch(t, d("sub"), e2eCtxTime)
	e2eTouch(t, d("."), e2eCtxTime)
	e2eDiffCase(t, builder, fx, base, wallClock, "links", "COPY links /links/\n", nil)
}

// e2eChownChmod copies with numeric --chown and octal --chmod, of a file into new
// parents and of a directory into a new and an existing directory (semantics.md
// C9, C13, C23, C24).
//
// Two differences are accepted when the reference is the BuildKit built into Docker
// Engine 20.10 (v0.8), because dfbuild follows current BuildKit (v0.34, whose source
// is in the module cache) there: the history's created_by carries --chown and --chmod
// (dockerfile2llb/convert_copy.go), and parents that COPY --chmod creates get the
// --chmod mode (testCopyChmod expects /parent to be 0777 after --chmod=777).
func e2eChownChmod(t *testing.T, builder e2eBuilder, fx *e2eRootfsCtx, base string, wallClock time.Time) {
	var known e2eKnown
	if builder.oldBuildKit() {
		createdBy := regexp.MustCompile(`^history\[\d+\]\.created_by: "(.*)" \(dfbuild\) vs "(.*)" \(reference\)$`)
		flags := regexp.MustCompile(` --ch(own|mod)=\S+`)
		parents := map[string]bool{}
		for _, p := range []string{"/srv", "/srv/owned", "/srv/owned/sub"} {
			parents[p+": mode 0640 vs 0755 (dfbuild vs reference)"] = true
		}
		known = func(d string) string {
			if m := createdBy.FindStringSubmatch(d); m != nil && flags.ReplaceAllString(m[1], "") == m[2] {
				return "BuildKit v0.8 leaves --chown and --chmod out of created_by; current BuildKit writes them, like dfbuild"
			}
			if parents[d] {
				return "BuildKit v0.8 makes the parents COPY --chmod creates 0755; current BuildKit gives them the --chmod mode, like dfbuild"
			}
			return ""
		}
	}
	e2eDiffCase(t, builder, fx, base, wallClock, "chown", `COPY --chown=1000:1000 --chmod=0640 greeting.txt /srv/owned/sub/
COPY --chown=1234:5678 tree/nested /srv/chowned
COPY --chown=42 tree/nested /tmp/
`, known)
}

// e2eThroughSymlinks copies onto symlinks in the image (semantics.md C14: symlinks on
// the destination path are followed inside the image, the last component too, so a
// link's target file is replaced and the link stays, and a link to a directory
// receives the file), and cleans ".." lexically before that (C10).
func e2eThroughSymlinks(t *testing.T, builder e2eBuilder, fx *e2eRootfsCtx, base string, wallClock time.Time) {
	e2eDiffCase(t, builder, fx, base, wallClock, "symlinks", `COPY greeting.txt /bin/cat
COPY tree /srv/tree
COPY motd /srv/tree/abs-link
COPY greeting.txt /srv/tree/link-to-nested
COPY tools/run.sh /srv/tree/link-to-nested/deeper/
COPY tree/README /bin/sh/../
`, nil)
}

// e2eLogNotes logs the mtime differences a comparison did not count, by reason.
func e2eLogNotes(t *testing.T, what string, notes map[string][]string) {
	t.Helper()
	if len(notes) == 0 {
		return
	}
	var b strings.Builder
	for _, reason := range slices.Sorted(maps.Keys(notes)) {
		fmt.Fprintf(&b, "\n  %s:\n    %s", reason, strings.Join(notes[reason], "\n    "))
	}
	t.Logf("%s: mtime differences not counted (dfbuild vs reference):%s", what, b.String())
}

// e2eWallClockPolicy excuses mtime differences where the reference has a time later
// than every input (wallClock): docker's init layer, and directories the reference
// build stamped with the time it ran. dfbuild never uses the wall clock.
func e2eWallClockPolicy(wallClock time.Time) e2eMtimePolicy {
	return func(p string, ours, theirs e2eEntry) string {
		switch {
		case ours.MTime.After(wallClock) && theirs.MTime.After(wallClock):
			return "both stamped by docker when it created the containers (its init layer)"
		case theirs.Type == "d" && theirs.MTime.After(wallClock):
			return "directories the reference build stamped with its wall-clock time (dfbuild: the source directory's mtime, or its newest input's for directories it made)"
		}
		return ""
	}
}

// e2eCompareInspect compares docker image inspect's platform and Config of two images.
func e2eCompareInspect(t *testing.T, ours, ref e2eInspect) {
	t.Helper()
	if ours.Architecture != ref.Architecture || ours.Os != ref.Os || ours.Variant != ref.Variant {
		t.Errorf("platform: %s/%s/%s (dfbuild) vs %s/%s/%s (reference)", ours.Os, ours.Architecture, ours.Variant, ref.Os, ref.Architecture, ref.Variant)
	}
	var diffs []string
	for _, k := range e2eSortedKeys(ours.Config, ref.Config) {
		if !e2eDeepEqualJSON(ours.Config[k], ref.Config[k]) {
			diffs = append(diffs, fmt.Sprintf("Config.%s: %s (dfbuild) vs %s (reference)", k, e2eJSON(ours.Config[k]), e2eJSON(ref.Config[k])))
		}
	}
	// These four matter most; they are compared above with the rest; log them.
	for _, k := range []string{"Entrypoint", "Cmd", "Env", "WorkingDir"} {
		if e2eDeepEqualJSON(ours.Config[k], ref.Config[k]) {
			t.Logf("Config.%s agrees: %s", k, e2eJSON(ours.Config[k]))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("docker image inspect: the configs differ:\n  %s", strings.Join(diffs, "\n  "))
	}
}

// e2eHistoryPattern is the history's empty_layer pattern: "e" for an empty_layer
// entry, "L" for one with a layer.
func e2eHistoryPattern(c e2eConfig) string {
	var b strings.Builder
	for _, h := range c.History {
		if h.EmptyLayer {
			b.WriteByte('e')
		} else {
			b.WriteByte('L')
		}
	}
	return b.String()
}

// e2eCompareHistory compares the number of layers, the empty_layer pattern of the
// history, its created_by and comment strings (creation times are not compared) and
// the base layer.
func e2eCompareHistory(t *testing.T, ours, ref e2eConfig, known e2eKnown) {
	t.Helper()
	if len(ours.RootFS.DiffIDs) != len(ref.RootFS.DiffIDs) {
		t.Errorf("layers: %d (dfbuild) vs %d (reference)", len(ours.RootFS.DiffIDs), len(ref.RootFS.DiffIDs))
	}
	if p, q := e2eHistoryPattern(ours), e2eHistoryPattern(ref); p != q {
		t.Errorf("history pattern (L = layer, e = empty_layer): %s (dfbuild) vs %s (reference)", p, q)
	}
	if len(ours.RootFS.DiffIDs) > 0 && len(ref.RootFS.DiffIDs) > 0 && ours.RootFS.DiffIDs[0] != ref.RootFS.DiffIDs[0] {
		t.Errorf("base layer: %s (dfbuild) vs %s (reference)", ours.RootFS.DiffIDs[0], ref.RootFS.DiffIDs[0])
	}
	var diffs []string
	for i := range min(len(ours.History), len(ref.History)) {
		a, b := ours.History[i], ref.History[i]
		if i == 0 {
			// The base's entry comes from dfbuild's reading of the tarball on one side and
			// from docker import on the other; only note it.
			if a.CreatedBy != b.CreatedBy || a.Comment != b.Comment {
				t.Logf("history[0] (the base): created_by %q comment %q (dfbuild) vs created_by %q comment %q (docker import)", a.CreatedBy, a.Comment, b.CreatedBy, b.Comment)
			}
			continue
		}
		if a.CreatedBy != b.CreatedBy {
			diffs = append(diffs, fmt.Sprintf("history[%d].created_by: %q (dfbuild) vs %q (reference)", i, a.CreatedBy, b.CreatedBy))
		}
		if a.Comment != b.Comment {
			diffs = append(diffs, fmt.Sprintf("history[%d].comment: %q (dfbuild) vs %q (reference)", i, a.Comment, b.Comment))
		}
	}
	e2eReport(t, "history", diffs, known)
}

// e2eCompareLayers compares the new layers (all but the base) one by one, entry by
// entry; mtimes of directories BuildKit stamped with the build's time are only noted.
func e2eCompareLayers(t *testing.T, ours, ref e2eImage, wallClock time.Time, known e2eKnown) {
	t.Helper()
	if len(ours.Layers) != len(ref.Layers) {
		return // e2eCompareHistory reported it
	}
	for i := 1; i < len(ours.Layers); i++ {
		a, aOrder := e2eLayerTree(t, ours.Layers[i])
		b, bOrder := e2eLayerTree(t, ref.Layers[i])
		diffs, notes := e2eCompareTrees(a, b, "dfbuild", "reference", e2eWallClockPolicy(wallClock))
		what := fmt.Sprintf("layer %d (%s)", i, e2eCreatedBy(ours.Config, i))
		e2eLogNotes(t, what, notes)
		if failed := e2eReport(t, what, diffs, known); !failed && !slices.Equal(aOrder, bOrder) {
			t.Logf("%s: same entries, different order:\n  dfbuild:   %s\n  reference: %s", what, strings.Join(aOrder, " "), strings.Join(bOrder, " "))
		}
	}
}

// e2eKnown recognises a difference from the reference that is understood and
// accepted, and says why; "" means the difference is a failure.
type e2eKnown func(diff string) string

// e2eReport fails t with the differences, except the known ones, which it logs. It
// reports whether anything failed.
func e2eReport(t *testing.T, what string, diffs []string, known e2eKnown) bool {
	t.Helper()
	var bad []string
	accepted := map[string][]string{}
	for _, d := range diffs {
		if known != nil {
			if reason := known(d); reason != "" {
				accepted[reason] = append(accepted[reason], d)
				continue
			}
		}
		bad = append(bad, d)
	}
	for _, reason := range slices.Sorted(maps.Keys(accepted)) {
		t.Logf("%s: known differences, not counted (%s):\n  %s", what, reason, strings.Join(accepted[reason], "\n  "))
	}
	if len(bad) > 0 {
		t.Errorf("%s: %d differences (dfbuild vs reference):\n  %s", what, len(bad), strings.Join(bad, "\n  "))
	}
	return len(bad) > 0
}

// e2eCreatedBy is the created_by of the history entry of layer i.
func e2eCreatedBy(c e2eConfig, layer int) string {
	n := -1
	for _, h := range c.History {
		if !h.EmptyLayer {
			n++
			if n == layer {
				return h.CreatedBy
			}
		}
	}
	return "?"
}

// ---- 3. two images in one archive -------------------------------------------------

// TestE2EAppendTwoImages writes hello:scratch and a busybox-based image that holds
// the same hello layer into one archive with --append, checks that the shared layer
// is stored once, loads the archive into Docker and runs both tags.
func TestE2EAppendTwoImages(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	dir := t.TempDir()
	ctxDir, dfHello, dfBusybox := e2eAppendContext(t, dir)

	same := filepath.Join(dir, "same.tar")
	tagHello, tagBusybox := e2eName("hello:scratch"), e2eName("hello:busybox")
	idHello := e2eDFBuild(t, buildOptions{contextDir: ctxDir, file: dfHello, tags: []string{tagHello}, output: same})
	idBusybox := e2eDFBuild(t, buildOptions{contextDir: ctxDir, file: dfBusybox, tags: []string{tagBusybox}, output: same, append: true})
	e2eCheckSharedLayer(t, same, tagHello, tagBusybox)

	e2eDockerLoad(t, same, tagHello, tagBusybox)
	for tag, id := range map[string]string{tagHello: idHello, tagBusybox: idBusybox} {
		if got := e2eImageInspect(t, tag).ID; got != id {
			t.Errorf("%s: docker's image ID is %s, dfbuild printed %s", tag, got, id)
		}
	}
	if got := e2eDockerRun(t, tagHello); got != "hello world\n" {
		t.Errorf("docker run %s printed %q", tagHello, got)
	}
	if got, want := e2eDockerRun(t, tagBusybox), "hello world\n"+e2eGreeting; got != want {
		t.Errorf("docker run %s printed %q, want %q", tagBusybox, got, want)
	}
}

// e2eWriteAppendDockerfiles writes the two Dockerfiles of the two-image archive.
func e2eWriteAppendDockerfiles(t *testing.T, ctxDir string) (hello, busybox string) {
	t.Helper()
	hello, busybox = filepath.Join(ctxDir, "Dockerfile.hello"), filepath.Join(ctxDir, "Dockerfile.busybox")
	e2eWrite(t, hello, "FROM scratch\nCOPY hello /\nENTRYPOINT [\"/hello\"]\n", 0o644, e2eCtxTime)
	e2eWrite(t, busybox, "FROM busybox-rootfs.tar\nCOPY hello /\nCOPY greeting.txt /srv/\nCMD /hello && cat /srv/greeting.txt\n", 0o644, e2eCtxTime)
	return hello, busybox
}

// e2eCheckSharedLayer checks the two-image archive: both images with their tags, the
// hello layer shared, and every blob stored exactly once.
func e2eCheckSharedLayer(t *testing.T, file, tagHello, tagBusybox string) {
	t.Helper()
	a := e2eReadArchive(t, file)
	if len(a.Images) != 2 {
		t.Fatalf("%d images in the archive, want 2", len(a.Images))
	}
	for i, tag := range []string{tagHello, tagBusybox} {
		if want := []string{"docker.io/" + tag}; !slices.Equal(a.Images[i].RepoTags, want) {
			t.Errorf("image %d: RepoTags %v, want %v", i+1, a.Images[i].RepoTags, want)
		}
	}
	hello, bb := a.Images[0], a.Images[1]
	if len(hello.LayerPaths) != 1 || len(bb.LayerPaths) != 3 {
		t.Fatalf("layers: %v and %v, want 1 and 3", hello.LayerPaths, bb.LayerPaths)
	}
	if hello.LayerPaths[0] != bb.LayerPaths[1] {
		l1, _ := imagetest.Listing(bytes.NewReader(hello.Layers[0]))
		l2, _ := imagetest.Listing(bytes.NewReader(bb.Layers[1]))
		t.Errorf("COPY hello / made different layers on scratch and on busybox:\n%s: %s%s: %s", hello.LayerPaths[0], l1, bb.LayerPaths[1], l2)
	}
	// Count the blobs: each unique layer, two configs and two manifests, once each.
	var index struct {
		Manifests []struct {
			Digest      string
			Annotations map[string]string
		}
	}
	if err := json.Unmarshal(a.Files["index.json"], &index); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{hello.ConfigPath: true, bb.ConfigPath: true}
	for _, p := range append(append([]string{}, hello.LayerPaths...), bb.LayerPaths...) {
		want[p] = true
	}
	var names []string
	for _, m := range index.Manifests {
		want["blobs/sha256/"+strings.TrimPrefix(m.Digest, "sha256:")] = true
		names = append(names, m.Annotations["io.containerd.image.name"])
	}
	if wantNames := []string{"docker.io/" + tagHello, "docker.io/" + tagBusybox}; !slices.Equal(names, wantNames) {
		t.Errorf("index.json names %v, want %v", names, wantNames)
	}
	count := map[string]int{}
	blobs := 0
	for _, name := range a.Order {
		if strings.HasPrefix(name, "blobs/sha256/") && name != "blobs/sha256" {
			count[name]++
			blobs++
		}
	}
	if n := count[hello.LayerPaths[0]]; n != 1 {
		t.Errorf("the shared hello layer is stored %d times", n)
	}
	if blobs != len(want) {
		t.Errorf("%d blobs in the archive, want %d (3 layers, 2 configs, 2 manifests): %v", blobs, len(want), count)
	}
	for p := range want {
		if count[p] != 1 {
			t.Errorf("blob %s stored %d times", p, count[p])
		}
	}
}

// ---- 4. podman and skopeo ------------------------------------------------------------

// TestE2EPodmanSkopeo loads a one-image and a two-image archive with podman (into a
// throwaway store) and checks the names it gives them, and inspects the archives with
// skopeo.
func TestE2EPodmanSkopeo(t *testing.T) {
	imagetest.SkipShort(t)
	requirePodman(t)
	e2eParallel(t)
	requireSkopeo(t)
	dir := t.TempDir()
	ctxDir, dfHello, dfBusybox := e2eAppendContext(t, dir)
	tagHello, tagBusybox := e2eName("hello:scratch"), e2eName("hello:busybox")

	single := filepath.Join(dir, "single.tar")
	idHello := e2eDFBuild(t, buildOptions{contextDir: ctxDir, file: dfHello, tags: []string{tagHello}, output: single})
	two := filepath.Join(dir, "two.tar")
	e2eDFBuild(t, buildOptions{contextDir: ctxDir, file: dfHello, tags: []string{tagHello}, output: two})
	idBusybox := e2eDFBuild(t, buildOptions{contextDir: ctxDir, file: dfBusybox, tags: []string{tagBusybox}, output: two, append: true})

	t.Run("podman-load-single", func(t *testing.T) {
		images := e2ePodmanLoad(t, single)
		want := map[string]string{"docker.io/" + tagHello: idHello}
		e2eCheckPodmanImages(t, images, want)
	})
	t.Run("podman-load-two", func(t *testing.T) {
		images := e2ePodmanLoad(t, two)
		want := map[string]string{"docker.io/" + tagHello: idHello, "docker.io/" + tagBusybox: idBusybox}
		e2eCheckPodmanImages(t, images, want)
	})
	t.Run("skopeo-inspect", func(t *testing.T) {
		ours := e2eReadArchive(t, single).Images[0]
		for _, ref := range []string{"docker-archive:" + single, "oci-archive:" + single} {
			e2eCheckSkopeo(t, ref, ours.Config.RootFS.DiffIDs)
		}
		// A two-image archive needs the image named.
		bb := e2eReadArchive(t, two).Images[1]
		e2eCheckSkopeo(t, "docker-archive:"+two+":docker.io/"+tagBusybox, bb.Config.RootFS.DiffIDs)
	})
}

// e2ePodmanLoad loads an archive into a throwaway podman store and returns the names
// it then lists, mapped to image IDs ("sha256:..."). It tries the default storage
// driver first and vfs if that fails.
func e2ePodmanLoad(t *testing.T, archive string) map[string]string {
	t.Helper()
	var lastErr error
	for _, driver := range []string{"", "vfs"} {
		// podman refuses a runroot longer than 50 characters, and t.TempDir's are.
		root, err := os.MkdirTemp("", "dfb-podman-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(root) })
		for _, d := range []string{"storage", "run", "tmp"} {
			if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
		args := []string{"--root", filepath.Join(root, "storage"), "--runroot", filepath.Join(root, "run"), "--tmpdir", filepath.Join(root, "tmp")}
		if driver != "" {
			args = append(args, "--storage-driver", driver)
		}
		env := []string{"TMPDIR=" + filepath.Join(root, "tmp")}
		t.Cleanup(func() {
			// Unmounts whatever the storage driver mounted, so the directory can go.
			e2eExec(env, nil, "podman", append(args, "system", "reset", "--force")...)
		})
		out, _, err := e2eExec(env, nil, "podman", append(args, "load", "-i", archive)...)
		if err != nil {
			lastErr = err
			t.Logf("podman load with storage driver %q failed: %v", driver, err)
			continue
		}
		graph, _, _ := e2eExec(env, nil, "podman", append(args, "info", "--format", "{{.Store.GraphDriverName}}")...)
		t.Logf("podman load (storage driver %s):\n%s", strings.TrimSpace(graph), out)
		list := e2eMust(t, env, "podman", append(args, "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")...)
		images := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(list), "\n") {
			if name, id, ok := strings.Cut(line, " "); ok {
				if !strings.HasPrefix(id, "sha256:") {
					id = "sha256:" + id
				}
				images[name] = id
			}
		}
		for name := range images {
			if !strings.Contains(out, name) {
				t.Errorf("podman load did not report %s:\n%s", name, out)
			}
		}
		return images
	}
	t.Fatalf("podman load failed with every storage driver: %v", lastErr)
	return nil
}

func e2eCheckPodmanImages(t *testing.T, got, want map[string]string) {
	t.Helper()
	for name, id := range want {
		if got[name] == "" {
			t.Errorf("podman has no image named %s; it lists %v", name, got)
		} else if got[name] != id {
			t.Errorf("podman: %s has ID %s, dfbuild printed %s", name, got[name], id)
		}
	}
	for name := range got {
		if _, ok := want[name]; !ok {
			t.Errorf("podman lists an unexpected image %s (want only %v)", name, want)
		}
	}
}

// e2eCheckSkopeo runs skopeo inspect on ref and checks the platform and the layers.
func e2eCheckSkopeo(t *testing.T, ref string, diffIDs []string) {
	t.Helper()
	out, _, err := e2eExec([]string{"TMPDIR=" + t.TempDir()}, nil, "skopeo", "inspect", ref)
	if err != nil {
		t.Error(err)
		return
	}
	var info struct {
		Architecture string
		Os           string
		Layers       []string
	}
	if err := json.Unmarshal([]byte(out), &info); err != nil {
		t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, out)
	}
	if info.Architecture != runtime.GOARCH || info.Os != "linux" {
		t.Errorf("skopeo inspect %s: platform %s/%s, want linux/%s", ref, info.Os, info.Architecture, runtime.GOARCH)
	}
	if !slices.Equal(info.Layers, diffIDs) {
		t.Errorf("skopeo inspect %s: layers %v, want %v (the layers are stored uncompressed)", ref, info.Layers, diffIDs)
	}
}

// ---- 5. determinism ---------------------------------------------------------------

// TestE2EDeterminism builds the rootfs Dockerfile twice in-process and once as a child
// process under umask 077, with and without SOURCE_DATE_EPOCH, and requires the three
// archives to be byte-identical. It checks the times: with SOURCE_DATE_EPOCH the image
// is created at the epoch and no new layer has a later mtime; without it the image is
// as old as its newest input. It needs no daemon.
func TestE2EDeterminism(t *testing.T) {
	busybox := []byte("#!/bin/sh\necho not busybox\n") // no container runs it here
	if b, err := os.ReadFile("/bin/busybox"); err == nil {
		busybox = b
	}
	fx := e2eMakeRootfsContext(t, busybox)
	df := filepath.Join(fx.dir, "Dockerfile.determinism")
	e2eWrite(t, df, "FROM busybox-rootfs.tar.gz\n"+e2eRootfsSteps, 0o644, fx.newest)
	// The child process is this test binary re-run as the dfbuild command (see
	// TestE2EHelperProcess): no need to compile dfbuild on a busy machine.
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	tag := e2eName("determinism:test")

	for _, tc := range []struct {
		name, epoch string
		created     time.Time
	}{
		{"no-epoch", "", fx.newest},
		{"epoch", "1000000000", time.Date(2001, 9, 9, 1, 46, 40, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("SOURCE_DATE_EPOCH", tc.epoch)
			dir := t.TempDir()
			var files []string
			for i := 1; i <= 2; i++ {
				out := filepath.Join(dir, fmt.Sprintf("in-process-%d.tar", i))
				e2eDFBuild(t, buildOptions{contextDir: fx.dir, file: df, tags: []string{tag}, output: out})
				files = append(files, out)
			}
			child := filepath.Join(dir, "child-umask-077.tar")
			args, _ := json.Marshal([]string{"-f", df, "-t", tag, "-o", child, fx.dir})
			e2eMust(t, []string{"SOURCE_DATE_EPOCH=" + tc.epoch, e2eHelperEnv + "=" + string(args)},
				"sh", "-c", `umask 077 && exec "$@"`, "sh", self, "-test.run=^TestE2EHelperProcess$")
			imagetest.Validate(t, child)
			files = append(files, child)

			sums := make([]string, len(files))
			for i, f := range files {
				sums[i] = e2eFileSHA256(t, f)
			}
			for i := 1; i < len(files); i++ {
				if sums[i] != sums[0] {
					t.Errorf("%s (sha256 %s) differs from %s (sha256 %s):\n%s", filepath.Base(files[i]), sums[i], filepath.Base(files[0]), sums[0],
						e2eArchiveDiff(t, files[0], files[i]))
				}
			}
			t.Logf("all three archives: sha256 %s", sums[0])

			a := e2eReadArchive(t, files[0])
			img := a.Images[0]
			want := tc.created.Format(time.RFC3339)
			if !bytes.Contains(img.ConfigRaw, []byte(`"created":"`+want+`"`)) {
				t.Errorf("the config does not say \"created\":%q:\n%s", want, img.ConfigRaw)
			}
			for i, h := range img.Config.History {
				if h.Created == nil || !h.Created.Equal(tc.created) {
					t.Errorf("history[%d].created is %v, want %s", i, h.Created, want)
				}
			}
			if got := img.Config.RootFS.DiffIDs[0]; got != "sha256:"+fx.tarSHA {
				t.Errorf("the base layer is %s, want the decompressed tarball as it is, sha256:%s", got, fx.tarSHA)
			}
			var late []string
			for i, l := range img.Layers[1:] {
				tree, _ := e2eLayerTree(t, l)
				for p, e := range tree {
					if e.MTime.After(tc.created) {
						late = append(late, fmt.Sprintf("layer %d: %s %s", i+2, p, e.MTime.UTC().Format(time.RFC3339Nano)))
					}
				}
			}
			slices.Sort(late)
			if len(late) > 0 {
				t.Errorf("entries of new layers are newer than the image (%s):\n  %s", want, strings.Join(late, "\n  "))
			}
			if tc.epoch != "" {
				// The context is from 2024: every new entry must have been clamped.
				for i, l := range img.Layers[1:] {
					tree, _ := e2eLayerTree(t, l)
					for p, e := range tree {
						if !e.MTime.Equal(tc.created) {
							t.Errorf("layer %d: %s has mtime %s, want it clamped to %s", i+2, p, e.MTime.UTC(), want)
						}
					}
				}
			}
		})
	}
}

// e2eArchiveDiff explains how two archives differ: which members, and for layers the
// differing lines of their listings.
func e2eArchiveDiff(t *testing.T, a, b string) string {
	t.Helper()
	x, y := e2eReadArchive(t, a), e2eReadArchive(t, b)
	var out []string
	if !slices.Equal(x.Order, y.Order) {
		out = append(out, fmt.Sprintf("members:\n  %s\nvs\n  %s", strings.Join(x.Order, " "), strings.Join(y.Order, " ")))
	}
	for i := range min(len(x.Images), len(y.Images)) {
		ix, iy := x.Images[i], y.Images[i]
		if !bytes.Equal(ix.ConfigRaw, iy.ConfigRaw) {
			out = append(out, fmt.Sprintf("config:\n  %s\nvs\n  %s", ix.ConfigRaw, iy.ConfigRaw))
		}
		for j := range min(len(ix.Layers), len(iy.Layers)) {
			if bytes.Equal(ix.Layers[j], iy.Layers[j]) {
				continue
			}
			lx, _ := imagetest.Listing(bytes.NewReader(ix.Layers[j]))
			ly, _ := imagetest.Listing(bytes.NewReader(iy.Layers[j]))
			out = append(out, fmt.Sprintf("layer %d:\n%s\nvs\n%s", j+1, lx, ly))
		}
	}
	if len(out) == 0 {
		return "(the members agree; the outer tar headers differ)"
	}
	return strings.Join(out, "\n")
}

// e2eHelperEnv carries the command line of the dfbuild child process, as JSON.
const e2eHelperEnv = "DFBUILD_E2E_HELPER_ARGS"

// TestE2EHelperProcess is not a test: when the determinism test re-runs the test
// binary with DFBUILD_E2E_HELPER_ARGS set, it is the dfbuild command (its main).
func TestE2EHelperProcess(t *testing.T) {
	args, ok := os.LookupEnv(e2eHelperEnv)
	if !ok {
		t.Skip("runs only as TestE2EDeterminism's child process")
	}
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", e2eHelperEnv, err)
		os.Exit(2)
	}
	os.Args = append([]string{"dfbuild"}, argv...)
	main() // exits with dfbuild's status on failure
	os.Exit(0)
}
