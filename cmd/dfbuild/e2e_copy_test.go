//go:build linux

package main

// The COPY/ADD differential suite (issue #4). Each file of testdata/copy is one case:
// a Dockerfile, a build context (files, plus directives that make what a text file
// cannot hold: symlink chains, dangling links, hard links, sparse files, sockets,
// modes, owners, xattrs, long and unicode names, deep trees, archives), and
// directives saying which rules of semantics.md §1 and which BuildKit integration
// tests it covers (see cpCase in e2e_copy_util_test.go).
//
// TestE2ECopy builds every case twice, with DOCKER_BUILDKIT=1 /usr/bin/docker build
// (Engine 20.10's BuildKit v0.8: see README, "The reference") on `docker import` of a
// busybox root filesystem tarball, and with dfbuild (this test binary run again as
// dfbuild, the base given as --build-context busybox=TARBALL). It compares:
//
//   - the outcome: both build, or both fail;
//   - the filesystems `docker export` gives for both images: path, type, mode with
//     special bits, uid, gid, size, content digest (streamed), link target, xattrs,
//     and the mtime wherever Docker keeps it (e2eWallClockPolicy excuses the
//     directories BuildKit stamps with its clock, README differences 3 and 8);
//   - the layers of both images one by one, with the same fields;
//   - the history (created_by, comment, empty_layer) and the image config.
//
// The builds run in parallel, the reference with --no-cache (BuildKit's cache keys
// leave mtimes out). The 3 GiB case is a "flatten" case: its context is kept between
// runs (cpSharedContext), the reference is built with the cache and not saved, and
// dfbuild's image is read from its archive instead of being loaded and exported, so
// that docker copies 3 GiB as few times as possible; its digests are streamed.
//
// A case that differs fails, unless it lists the difference by its ID with "differs"
// and the difference is one of cpDifferences (README, "Differences from docker build"); a listed
// difference that does not occur fails too. Cases whose feature Engine 20.10's BuildKit lacks (COPY --link,
// --parents, --exclude, here-documents, symbolic --chmod...) are marked
// "engine-lacks": dfbuild's result is checked against the case's want/listing and
// want/history instead, written from current BuildKit's documented behaviour.
//
// Run it alone with
//
//	go test ./cmd/dfbuild -run 'TestE2ECopy$' -v
//	go test ./cmd/dfbuild -run 'TestE2ECopy$' -args -copy.case='^add-' -copy.results=/tmp/r.md
//
// -copy.results writes the table of results (testdata/copy/RESULTS.md is made with
// it); -copy.update rewrites the want/ sections of engine-lacks cases from dfbuild's
// results, keeping "*" mtimes (review the diff: the expectations are BuildKit's, not
// dfbuild's).

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

var (
	cpResultsFlag = flag.String("copy.results", "", "TestE2ECopy: write the table of results (markdown) to this file")
	cpUpdateFlag  = flag.Bool("copy.update", false, "TestE2ECopy: rewrite the want/ sections of engine-lacks cases from dfbuild's results")
	cpCaseFlag    = flag.String("copy.case", "", "TestE2ECopy: run only the cases whose name matches this regular expression")
)

// cpDir holds the cases, relative to this package's directory.
var cpDir = filepath.Join("..", "..", "testdata", "copy")

// ---- the documented differences -------------------------------------------------------

// cpDiff is one way the two images differ.
type cpDiff struct {
	Where  string // outcome, export, layer N, history, config
	Path   string // file path, history index or config key
	Field  string // presence, type, mode, owner, size, content, link, xattrs, mtime, created_by, ...
	Ours   string
	Theirs string
	O, T   *e2eEntry // the entries, for a tree difference
	Lower  *e2eEntry // for a layer difference: the path in dfbuild's image below that layer
}

func (d cpDiff) String() string {
	loc := d.Where
	if d.Path != "" {
		loc += " " + d.Path
	}
	return fmt.Sprintf("%s: %s: %s (dfbuild) vs %s (reference)", loc, d.Field, d.Ours, d.Theirs)
}

// cpDifference is a deliberate difference from the reference engine. README is its
// item in the README's "Differences from docker build".
// OldBuildKit marks a difference from the BuildKit v0.8 of Engine 20.10 only: dfbuild
// follows current BuildKit there, so with a newer reference it must not occur. Match
// says whether a difference is this one; all holds every difference of the case.
type cpDifference struct {
	ID          string
	README      string
	OldBuildKit bool
	Summary     string
	Match       func(c *cpCase, d cpDiff, all []cpDiff) bool
}

var (
	cpOctalChmod = regexp.MustCompile(`--chmod=([0-7]{1,4})\b`)
	cpFlagsInBy  = regexp.MustCompile(` --ch(own|mod)=\S+`)
	cpDotDest    = regexp.MustCompile(`(?m)^\s*(?:COPY|ADD)\b.*\s(\S+)/\.\s*$`)
)

// cpInTree reports whether a tree difference is about one of the trees (layers or
// export).
func cpInTree(d cpDiff) bool { return d.Where == "export" || strings.HasPrefix(d.Where, "layer") }

// cpLostChange is a file of a layer that changed content but kept its size and
// mtime: what Engine 20.10's layer differ cannot see (D14e).
func cpLostChange(d cpDiff) bool {
	return strings.HasPrefix(d.Where, "layer") && d.Field == "presence" && d.T == nil && d.O != nil && d.O.Type == "f" &&
		d.Lower != nil && d.Lower.Type == "f" && d.Lower.Size == d.O.Size && d.Lower.MTime.Equal(d.O.MTime) && d.Lower.SHA != d.O.SHA
}

