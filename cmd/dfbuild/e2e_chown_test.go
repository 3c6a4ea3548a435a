//go:build linux

package main

// End-to-end tests of COPY --chown with user and group names, and of symbolic
// --chmod, against the reference builder (semantics.md C23, C24; §5 rows 5 to 8).
// They share the helpers of e2e_test.go and e2e_util_test.go.

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

// The accounts the tests copy into the busybox base, over its /etc/passwd and
// /etc/group. "app" has the primary gid 1002, while the group named "app" is 2000:
// BuildKit gives --chown=app the former, the classic builder the latter. "nobody"
// (65534:65534) has no group of its own name.
const (
	e2eAccountsPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"app:x:1001:1002:app:/home/app:/bin/sh\n" +
		"svc:x:1500:1500::/srv:/bin/false\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	e2eAccountsGroup = "root:x:0:\nstaff:x:50:app\napp:x:2000:\nsvc:x:1500:\nnogroup:x:65534:\n"
)

// e2eChownSteps copy with --chown by name: user:group, a user alone, numeric:name and
// name:numeric, root; into new parents, which take the ids for a directory source
// too (§5 row 7); onto an existing destination directory, which keeps its own; and
// over nested directories that exist already, which take the new ids. The first
// step looks "nobody" up in the base's own /etc/passwd; "app" and "svc" exist only
// once the accounts are copied in: names resolve against the image as it is at
// each COPY.
const e2eChownSteps = `COPY --chown=nobody greeting.txt /srv/before/
COPY accounts/ /etc/
COPY --chown=app:staff greeting.txt /srv/named/sub/
COPY --chown=app greeting.txt /srv/user-only/
COPY --chown=1001:staff motd /srv/mixed/
COPY --chown=app:50 motd /srv/mixed2/
COPY --chown=root tools/run.sh /srv/root/
COPY --chown=nobody tree/nested /opt/nobody/deep/
COPY --chown=svc tree/nested /srv/twice/
COPY --chown=app:staff tree /srv/twice/
COPY --chown=svc:app tree/nested /srv/twice/
`

// TestE2EChownNames builds e2eChownSteps on the busybox base with dfbuild and with
// the reference (BuildKit) on the imported base, and compares history, layers and
// exported filesystems. Then it shows the deliberate differences: an unknown name
// is an error in dfbuild where BuildKit uses 0, and a symbolic --chmod is compared
// only if the reference BuildKit supports it (Engine 20.10's v0.8 does not).
func TestE2EChownNames(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	busybox := e2eBusybox(t)
	builder := e2eFindBuilder(t)
	if builder.kind == "classic" {
		// The classic builder differs here by design (semantics.md §5 rows 5 to 8):
		// it takes the group named like the user, leaves new parents root-owned and
		// rejects --chmod.
		imagetest.Require(t, "a BuildKit reference builder (--chown by name and --chmod follow BuildKit)",
			errors.New("only the classic builder was found"))
	}
	fx := e2eMakeRootfsContext(t, busybox)
	wallClock := fx.newest.Add(24 * time.Hour)
	d := func(p string) string { return filepath.Join(fx.dir, filepath.FromSlash(p)) }
	e2eWrite(t, d("accounts/passwd"), e2eAccountsPasswd, 0o644, e2eCtxTime)
	e2eWrite(t, d("accounts/group"), e2eAccountsGroup, 0o644, e2eCtxTime)
	e2eTouch(t, d("accounts"), e2eCtxTime)

	base := e2eName("busybox:imported-chown")
	e2eRemoveImagesAfter(t, base)
	e2eDocker(t, "import", fx.tar, base)

	t.Run("names", func(t *testing.T) {
		e2eDiffCase(t, builder, fx, base, wallClock, "chown-names", e2eChownSteps, e2eChownKnown(builder))
	})
	t.Run("unknown-name", func(t *testing.T) {
		e2eUnknownName(t, builder, fx, base)
	})
	t.Run("symbolic-chmod", func(t *testing.T) {
		e2eSymbolicChmod(t, builder, fx, base, wallClock)
	})
}

// e2eChownKnown accepts one difference from the BuildKit in Docker Engine 20.10
// (v0.8): it leaves --chown and --chmod out of the history's created_by, which
// current BuildKit writes, as dfbuild does (dockerfile2llb/convert_copy.go).
func e2eChownKnown(builder e2eBuilder) e2eKnown {
	if !builder.oldBuildKit() {
		return nil
	}
	createdBy := regexp.MustCompile(`^history\[\d+\]\.created_by: "(.*)" \(dfbuild\) vs "(.*)" \(reference\)$`)
	flags := regexp.MustCompile(` --ch(own|mod)=\S+`)
	return func(d string) string {
		if m := createdBy.FindStringSubmatch(d); m != nil && flags.ReplaceAllString(m[1], "") == m[2] {
			return "BuildKit v0.8 leaves --chown and --chmod out of created_by; current BuildKit writes them, like dfbuild"
		}
		return ""
	}
}