// cpDifferences are the deliberate differences a case may list, named after the item
// of the README's "Differences from docker build" that explains them (D14a is item 14,
// point a). Renumber them together with the README.
var cpDifferences = []cpDifference{
	{ID: "D4", README: "4", Summary: "several sources with a file among them into a destination that is not a directory: dfbuild refuses, BuildKit keeps the last file",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			return d.Where == "outcome" && d.Theirs == "ok" && strings.Contains(d.Ours, "when COPY has several sources, the destination must end with a /")
		}},
	{ID: "D6", README: "6", Summary: "an unknown --chown name, a missing /etc/passwd or /etc/group, or \"user:\" is an error in dfbuild; BuildKit falls back to 0",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			return d.Where == "outcome" && d.Theirs == "ok" && strings.Contains(d.Ours, "--chown=")
		}},
	{ID: "D10", README: "10", OldBuildKit: true, Summary: ".dockerignore: BuildKit v0.8 ignores exceptions with wildcards under an excluded directory, and sends an empty directory for an exception that brings nothing back",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			return cpInTree(d) && d.Field == "presence"
		}},
	{ID: "D11", README: "11", OldBuildKit: true, Summary: "history text follows current BuildKit: COPY and ADD show --chown and --chmod, EXPOSE is a list; BuildKit v0.8 leaves the flags out and prints EXPOSE as a Go map",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			if d.Where != "history" || d.Field != "created_by" {
				return false
			}
			if cpFlagsInBy.ReplaceAllString(d.Ours, "") == d.Theirs {
				return true
			}
			ours, ok1 := strings.CutPrefix(d.Ours, "EXPOSE [")
			theirs, ok2 := strings.CutPrefix(d.Theirs, "EXPOSE map[")
			return ok1 && ok2 && strings.TrimSuffix(ours, "]") == strings.ReplaceAll(strings.TrimSuffix(theirs, "]"), ":{}", "")
		}},
	{ID: "D18", README: "18", Summary: "a file dated before 1970 keeps its date in dfbuild's layer, but docker load sets it to 1970-01-01 when it unpacks the layer; the engine's own builds keep it",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			return d.Where == "export" && d.Field == "mtime" && d.O != nil && d.T != nil &&
				d.O.MTime.Equal(time.Unix(0, 0)) && d.T.MTime.Before(time.Unix(0, 0))
		}},
	{ID: "D14a", README: "14a", OldBuildKit: true, Summary: "BuildKit v0.8 makes the parent directories COPY --chmod creates 0755; current BuildKit gives them the --chmod mode (testCopyChmod), like dfbuild",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			if !cpInTree(d) || d.Field != "mode" || d.T == nil || d.T.Type != "d" || d.T.Mode != 0o755 {
				return false
			}
			for _, m := range cpOctalChmod.FindAllStringSubmatch(c.Dockerfile, -1) {
				if d.Ours == fmt.Sprintf("%04s", m[1]) {
					return true
				}
			}
			return false
		}},
	{ID: "D14b", README: "14b", OldBuildKit: true, Summary: "BuildKit v0.8 drops the setuid, setgid and sticky bits of an octal --chmod; current BuildKit (fsutil copyFileInfo) keeps them, like dfbuild",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			return cpInTree(d) && d.Field == "mode" && d.O != nil && d.T != nil && d.O.Mode&0o7000 != 0 && d.T.Mode == d.O.Mode&0o777 &&
				strings.Contains(c.Dockerfile, fmt.Sprintf("--chmod=%04o", d.O.Mode))
		}},
	{ID: "D14c", README: "14c", OldBuildKit: true, Summary: "BuildKit v0.8 takes a destination ending in \"/.\" for a file name; current BuildKit (NormalizePath keeps the slash) for a directory, like dfbuild",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			if !cpInTree(d) {
				return false
			}
			for _, m := range cpDotDest.FindAllStringSubmatch(c.Dockerfile, -1) {
				if dir := path.Clean("/" + m[1]); d.Path == dir || strings.HasPrefix(d.Path, dir+"/") {
					return true
				}
			}
			return false
		}},
	{ID: "D14d", README: "14d", OldBuildKit: true, Summary: "BuildKit v0.8 drops FIFOs and makes device nodes empty regular files (its fsutil passed Go's file mode to mknod); current fsutil recreates both (commit 331e532), like dfbuild",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			return cpInTree(d) && d.O != nil && (d.O.Type == "p" || d.O.Type == "c" || d.O.Type == "b")
		}},
	{ID: "D14e", README: "14e", OldBuildKit: true, Summary: "Engine 20.10's layer differ takes a file whose size and mtime did not change for unchanged, so docker save loses its new contents; current BuildKit compares the contents then (overlay sameDirent), like dfbuild",
		Match: func(c *cpCase, d cpDiff, all []cpDiff) bool {
			if cpLostChange(d) {
				return true
			}
			// The parents of such a file, which come with it in dfbuild's layer.
			if !strings.HasPrefix(d.Where, "layer") || d.Field != "presence" || d.T != nil || d.O == nil || d.O.Type != "d" {
				return false
			}
			for _, x := range all {
				if x.Where == d.Where && cpLostChange(x) && strings.HasPrefix(x.Path, d.Path+"/") {
					return true
				}
			}
			return false
		}},
	{ID: "D14f", README: "14f", OldBuildKit: true, Summary: "BuildKit v0.8 ignores ADD --chown for what it extracts from a local archive (the tar's owners stay); current BuildKit applies it (testDockerfileAddChownArchive), like dfbuild",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			if !cpInTree(d) || d.Field != "owner" {
				return false
			}
			for _, m := range cpAddChown.FindAllStringSubmatch(c.Dockerfile, -1) {
				if d.Ours == m[1] {
					return true
				}
			}
			return false
		}},
	{ID: "D14g", README: "14g", OldBuildKit: true, Summary: "BuildKit v0.8 does not expand variables in --chmod (the copy keeps the source's mode); current BuildKit does (testCopyChmod's ${mode}), like dfbuild",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			if !cpInTree(d) || d.Field != "mode" || !cpChmodVar.MatchString(c.Dockerfile) {
				return false
			}
			for _, line := range cpArgEnvLine.FindAllString(c.Dockerfile, -1) {
				for _, v := range cpOctalValue.FindAllStringSubmatch(line, -1) {
					if d.Ours == fmt.Sprintf("%04s", v[1]) {
						return true
					}
				}
			}
			return false
		}},
	{ID: "D14h", README: "14h", OldBuildKit: true, Summary: "BuildKit v0.8 ignores --chmod on ADD from a URL (the file stays 0600); current BuildKit applies it (testAddURLChmod), like dfbuild",
		Match: func(c *cpCase, d cpDiff, _ []cpDiff) bool {
			if !cpInTree(d) || d.Field != "mode" || d.T == nil || d.T.Mode != 0o600 || !cpAddURLChmod.MatchString(c.Dockerfile) {
				return false
			}
			for _, m := range cpOctalChmod.FindAllStringSubmatch(c.Dockerfile, -1) {
				if d.Ours == fmt.Sprintf("%04s", m[1]) {
					return true
				}
			}
			return false
		}},
}

var (
	cpAddURLChmod = regexp.MustCompile(`(?m)^\s*ADD\s.*--chmod=.*\s(https?://|\{URL\})`)
	cpAddChown    = regexp.MustCompile(`(?m)^\s*ADD\s.*--chown=(\d+:\d+)`)
	cpChmodVar    = regexp.MustCompile(`--chmod=\$`)
	cpArgEnvLine  = regexp.MustCompile(`(?m)^\s*(?:ARG|ENV)\s.*$`)
	cpOctalValue  = regexp.MustCompile(`[= ]([0-7]{3,4})\b`)
)

func cpDifferenceByID(id string) *cpDifference {
	for i := range cpDifferences {
		if cpDifferences[i].ID == id {
			return &cpDifferences[i]
		}
	}
	return nil
}

// cpBuildKitTests are BuildKit's integration tests of COPY and ADD (semantics.md §4.2)
// whose subject needs no RUN: RUN lines that only prepare sources or check results
// are replaced by contexts and by comparing the images, and the tests' HTTP servers
// by one the test starts. Left out: the build cache (testCopyWildcardCache, and the
// HEAD requests of testDockerfileADDFromURL) and session keys
// (testLocalUnicodeSharedKey, testLocalCustomSessionID).
var cpBuildKitTests = []string{
	"testDockerfileCopyFromArgs", "testEmptyDestDir", "testPreserveDestDirSlash", "testCopyLinkDotDestDir",
	"testCopyLinkEmptyDestDir", "testCopyChownExistingDir", "testEmptyWildcard", "testCopyChownCreateDest",
	"testCopyThroughSymlinkContext", "testCopyThroughSymlinkMultiStage", "testCopySocket", "testCopyFollowAllSymlinks",
	"testCopySymlinks", "testCopyChown", "testCopyChmod", "testCopyInvalidChmod", "testCopyOverrideFiles",
	"testCopyVarSubstitution", "testCopyWildcards", "testCopyRelative", "testCopyUnicodePath", "testChmodNonOctal",
	"testDockerfileAddArchive", "testDockerfileAddArchiveWithImpliedParentDir", "testDockerfileAddArchiveThroughAbsoluteSymlink",
	"testDockerfileAddChownArchive", "testDockerfileAddArchiveWildcard", "testDockerfileAddChownExpand", "testAddInvalidChmod",
	"testDockerfileADDFromURL", "testAddURLChmod", "testAddChecksum",
	"testCopyParents", "testCopyRelativeParents", "testCopyParentsMissingDirectory",
	"testExcludedFilesOnCopy",
	"testCopyHeredoc", "testCopyHeredocSpecialSymbols", "testHeredocIndent", "testHeredocVarSubstitution",
	"testDockerignore", "testDockerignoreInvalid", "testDockerignoreOverride",
	"testSymlinkDestination", "testContextChangeDirToFile", "testWorkdirCopyIgnoreRelative",
	"testMultiStageImplicitFrom", "testMultiStageCaseInsensitive", "testOutOfOrderStage", "testExportedHistory",
}

// cpRules are the rules of semantics.md §1, C1 to C37.
func cpRules() []string {
	var r []string
	for i := 1; i <= 37; i++ {
		r = append(r, fmt.Sprintf("C%d", i))
	}
	return r
}

// ---- the well-formedness of the suite (no docker) ----------------------------------------------

// TestCopySuiteCases checks the cases of testdata/copy without building them: they
// parse, list known rules, BuildKit tests and differences, have names docker accepts,
// and together cover every rule of semantics.md §1 and every BuildKit test of
// cpBuildKitTests, in at least 80 cases.
func TestCopySuiteCases(t *testing.T) {
	cases, err := cpLoadCases(cpDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 80 {
		t.Errorf("%d cases, want at least 80", len(cases))
	}
	rules, tests := map[string][]string{}, map[string][]string{}
	validName := regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)
	for _, c := range cases {
		if !validName.MatchString(c.Name) {
			t.Errorf("%s: the name must be lower-case words joined by -", c.File)
		}
		if len(c.Rules) == 0 {
			t.Errorf("%s: no rules directive", c.File)
		}
		if len(c.Desc) == 0 {
			t.Errorf("%s: no description", c.File)
		}
		for _, r := range c.Rules {
			if !slices.Contains(cpRules(), r) {
				t.Errorf("%s: unknown rule %s", c.File, r)
			}
			rules[r] = append(rules[r], c.Name)
		}
		for _, b := range c.BuildKit {
			if !slices.Contains(cpBuildKitTests, b) {
				t.Errorf("%s: %s is not in cpBuildKitTests", c.File, b)
			}
			tests[b] = append(tests[b], c.Name)
		}
		for _, id := range c.Differs {
			if cpDifferenceByID(id) == nil {
				t.Errorf("%s: unknown difference %s", c.File, id)
			}
		}
		if c.WantListing != nil {
			for _, line := range strings.Split(*c.WantListing, "\n") {
				if err := cpCheckListingLine(line); err != nil {
					t.Errorf("%s: want/listing: %v", c.File, err)
				}
			}
		}
		if c.EngineLacks != "" && len(c.Differs) > 0 {
			t.Errorf("%s: an engine-lacks case is not compared with the engine, so it lists no differences", c.File)
		}
	}
	for _, r := range cpRules() {
		if len(rules[r]) == 0 {
			t.Errorf("no case covers rule %s of semantics.md §1", r)
		}
	}
	for _, b := range cpBuildKitTests {
		if len(tests[b]) == 0 {
			t.Errorf("no case reproduces BuildKit's %s", b)
		}
	}
}

// cpCheckListingLine checks a hand-written listing line: its fields, and the size of
// quoted contents.
func cpCheckListingLine(line string) error {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "removed /") {
		return nil
	}
	f := strings.SplitN(line, " ", 7)
	if len(f) < 6 || !strings.HasPrefix(f[5], "/") {
		return fmt.Errorf("%q: want TYPE MODE UID:GID SIZE MTIME /PATH ...", line)
	}
	if f[0] == "d" && f[4] != "-" {
		return fmt.Errorf("%q: directory mtimes are not compared: write -", line)
	}
	if f[0] == "f" && len(f) == 7 && strings.HasPrefix(f[6], "\"") {
		q := f[6]
		if i := strings.LastIndex(q, "\" xattrs:"); i >= 0 {
			q = q[:i+1]
		}
		content, err := strconv.Unquote(q)
		if err != nil {
			return fmt.Errorf("%q: contents: %v", line, err)
		}
		if fmt.Sprint(len(content)) != f[3] {
			return fmt.Errorf("%q: the contents are %d bytes, the size says %s", line, len(content), f[3])
		}
	}
	return nil
}

// ---- the differential test --------------------------------------------------------------