// e2eUnknownName: for a name the image's /etc/passwd lacks, BuildKit silently uses
// uid 0 (semantics.md §5 row 6) while dfbuild stops with an error naming the name
// and the file, as Docker's reference promises. The reference's result is logged,
// not asserted: it is BuildKit's to change.
func e2eUnknownName(t *testing.T, builder e2eBuilder, fx *e2eRootfsCtx, base string) {
	const steps = "COPY --chown=ghost:staff greeting.txt /srv/ghost/\n"
	refDockerfile := filepath.Join(fx.dir, "Dockerfile.unknown-reference")
	e2eWrite(t, refDockerfile, "FROM "+base+"\nCOPY accounts/ /etc/\n"+steps, 0o644, fx.newest)
	ref := e2eName("unknown:reference")
	if err := e2eTryBuild(t, builder, fx.dir, refDockerfile, ref); err != nil {
		t.Logf("reference: the build failed: %v", err)
	} else {
		saved := e2eDockerSave(t, ref)
		tree, _ := e2eLayerTree(t, saved.Layers[len(saved.Layers)-1])
		if e, ok := tree["/srv/ghost/greeting.txt"]; ok {
			t.Logf("reference: --chown=ghost:staff gave %d:%d (BuildKit falls back to uid 0 for an unknown user)", e.UID, e.GID)
		}
	}

	df := filepath.Join(fx.dir, "Dockerfile.unknown")
	e2eWrite(t, df, "FROM busybox-rootfs.tar\nCOPY accounts/ /etc/\n"+steps, 0o644, fx.newest)
	var stdout, stderr bytes.Buffer
	err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr,
		buildOptions{contextDir: fx.dir, file: df, output: filepath.Join(t.TempDir(), "unknown.tar")})
	const want = `COPY: --chown=ghost:staff: no user "ghost" in the image's /etc/passwd`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("dfbuild with an unknown --chown user: %v\nwant an error containing: %s", err, want)
	}
}

// e2eSymbolicChmod first asks the reference whether it applies a symbolic --chmod
// (Dockerfile 1.14 and later). BuildKit v0.8, in Docker Engine 20.10, takes the
// value for a failed octal parse and copies the source mode unchanged; symbolic
// modes are then covered by interp's golden case copy-chmod-symbolic.txtar and its
// table tests, not here. A reference that applies them is compared like the rest.
func e2eSymbolicChmod(t *testing.T, builder e2eBuilder, fx *e2eRootfsCtx, base string, wallClock time.Time) {
	probe := filepath.Join(fx.dir, "Dockerfile.chmod-probe")
	e2eWrite(t, probe, "FROM "+base+"\nCOPY --chmod=go-r,u+x motd /probe/\n", 0o644, fx.newest)
	ref := e2eName("chmod-probe:reference")
	if err := e2eTryBuild(t, builder, fx.dir, probe, ref); err != nil {
		// Dockerfile frontends 1.10 to 1.13 reject a symbolic value (moby/buildkit#5322).
		t.Logf("the reference rejects a symbolic --chmod (%v); symbolic --chmod is tested by interp's golden cases instead", err)
		return
	}
	saved := e2eDockerSave(t, ref)
	tree, _ := e2eLayerTree(t, saved.Layers[len(saved.Layers)-1])
	got, ok := tree["/probe/motd"]
	if !ok {
		t.Fatalf("the probe image has no /probe/motd")
	}
	src, err := os.Stat(filepath.Join(fx.dir, "motd"))
	if err != nil {
		t.Fatal(err)
	}
	switch got.Mode {
	case 0o700: // 0600 with go-r,u+x
	case int64(src.Mode().Perm()):
		t.Logf("the reference (Docker Engine %s) ignores a symbolic --chmod and keeps the source mode %04o; "+
			"symbolic --chmod is tested by interp's golden cases instead", builder.engine, got.Mode)
		return
	default:
		t.Fatalf("the probe: --chmod=go-r,u+x on a %04o file gave %04o in the reference", src.Mode().Perm(), got.Mode)
	}
	e2eDiffCase(t, builder, fx, base, wallClock, "chmod-symbolic", `COPY --chmod=u=rwX,go=rX tree /srv/docs/
COPY --chmod=a-w tree /srv/docs/
COPY --chmod=g+s,+t motd /srv/new/parents/
COPY --chmod=a+X tree/README tree/tool /srv/files/
COPY --chmod=g=u,o-rwx tree/nested /srv/gu/
`, e2eChownKnown(builder))
}

// e2eTryBuild is e2eBuilder.build for a build that may fail: it returns the error.
func e2eTryBuild(t *testing.T, b e2eBuilder, ctxDir, dockerfile, tag string) error {
	t.Helper()
	e2eRemoveImagesAfter(t, tag)
	args := append(append([]string{}, b.argv[1:]...), "-f", dockerfile, "-t", tag, ctxDir)
	_, _, err := e2eExec(b.env, nil, b.argv[0], args...)
	return err
}