// cpEnv is what every case's build needs.
type cpEnv struct {
	builder    e2eBuilder
	base       string // the imported busybox image
	rootfs     string // the busybox tarball, for dfbuild's --build-context
	baseDigest string
	baseTree   *e2eTree
	self       string // this test binary, run as dfbuild
	wallClock  time.Time
}

// cpRun is one case's builds and what was read from them.
type cpRun struct {
	c            *cpCase
	dir, ctx     string
	dfRef, dfOur string
	refTag       string
	ourTag       string
	out          string // dfbuild's archive
	url          string // the case's HTTP server

	refErr, ourErr   error
	refImg, ourImg   *cpImage
	refFS, ourFS     *e2eTree
	refInspect       map[string]any // the reference's config, in flatten mode
	setupErr         error
	refBuilt         bool // the images to remove
	ourLoaded        bool
	refTime, ourTime time.Duration
	steps            []string // how long each step took, for the log
	stepsMu          sync.Mutex
}

// step runs f and notes how long it took.
func (r *cpRun) step(name string, f func() error) error {
	t0 := time.Now()
	err := f()
	r.stepsMu.Lock()
	r.steps = append(r.steps, fmt.Sprintf("%s %s", name, time.Since(t0).Round(10*time.Millisecond)))
	r.stepsMu.Unlock()
	return err
}

// cpResult is a case's verdict, for the summary.
type cpResult struct {
	Name, Kind string // identical, differs, engine-lacks, failing
	IDs        []string
	Reason     string
	c          *cpCase
}

var cpFromBusybox = regexp.MustCompile(`(?im)^(\s*FROM\s+(?:--\S+\s+)*)busybox(\s|$)`)
var cpFromFlagBusybox = regexp.MustCompile(`(?i)--from=busybox(\s)`)

// TestE2ECopy runs the cases of testdata/copy; see the top of this file.
func TestE2ECopy(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	busybox := e2eBusybox(t)
	builder := e2eFindBuilder(t)
	if builder.kind == "classic" {
		imagetest.Require(t, "a BuildKit reference builder (the suite compares with BuildKit)", errors.New("only the classic builder was found"))
	}
	cases, err := cpLoadCases(cpDir)
	if err != nil {
		t.Fatal(err)
	}
	if *cpCaseFlag != "" {
		re, err := regexp.Compile(*cpCaseFlag)
		if err != nil {
			t.Fatal(err)
		}
		cases = slices.DeleteFunc(cases, func(c *cpCase) bool { return !re.MatchString(c.Name) })
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	raw := e2eRootfsTar(busybox)
	env := &cpEnv{builder: builder, base: e2eName("copy-busybox:imported"), rootfs: filepath.Join(root, "busybox-rootfs.tar"),
		baseDigest: "sha256:" + e2eSHA256(raw), self: self, wallClock: e2eCtxTime.Add(48 * time.Hour)}
	e2eWrite(t, env.rootfs, string(raw), 0o644, e2eCtxTime)
	if env.baseTree, err = e2eReadTree(bytes.NewReader(raw)); err != nil {
		t.Fatal(err)
	}
	e2eRemoveImagesAfter(t, env.base)
	e2eDocker(t, "import", env.rootfs, env.base)

	// The contexts, in this goroutine (they use t), under a fixed umask for the
	// directories made on the way; then the builds, in parallel.
	runs := make([]*cpRun, len(cases))
	func() {
		defer syscall.Umask(syscall.Umask(0o022))
		for i, c := range cases {
			dir := filepath.Join(root, c.Name)
			r := &cpRun{c: c, dir: dir, refTag: e2eName("copy-" + c.Name + ":reference"), ourTag: e2eName("copy-" + c.Name + ":dfbuild"),
				out: filepath.Join(dir, "image.tar")}
			if c.Flatten {
				r.ctx = cpSharedContext(t, c)
			} else {
				r.ctx = cpWriteContext(t, c, dir)
			}
			r.dfRef, r.dfOur = filepath.Join(dir, "reference", "Dockerfile"), filepath.Join(dir, "dfbuild", "Dockerfile")
			df := c.Dockerfile
			if c.HTTP != nil {
				r.url = cpServe(t, c)
				df = strings.ReplaceAll(df, "{URL}", r.url)
			}
			ref := cpFromBusybox.ReplaceAllString(df, "${1}"+env.base+"${2}")
			ref = cpFromFlagBusybox.ReplaceAllString(ref, "--from="+env.base+"${1}")
			e2eWrite(t, r.dfRef, ref, 0o644, e2eCtxTime)
			e2eWrite(t, r.dfOur, df, 0o644, e2eCtxTime)
			if c.Ignore != nil {
				e2eWrite(t, r.dfRef+".dockerignore", *c.Ignore, 0o644, e2eCtxTime)
				e2eWrite(t, r.dfOur+".dockerignore", *c.Ignore, 0o644, e2eCtxTime)
			}
			runs[i] = r
		}
	}()

	// The images go when the test ends, whatever ends it: registered before the
	// builds, this runs after the workers are done (cpBuild reports through r, never t).
	t.Cleanup(func() {
		var tags []string
		for _, r := range runs {
			if r.refBuilt {
				tags = append(tags, r.refTag)
			}
			if r.ourLoaded {
				tags = append(tags, r.ourTag)
			}
		}
		if len(tags) > 0 {
			if _, _, err := e2eExec(nil, nil, "docker", append([]string{"rmi", "-f"}, tags...)...); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	})

	start := time.Now()
	order := slices.Clone(runs)
	// The slowest first: the flatten cases hold gigabytes.
	sort.SliceStable(order, func(i, j int) bool { return order[i].c.Flatten && !order[j].c.Flatten })
	work := make(chan *cpRun)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var lastSmall time.Duration // when the last case that is not a flatten case was done
	for range max(6, 3*runtime.GOMAXPROCS(0)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := range work {
				cpBuild(r, env)
				if !r.c.Flatten {
					mu.Lock()
					lastSmall = max(lastSmall, time.Since(start))
					mu.Unlock()
				}
			}
		}()
	}
	for _, r := range order {
		work <- r
	}
	close(work)
	wg.Wait()
	t.Logf("built %d cases in %s (all but the flatten cases in %s)", len(runs), time.Since(start).Round(time.Second), lastSmall.Round(time.Second))

	results := make([]cpResult, len(runs))
	for i, r := range runs {
		t.Run(r.c.Name, func(t *testing.T) {
			results[i] = cpJudge(t, r, env)
		})
	}
	cpSummary(t, results, builder)
}

// cpServe starts an HTTP server on 127.0.0.1 for the case's http/ sections, which the
// engine's BuildKit (in dockerd, on this host's network) and dfbuild both reach, and
// returns its URL. It serves GET and HEAD, with Last-Modified where the case sets it.
func cpServe(t *testing.T, c *cpCase) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, ok := c.HTTP[req.URL.Path]
		if !ok {
			http.NotFound(w, req)
			return
		}
		http.ServeContent(w, req, "", c.LastMod[req.URL.Path], bytes.NewReader(body))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// cpSharedContext makes the build context of a flatten case (gigabytes, sparse on
// disk) in the temporary directory, named after the case's contents, and keeps it
// for later runs: the engine keys what it received of a context by the directory's
// path, so an unchanged context is not sent again, and its build cache, keyed by
// contents, gives the same image without copying 3 GiB again. A run that finds the
// directory complete uses it; concurrent runs each make one and rename it into
// place, and the loser uses the winner's.
func cpSharedContext(t *testing.T, c *cpCase) string {
	t.Helper()
	data, err := os.ReadFile(c.File)
	if err != nil {
		t.Fatal(err)
	}
	final := filepath.Join(os.TempDir(), fmt.Sprintf("dfbuild-e2e-copy-%s-%s", c.Name, e2eSHA256(data)[:12]))
	complete := func() bool { _, err := os.Stat(filepath.Join(final, ".complete")); return err == nil }
	if !complete() {
		os.RemoveAll(final) // what an interrupted run left
		tmp, err := os.MkdirTemp(os.TempDir(), "dfbuild-e2e-copy-tmp-")
		if err != nil {
			t.Fatal(err)
		}
		cpWriteContext(t, c, tmp)
		if err := os.WriteFile(filepath.Join(tmp, ".complete"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, final); err != nil {
			os.RemoveAll(tmp)
			if !complete() {
				t.Fatalf("making %s: %v", final, err)
			}
		}
	}
	t.Logf("%s: the build context is kept in %s for later runs", c.Name, final)
	return filepath.Join(final, "ctx")
}

// cpBuild builds a case with the reference (unless the engine lacks its feature) and
// with dfbuild, and reads both images. It runs on a worker goroutine: errors are
// recorded, never reported through t.
func cpBuild(r *cpRun, env *cpEnv) {
	c := r.c
	var wg sync.WaitGroup
	if c.EngineLacks == "" {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t0 := time.Now()
			defer func() { r.refTime = time.Since(t0) }()
			b := env.builder
			// No cache: BuildKit's cache keys leave mtimes out, so a result cached by an
			// earlier run could carry another run's times. A flatten case's context never
			// changes (cpSharedContext), and its gigabytes are worth reusing.
			args := append([]string{}, b.argv[1:]...)
			if !c.Flatten {
				args = append(args, "--no-cache")
			}
			args = append(args, "-f", r.dfRef, "-t", r.refTag, r.ctx)
			if err := r.step("docker-build", func() error { _, _, err := cpCommand(b.env, b.argv[0], args...); return err }); err != nil {
				r.refErr = err
				return
			}
			r.refBuilt = true
			err := r.step("reference-config", func() error {
				if c.Flatten {
					// docker save would copy gigabytes: the config from docker inspect.
					out, _, err := cpCommand(nil, "docker", "image", "inspect", "--format", "{{json .Config}}", r.refTag)
					if err == nil {
						err = json.Unmarshal([]byte(out), &r.refInspect)
					}
					return err
				}
				saved := filepath.Join(r.dir, "reference.tar")
				err := e2eEngineSave(r.refTag, saved)
				if err == nil {
					r.refImg, err = cpReadArchive(saved)
					os.Remove(saved)
				}
				return err
			})
			if err == nil {
				err = r.step("reference-export", func() (err error) {
					r.refFS, err = e2eExportTree(r.refTag, fmt.Sprintf("dfbuild-e2e-%d-copy-%s-ref", os.Getpid(), c.Name))
					return err
				})
			}
			if err != nil {
				r.setupErr = err
			}
		}()
	}
	t0 := time.Now()
	args, _ := json.Marshal([]string{"-f", r.dfOur, "-t", r.ourTag, "-o", r.out, "--progress=plain",
		"--build-context", "busybox=" + env.rootfs, r.ctx})
	var stderr string
	err := r.step("dfbuild", func() (err error) {
		_, stderr, err = cpCommand([]string{"SOURCE_DATE_EPOCH=", e2eHelperEnv + "=" + string(args)},
			env.self, "-test.run=^TestE2EHelperProcess$")
		return err
	})
	if err != nil {
		r.ourErr = cpDFBuildError(stderr, r)
	} else {
		err = r.step("dfbuild-read", func() (err error) {
			r.ourImg, err = cpReadArchive(r.out)
			return err
		})
		if err == nil && c.EngineLacks == "" && !c.Flatten {
			err = r.step("dfbuild-load", func() error { _, err := e2eEngineLoad(r.out); return err })
			if err == nil {
				r.ourLoaded = true
				err = r.step("dfbuild-export", func() (err error) {
					r.ourFS, err = e2eExportTree(r.ourTag, fmt.Sprintf("dfbuild-e2e-%d-copy-%s-dfbuild", os.Getpid(), c.Name))
					return err
				})
			}
		}
		if err != nil {
			r.setupErr = err
		}
	}
	r.ourTime = time.Since(t0)
	wg.Wait()
}

// cpDFBuildError is dfbuild's error message from its standard error: the lines
// starting with "dfbuild:", the case's directories replaced by DIR, so that a case's
// expected text cannot match a path.
func cpDFBuildError(stderr string, r *cpRun) error {
	var lines []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.HasPrefix(l, "dfbuild: ") {
			lines = append(lines, l)
		}
	}
	msg := strings.Join(lines, "\n")
	if msg == "" {
		msg = cpLastLines(stderr, 3)
	}
	return errors.New(strings.ReplaceAll(msg, r.dir+string(filepath.Separator), "DIR/"))
}

// cpOneLine joins the lines of s and cuts it to n bytes.
func cpOneLine(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > n {
		s = s[:n] + "..."
	}
	return s
}

// cpLogNotes logs the mtime differences a comparison did not count: how many, and
// a few of them, by reason.
func cpLogNotes(t *testing.T, what string, notes map[string][]string) {
	t.Helper()
	for _, reason := range cpSortedKeys(notes) {
		n := notes[reason]
		t.Logf("%s: %d mtime differences not counted: %s; e.g. %s", what, len(n), reason, strings.Join(n[:min(len(n), 2)], "; "))
	}
}

// cpLastLines returns the last n non-empty lines of s.
func cpLastLines(s string, n int) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if strings.TrimSpace(l) != "" {
			lines = append(lines, l)
		}
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// cpJudge compares one case's results and says what it is.
func cpJudge(t *testing.T, r *cpRun, env *cpEnv) cpResult {
	c := r.c
	res := cpResult{Name: c.Name, c: c}
	fail := func(format string, args ...any) cpResult {
		res.Kind = "failing"
		if res.Reason == "" {
			res.Reason = cpOneLine(fmt.Sprintf(format, args...), 240)
		}
		t.Errorf(format, args...)
		return res
	}
	t.Logf("%s\n# %s", c.File, strings.Join(c.Desc, "\n# "))
	t.Logf("reference %s, dfbuild %s (%s)", r.refTime.Round(time.Millisecond), r.ourTime.Round(time.Millisecond), strings.Join(r.steps, ", "))
	if r.setupErr != nil {
		return fail("%v", r.setupErr)
	}
	if r.ourErr == nil && !c.Flatten {
		imagetest.Validate(t, r.out)
	}
	// dfbuild's outcome against the case's error directive.
	if c.ExpectError {
		if r.ourErr == nil {
			return fail("dfbuild built the image; want an error containing %q", c.Error)
		}
		if !strings.Contains(r.ourErr.Error(), c.Error) {
			return fail("dfbuild failed with:\n%v\nwant an error containing %q", r.ourErr, c.Error)
		}
		t.Logf("dfbuild failed as expected: %v", r.ourErr)
	} else if r.ourErr != nil {
		return fail("dfbuild failed:\n%v", r.ourErr)
	}

	if c.EngineLacks != "" {
		res.Kind = "engine-lacks"
		t.Logf("not compared with the engine (it lacks this: %s); checked against the expected listing", c.EngineLacks)
		if r.ourErr != nil {
			return res
		}
		return cpCheckGolden(t, r, env, res, fail)
	}

	// The differential comparison.
	var diffs []cpDiff
	switch {
	case r.refErr != nil && r.ourErr != nil:
		t.Logf("both refuse; the reference said: %v", cpLastLines(r.refErr.Error(), 3))
	case r.refErr != nil:
		diffs = append(diffs, cpDiff{Where: "outcome", Field: "result", Ours: "ok", Theirs: "error: " + cpLastLines(r.refErr.Error(), 2)})
	case r.ourErr != nil:
		diffs = append(diffs, cpDiff{Where: "outcome", Field: "result", Ours: "error: " + r.ourErr.Error(), Theirs: "ok"})
	default:
		diffs = cpCompareImages(t, r, env)
	}

	// Sort the differences into the listed ones and the rest.
	matched := map[string]int{}
	var bad []string
	for _, d := range diffs {
		id := ""
		for _, want := range c.Differs {
			def := cpDifferenceByID(want)
			if def == nil || (def.OldBuildKit && !env.builder.oldBuildKit()) {
				continue
			}
			if def.Match(c, d, diffs) {
				id = want
				break
			}
		}
		if id == "" {
			bad = append(bad, d.String())
			continue
		}
		matched[id]++
		t.Logf("deliberate difference %s: %s", id, d)
	}
	for _, id := range c.Differs {
		def := cpDifferenceByID(id)
		if def == nil {
			return fail("unknown difference %s", id)
		}
		if def.OldBuildKit && !env.builder.oldBuildKit() {
			continue // the reference is newer than v0.8: the quirk must not show
		}
		if matched[id] == 0 {
			bad = append(bad, fmt.Sprintf("the case lists difference %s (%s), but it did not occur", id, def.Summary))
		}
		res.IDs = append(res.IDs, id)
	}
	if len(bad) > 0 {
		return fail("%d differences from the reference:\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
	if len(res.IDs) > 0 {
		res.Kind = "differs"
	} else {
		res.Kind = "identical"
	}
	return res
}

// cpCompareImages compares the two built images: exported filesystems, layers,
// history and config.
func cpCompareImages(t *testing.T, r *cpRun, env *cpEnv) []cpDiff {
	policy := e2eWallClockPolicy(env.wallClock)
	var diffs []cpDiff
	ourFS := r.ourFS
	if r.c.Flatten {
		ourFS = cpFlatten(r.ourImg.Layers)
	}
	d, notes := cpCompareTrees("export", ourFS, r.refFS, policy, r.c.Flatten, env.wallClock)
	diffs = append(diffs, d...)
	cpLogNotes(t, "exported filesystems", notes)

	if r.c.Flatten {
		// The reference was not saved (gigabytes): its config comes from docker inspect.
		ours := map[string]any{}
		var top map[string]any
		if err := json.Unmarshal(r.ourImg.ConfigRaw, &top); err == nil {
			ours, _ = top["config"].(map[string]any)
		}
		diffs = append(diffs, cpCompareConfigs(t, cpNormalize(ours), cpNormalize(r.refInspect))...)
		return diffs
	}

	if len(r.ourImg.Layers) != len(r.refImg.Layers) {
		diffs = append(diffs, cpDiff{Where: "layers", Field: "count", Ours: fmt.Sprint(len(r.ourImg.Layers)), Theirs: fmt.Sprint(len(r.refImg.Layers))})
	} else {
		for i := range r.ourImg.Layers {
			if i < len(r.ourImg.Config.RootFS.DiffIDs) && r.ourImg.Config.RootFS.DiffIDs[i] == env.baseDigest && r.refImg.Config.RootFS.DiffIDs[i] == env.baseDigest {
				continue
			}
			d, notes := cpCompareTrees(fmt.Sprintf("layer %d", i+1), r.ourImg.Layers[i], r.refImg.Layers[i], policy, false, env.wallClock)
			if len(d) > 0 {
				lower := cpFlatten(r.ourImg.Layers[:i])
				for j := range d {
					if e, ok := lower.Entries[d[j].Path]; ok {
						d[j].Lower = &e
					}
				}
			}
			diffs = append(diffs, d...)
			cpLogNotes(t, fmt.Sprintf("layer %d", i+1), notes)
		}
	}
	diffs = append(diffs, cpCompareHistory(r.ourImg.Config, r.refImg.Config)...)

	var ours, theirs map[string]any
	if err := json.Unmarshal(r.ourImg.ConfigRaw, &ours); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(r.refImg.ConfigRaw, &theirs); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"created", "history", "rootfs"} {
		delete(ours, k)
		delete(theirs, k)
	}
	oc, _ := ours["config"].(map[string]any)
	tc, _ := theirs["config"].(map[string]any)
	delete(ours, "config")
	delete(theirs, "config")
	diffs = append(diffs, cpCompareConfigs(t, ours, theirs)...)
	for i := range diffs {
		if diffs[i].Where == "config" {
			diffs[i].Path = "(top level) " + diffs[i].Path
		}
	}
	diffs = append(diffs, cpCompareConfigs(t, oc, tc)...)
	return diffs
}

// cpCompareTrees compares two filesystems path by path, one difference per field.
// In flatten mode, paths only the reference has and that docker stamped when it made
// the container (its init layer: /dev, /etc/hosts, ...) are only noted.
func cpCompareTrees(where string, ours, theirs *e2eTree, policy e2eMtimePolicy, flatten bool, wallClock time.Time) (diffs []cpDiff, notes map[string][]string) {
	notes = map[string][]string{}
	paths := map[string]bool{}
	for p := range ours.Entries {
		paths[p] = true
	}
	for p := range theirs.Entries {
		paths[p] = true
	}
	for _, p := range cpSortedKeys(paths) {
		a, inA := ours.Entries[p]
		b, inB := theirs.Entries[p]
		switch {
		case !inA && flatten && b.MTime.After(wallClock):
			notes["docker's init layer (dfbuild's image was read from its archive, not exported)"] = append(
				notes["docker's init layer (dfbuild's image was read from its archive, not exported)"], p)
			continue
		case !inA:
			diffs = append(diffs, cpDiff{Where: where, Path: p, Field: "presence", Ours: "absent", Theirs: b.String(), T: &b})
			continue
		case !inB:
			diffs = append(diffs, cpDiff{Where: where, Path: p, Field: "presence", Ours: a.String(), Theirs: "absent", O: &a})
			continue
		}
		add := func(field, x, y string) {
			diffs = append(diffs, cpDiff{Where: where, Path: p, Field: field, Ours: x, Theirs: y, O: &a, T: &b})
		}
		if a.Type != b.Type {
			add("type", a.Type, b.Type)
		}
		if a.Mode != b.Mode {
			add("mode", fmt.Sprintf("%04o", a.Mode), fmt.Sprintf("%04o", b.Mode))
		}
		if a.UID != b.UID || a.GID != b.GID {
			add("owner", fmt.Sprintf("%d:%d", a.UID, a.GID), fmt.Sprintf("%d:%d", b.UID, b.GID))
		}
		if a.Size != b.Size {
			add("size", fmt.Sprint(a.Size), fmt.Sprint(b.Size))
		}
		if a.SHA != b.SHA {
			add("content", "sha256:"+cpShort(a.SHA), "sha256:"+cpShort(b.SHA))
		}
		if a.Link != b.Link {
			add("link", fmt.Sprintf("%q", a.Link), fmt.Sprintf("%q", b.Link))
		}
		if a.Xattrs != b.Xattrs {
			add("xattrs", fmt.Sprintf("%q", a.Xattrs), fmt.Sprintf("%q", b.Xattrs))
		}
		if !a.MTime.Equal(b.MTime) {
			msg := fmt.Sprintf("mtime %s vs %s", a.MTime.UTC().Format(time.RFC3339Nano), b.MTime.UTC().Format(time.RFC3339Nano))
			if reason := policy(p, e2eEntry{Type: a.Type, MTime: a.MTime}, e2eEntry{Type: b.Type, MTime: b.MTime}); reason != "" {
				notes[reason] = append(notes[reason], p+": "+msg)
			} else {
				add("mtime", a.MTime.UTC().Format(time.RFC3339Nano), b.MTime.UTC().Format(time.RFC3339Nano))
			}
		}
	}
	return diffs, notes
}

func cpShort(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// cpCompareHistory compares the history entries after the base's ("Imported from"
// on both sides): their number, empty_layer, created_by and comment.
func cpCompareHistory(ours, ref e2eConfig) []cpDiff {
	strip := func(c e2eConfig) []e2eHistory {
		var h []e2eHistory
		for _, e := range c.History {
			if !strings.HasPrefix(e.Comment, "Imported from ") {
				h = append(h, e)
			}
		}
		return h
	}
	a, b := strip(ours), strip(ref)
	var diffs []cpDiff
	if len(a) != len(b) {
		diffs = append(diffs, cpDiff{Where: "history", Field: "entries", Ours: cpHistoryListing(ours), Theirs: cpHistoryListing(ref)})
		return diffs
	}
	for i := range a {
		p := fmt.Sprintf("[%d]", i)
		if a[i].EmptyLayer != b[i].EmptyLayer {
			diffs = append(diffs, cpDiff{Where: "history", Path: p, Field: "empty_layer", Ours: fmt.Sprint(a[i].EmptyLayer), Theirs: fmt.Sprint(b[i].EmptyLayer)})
		}
		if a[i].CreatedBy != b[i].CreatedBy {
			diffs = append(diffs, cpDiff{Where: "history", Path: p, Field: "created_by", Ours: a[i].CreatedBy, Theirs: b[i].CreatedBy})
		}
		if a[i].Comment != b[i].Comment {
			diffs = append(diffs, cpDiff{Where: "history", Path: p, Field: "comment", Ours: a[i].Comment, Theirs: b[i].Comment})
		}
	}
	return diffs
}

// cpCompareConfigs compares two JSON objects key by key. Engine 20.10 writes
// "OnBuild": null, current BuildKit and dfbuild leave it out (README difference 7):
// that is noted, not counted, in every case.
func cpCompareConfigs(t *testing.T, ours, theirs map[string]any) []cpDiff {
	var diffs []cpDiff
	keys := map[string]bool{}
	for k := range ours {
		keys[k] = true
	}
	for k := range theirs {
		keys[k] = true
	}
	for _, k := range cpSortedKeys(keys) {
		a, inA := ours[k]
		b, inB := theirs[k]
		if k == "OnBuild" && !inA && inB && b == nil {
			t.Logf("config: the reference has \"OnBuild\": null (README difference 7)")
			continue
		}
		if inA == inB && e2eDeepEqualJSON(a, b) {
			continue
		}
		x, y := e2eJSON(a), e2eJSON(b)
		if !inA {
			x = "absent"
		}
		if !inB {
			y = "absent"
		}
		diffs = append(diffs, cpDiff{Where: "config", Path: k, Field: "value", Ours: x, Theirs: y})
	}
	return diffs
}

// cpNormalize drops the zero values docker inspect shows for every image.
func cpNormalize(m map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range m {
		switch x := v.(type) {
		case nil:
			continue
		case string:
			if x == "" {
				continue
			}
		case bool:
			if !x {
				continue
			}
		case []any:
			if len(x) == 0 {
				continue
			}
		case map[string]any:
			if len(x) == 0 {
				continue
			}
		}
		out[k] = v
	}
	return out
}

// cpCheckGolden checks an engine-lacks case: the filesystem dfbuild built, less the
// base, against want/listing, and its history against want/history.
func cpCheckGolden(t *testing.T, r *cpRun, env *cpEnv, res cpResult, fail func(string, ...any) cpResult) cpResult {
	c := r.c
	base := &e2eTree{Entries: map[string]e2eEntry{}}
	if ids := r.ourImg.Config.RootFS.DiffIDs; len(ids) > 0 && ids[0] == env.baseDigest {
		base = cpFlatten([]*e2eTree{env.baseTree})
	}
	got := cpListing(cpFlatten(r.ourImg.Layers), base)
	gotHistory := cpHistoryListing(r.ourImg.Config)
	if r.url != "" {
		gotHistory = strings.ReplaceAll(gotHistory, r.url, "{URL}")
	}
	if *cpUpdateFlag {
		cpUpdateWant(t, c, got, gotHistory)
		return res
	}
	var bad []string
	if c.WantListing != nil {
		for _, d := range cpCompareListing(got, *c.WantListing) {
			bad = append(bad, "listing: "+d)
		}
	}
	if c.WantHistory != nil && gotHistory != *c.WantHistory {
		bad = append(bad, fmt.Sprintf("history:\n%s\nwant:\n%s", gotHistory, *c.WantHistory))
	}
	if len(bad) > 0 {
		t.Logf("dfbuild's listing:\n%s", got)
		return fail("dfbuild differs from the expected result:\n  %s", strings.Join(bad, "\n  "))
	}
	return res
}

// cpUpdateWant rewrites the want/ sections of an engine-lacks case.
func cpUpdateWant(t *testing.T, c *cpCase, listing, history string) {
	ar, err := txtar.ParseFile(c.File)
	if err != nil {
		t.Fatal(err)
	}
	old := ""
	if c.WantListing != nil {
		old = *c.WantListing
	}
	set := map[string]string{"want/listing": cpMergeStars(listing, old), "want/history": history}
	// What still holds is kept as it was written: its order, comments and macros.
	if c.WantListing != nil && len(cpCompareListing(listing, old)) == 0 {
		delete(set, "want/listing")
	}
	if c.WantHistory != nil && *c.WantHistory == history {
		delete(set, "want/history")
	}
	if len(set) == 0 {
		return
	}
	for i, f := range ar.Files {
		if v, ok := set[f.Name]; ok {
			ar.Files[i].Data = []byte(v)
			delete(set, f.Name)
		}
	}
	for _, name := range []string{"want/listing", "want/history"} {
		if v, ok := set[name]; ok && v != "" {
			ar.Files = append(ar.Files, txtar.File{Name: name, Data: []byte(v)})
		}
	}
	if err := os.WriteFile(c.File, txtar.Format(ar), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("updated %s", c.File)
}

// ---- the summary --------------------------------------------------------------------

// cpSummary logs the table of results and writes it to -copy.results.
func cpSummary(t *testing.T, results []cpResult, builder e2eBuilder) {
	// Under -run, the cases left out have no result and no place in the table.
	results = slices.DeleteFunc(slices.Clone(results), func(r cpResult) bool { return r.c == nil })
	var b strings.Builder
	count := map[string]int{}
	perID := map[string]int{}
	for _, r := range results {
		count[r.Kind]++
		for _, id := range r.IDs {
			perID[id]++
		}
	}
	fmt.Fprintf(&b, "# COPY/ADD differential suite: results\n\n")
	fmt.Fprintf(&b, "Made by `go test ./cmd/dfbuild -run 'TestE2ECopy$' -args -copy.results=$PWD/testdata/copy/RESULTS.md`\n")
	fmt.Fprintf(&b, "against Docker Engine %s (%s BuildKit, `DOCKER_BUILDKIT=1 %s build`).\n\n", builder.engine, map[bool]string{true: "its built-in v0.8", false: "its"}[builder.oldBuildKit()], builder.argv[0])
	fmt.Fprintf(&b, "| Cases | Identical | Deliberate differences | Engine lacks the feature (checked against BuildKit's documented result) | Failing |\n")
	fmt.Fprintf(&b, "|---|---|---|---|---|\n")
	fmt.Fprintf(&b, "| %d | %d | %d | %d | %d |\n\n", len(results), count["identical"], count["differs"], count["engine-lacks"], count["failing"])

	fmt.Fprintf(&b, "## Deliberate differences\n\n| ID | README | Cases | What |\n|---|---|---|---|\n")
	for _, d := range cpDifferences {
		fmt.Fprintf(&b, "| %s | %s | %d | %s |\n", d.ID, d.README, perID[d.ID], d.Summary)
	}
	fmt.Fprintf(&b, "\nEvery case also accepts, without listing them, the engine-wide differences: directory mtimes\n")
	fmt.Fprintf(&b, "BuildKit stamps with its clock (README 3 and 8) and `\"OnBuild\": null` in the config (README 7).\n\n")

	fmt.Fprintf(&b, "## Cases\n\n| Case | Rules | BuildKit test | Result |\n|---|---|---|---|\n")
	for _, r := range results {
		verdict := r.Kind
		switch r.Kind {
		case "differs":
			verdict = "deliberate difference " + strings.Join(r.IDs, ", ")
		case "engine-lacks":
			verdict = "engine lacks it: " + r.c.EngineLacks
		case "failing":
			verdict = "**failing**: " + strings.ReplaceAll(r.Reason, "|", "\\|")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Name, strings.Join(r.c.Rules, " "), strings.Join(r.c.BuildKit, " "), verdict)
	}
	fmt.Fprintf(&b, "\n## Coverage\n\nThe rules of semantics.md §1 and BuildKit's COPY/ADD integration tests (§4.2), with the cases that cover them.\n\n| Rule or test | Cases |\n|---|---|\n")
	cover := map[string][]string{}
	for _, r := range results {
		for _, k := range append(append([]string{}, r.c.Rules...), r.c.BuildKit...) {
			cover[k] = append(cover[k], r.Name)
		}
	}
	for _, k := range append(cpRules(), cpBuildKitTests...) {
		fmt.Fprintf(&b, "| %s | %s |\n", k, strings.Join(cover[k], ", "))
	}
	t.Logf("\n%s", b.String())
	if *cpResultsFlag != "" {
		if err := os.WriteFile(*cpResultsFlag, []byte(b.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
