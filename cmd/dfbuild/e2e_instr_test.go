//go:build linux

package main

// The differential suite of issue #3: every instruction that needs no container,
// multi-stage builds and variable expansion, built by the reference builder (docker
// build with BuildKit) and by dfbuild, and compared. The cases are the files
// testdata/instructions/NAME.txtar at the top of the repository. Run them with
//
//	go test ./cmd/dfbuild -run TestE2EInstructions -v
//	go test ./cmd/dfbuild -run 'TestE2EInstructions/env-' -v   # some of them
//
// A case is a txtar archive. Its Dockerfile section is the Dockerfile; every other
// section is a file of the build context (mode 0644, directories 0755, all dated
// e2eCtxTime; a section named "DIR/" is an empty directory). The Dockerfile itself
// lies outside the context, so "COPY . x" copies the same files for both builders. The comment section describes the case in lines
// starting with "#" and holds directives, one a line:
//
//	build-arg K=V       as --build-arg (the rest of the line is the value)
//	label K=V           as --label
//	target NAME         as --target
//	platform P          as --platform
//	symlink PATH TARGET make a symlink in the context
//	chmod MODE PATH     set a context file's mode (octal)
//	error               both builders must fail; dfbuild's error must name the
//	                    Dockerfile, and the line when the reference names one
//	differs N           the case shows the documented difference N (README,
//	                    "Differences from docker build"): every difference
//	                    from the reference must be one of those declared, and each
//	                    declared one must occur when it applies to the reference;
//	                    README items 2 and 7 show in most cases and need no line
//
// A section want-config.json holds config fields ("Env", "Healthcheck", ...) that
// dfbuild's image must have, exactly, whatever the reference does: for cases where
// the reference cannot show current BuildKit's behaviour (BuildKit v0.8 rejects the
// syntax), the values current BuildKit gives, checked against its code.
//
// The name "busybox" in FROM and in --from stands for a static busybox root
// filesystem (e2eRootfsTar): docker gets `docker import` of the tarball, under a
// name unique to the test process, written into its copy of the Dockerfile; dfbuild
// gets the tarball with --build-context busybox=PATH and the Dockerfile unchanged.
//
// What is compared:
//   - that both builds succeed, or (with "error") both fail;
//   - docker image inspect: the platform, the Author and every key of Config (Env,
//     Cmd, Entrypoint, WorkingDir, User, Labels, ExposedPorts, Volumes, StopSignal,
//     Healthcheck, Shell, OnBuild, ArgsEscaped, ...);
//   - the config JSON itself (its "config" object), when docker save can give the
//     reference's (it cannot for an image without layers);
//   - the number of layers, the history's empty_layer pattern, created_by and
//     comment (docker history when the reference has no layer);
//   - each layer's entries, when docker save gave the reference's layers;
//   - `docker export` of a container of each image: path, type, mode, uid, gid,
//     size, content digest, link target, and mtime unless the reference stamped it
//     with the clock (e2eWallClockPolicy).
//
// The reference builder is e2eFindBuilder's: on the project's machines the Debian
// 20.10 client /usr/bin/docker with DOCKER_BUILDKIT=1, which reaches the engine's
// built-in BuildKit v0.8. Without a daemon the test skips, and fails under CI=true;
// with only the classic builder it does the same, since the classic builder differs
// from BuildKit throughout (semantics.md §5).
//
// Each subtest hands its docker work to a pool of e2eInstrWorkers before it calls
// t.Parallel, so all cases start at once whatever -parallel says (the time goes on
// waiting for the daemon); each then compares what its work collected. dfbuild runs
// as a child process, this test binary re-executed as the dfbuild command
// (TestE2EHelperProcess), with the case's flags and SOURCE_DATE_EPOCH unset.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

// e2eInstrDir holds the cases, relative to this package.
var e2eInstrDir = filepath.Join("..", "..", "testdata", "instructions")

// e2eInstrWorkers is how many cases talk to the daemon at once.
const e2eInstrWorkers = 8

// ---- cases -------------------------------------------------------------------------

type e2eInstrCase struct {
	name       string
	file       string
	dockerfile string
	files      []txtar.File
	buildArgs  []string
	labels     []string
	target     string
	platform   string
	symlinks   [][2]string // path, target
	chmods     []e2eInstrChmod
	wantError  bool
	differs    []string
	want       map[string]any // want-config.json
}

type e2eInstrChmod struct {
	path string
	mode os.FileMode
}

// e2eInstrLoadCases reads every testdata/instructions/*.txtar.
func e2eInstrLoadCases(dir string) ([]*e2eInstrCase, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txtar"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no cases in %s", dir)
	}
	var cases []*e2eInstrCase
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		c, err := e2eInstrParseCase(f, data)
		if err != nil {
			return nil, err
		}
		cases = append(cases, c)
	}
	return cases, nil
}

var e2eInstrCaseName = regexp.MustCompile(`^[a-z0-9][a-z0-9-]*$`)

// e2eInstrParseCase reads one case; see the top of this file for the format.
func e2eInstrParseCase(file string, data []byte) (*e2eInstrCase, error) {
	ar := txtar.Parse(data)
	c := &e2eInstrCase{name: strings.TrimSuffix(filepath.Base(file), ".txtar"), file: file}
	if !e2eInstrCaseName.MatchString(c.name) {
		return nil, fmt.Errorf("%s: a case name is lower-case letters, digits and dashes (it becomes an image name)", file)
	}
	seen := false
	for _, f := range ar.Files {
		if f.Name == "Dockerfile" {
			c.dockerfile, seen = string(f.Data), true
			continue
		}
		if f.Name == "want-config.json" {
			if err := json.Unmarshal(f.Data, &c.want); err != nil || c.want == nil {
				return nil, fmt.Errorf("%s: want-config.json: not a JSON object: %v", file, err)
			}
			continue
		}
		if filepath.IsAbs(f.Name) || strings.Contains("/"+f.Name+"/", "/../") {
			return nil, fmt.Errorf("%s: section %q is not a relative path inside the context", file, f.Name)
		}
		c.files = append(c.files, f)
	}
	if !seen {
		return nil, fmt.Errorf("%s: no Dockerfile section", file)
	}
	for i, line := range strings.Split(string(ar.Comment), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		word, rest, _ := strings.Cut(line, " ")
		rest = strings.TrimSpace(rest)
		fields := strings.Fields(rest)
		bad := func() error { return fmt.Errorf("%s:%d: bad directive %q", file, i+1, line) }
		switch word {
		case "build-arg":
			if rest == "" {
				return nil, bad()
			}
			c.buildArgs = append(c.buildArgs, rest)
		case "label":
			if rest == "" {
				return nil, bad()
			}
			c.labels = append(c.labels, rest)
		case "target":
			if len(fields) != 1 {
				return nil, bad()
			}
			c.target = fields[0]
		case "platform":
			if len(fields) != 1 {
				return nil, bad()
			}
			c.platform = fields[0]
		case "symlink":
			if len(fields) != 2 {
				return nil, bad()
			}
			c.symlinks = append(c.symlinks, [2]string{fields[0], fields[1]})
		case "chmod":
			if len(fields) != 2 {
				return nil, bad()
			}
			m, err := strconv.ParseUint(fields[0], 8, 32)
			if err != nil {
				return nil, bad()
			}
			c.chmods = append(c.chmods, e2eInstrChmod{path: fields[1], mode: imagetest.FileMode(m)})
		case "error":
			if rest != "" {
				return nil, bad()
			}
			c.wantError = true
		case "differs":
			if len(fields) != 1 {
				return nil, bad()
			}
			if _, ok := e2eInstrDifferences[fields[0]]; !ok {
				return nil, fmt.Errorf("%s:%d: differs %s: no such documented difference (see e2eInstrDifferences)", file, i+1, fields[0])
			}
			c.differs = append(c.differs, fields[0])
		default:
			return nil, bad()
		}
	}
	return c, nil
}

// writeContext writes the case's build context into dir: the files 0644, the
// directories 0755 (whatever the umask), then the case's chmods, then every mtime
// e2eCtxTime, deepest first, so that writing a child does not move its parent's.
func (c *e2eInstrCase) writeContext(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, f := range c.files {
		p := filepath.Join(dir, filepath.FromSlash(f.Name))
		if strings.HasSuffix(f.Name, "/") { // an empty directory
			if err := os.MkdirAll(p, 0o755); err != nil {
				return err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return err
		}
		if err := os.Chmod(p, 0o644); err != nil {
			return err
		}
	}
	for _, s := range c.symlinks {
		p := filepath.Join(dir, filepath.FromSlash(s[0]))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.Symlink(s[1], p); err != nil {
			return err
		}
	}
	var all []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		all = append(all, p)
		if fi.IsDir() {
			return os.Chmod(p, 0o755)
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, m := range c.chmods {
		if err := os.Chmod(filepath.Join(dir, filepath.FromSlash(m.path)), m.mode); err != nil {
			return err
		}
	}
	for i := len(all) - 1; i >= 0; i-- {
		if err := e2eInstrTouch(all[i], e2eCtxTime); err != nil {
			return err
		}
	}
	return nil
}

// e2eInstrTouch sets the mtime (and atime) of p without following a final symlink;
// it is e2eTouch without a *testing.T, for the worker pool.
func e2eInstrTouch(p string, mtime time.Time) error {
	name, err := syscall.BytePtrFromString(p)
	if err != nil {
		return err
	}
	ts := [2]syscall.Timespec{syscall.NsecToTimespec(mtime.UnixNano()), syscall.NsecToTimespec(mtime.UnixNano())}
	atFDCWD := -100
	const atSymlinkNofollow = 0x100
	if _, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(&ts[0])), atSymlinkNofollow, 0, 0); errno != 0 {
		return fmt.Errorf("utimensat %s: %w", p, errno)
	}
	return nil
}

// e2eInstrFromBusybox matches the name "busybox" as the image of a FROM line and as
// the value of --from, which the reference's copy of the Dockerfile replaces with the
// imported image's name.
var (
	e2eInstrFromLine = regexp.MustCompile(`(?im)^(\s*(?:ONBUILD\s+)?FROM\s+(?:--\S+\s+)*)busybox(\s|$)`)
	e2eInstrFromFlag = regexp.MustCompile(`(?i)(--from=)busybox(\s|$)`)
)

// uses reports whether the case names the busybox base.
func (c *e2eInstrCase) usesBusybox() bool {
	return e2eInstrFromLine.MatchString(c.dockerfile) || e2eInstrFromFlag.MatchString(c.dockerfile)
}

func (c *e2eInstrCase) referenceDockerfile(base string) string {
	s := e2eInstrFromLine.ReplaceAllString(c.dockerfile, "${1}"+base+"${2}")
	return e2eInstrFromFlag.ReplaceAllString(s, "${1}"+base+"${2}")
}

// ---- running the builds (no *testing.T: this runs in a worker pool) ------------------

// e2eInstrEnv is what every case shares.
type e2eInstrEnv struct {
	builder   e2eBuilder
	self      string // this test binary, re-executed as dfbuild
	base      string // the imported busybox image
	baseTar   string // the busybox tarball, for --build-context
	wallClock time.Time
}

// e2eInstrResult is what the docker work of one case collected, as files in dir.
type e2eInstrResult struct {
	dir            string
	refTag, ourTag string
	dockerfile     string // dfbuild's copy
	refErr, ourErr error  // the builds' failures, with their output
	infraErr       error  // anything else that failed: load, inspect, save, export
	ourArchive     string
	inspect        string // docker image inspect REF OURS
	refSaved       string // docker save of the reference, when it has layers
	refHistory     string // docker history of the reference, when it has none
	layers         int    // of both images
	refExport      string // docker export of each, unless neither has a layer
	ourExport      string
	mu             sync.Mutex // for durations: the two builds run at once
	durations      []string
}

// e2eInstrTags are the images the cases made, removed when the test ends.
var e2eInstrTags struct {
	sync.Mutex
	tags []string
}

func (r *e2eInstrResult) created(tag string) {
	e2eInstrTags.Lock()
	e2eInstrTags.tags = append(e2eInstrTags.tags, tag)
	e2eInstrTags.Unlock()
}

func (r *e2eInstrResult) timed(what string, start time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.durations = append(r.durations, fmt.Sprintf("%s %.1fs", what, time.Since(start).Seconds()))
}

// e2eInstrDocker runs the docker client the suite uses for everything but builds.
func e2eInstrDocker(args ...string) (string, error) {
	out, _, err := e2eExec(nil, nil, "docker", args...)
	return out, err
}

func (env *e2eInstrEnv) run(c *e2eInstrCase, dir string) *e2eInstrResult {
	r := &e2eInstrResult{
		dir:    dir,
		refTag: e2eName("instr-" + c.name + ":reference"),
		ourTag: e2eName("instr-" + c.name + ":dfbuild"),
	}
	ctxDir := filepath.Join(dir, "ctx")
	if r.infraErr = c.writeContext(ctxDir); r.infraErr != nil {
		return r
	}
	refDF := filepath.Join(dir, "reference", "Dockerfile")
	r.dockerfile = filepath.Join(dir, "dfbuild", "Dockerfile")
	for df, content := range map[string]string{refDF: c.referenceDockerfile(env.base), r.dockerfile: c.dockerfile} {
		if r.infraErr = os.MkdirAll(filepath.Dir(df), 0o755); r.infraErr != nil {
			return r
		}
		if r.infraErr = os.WriteFile(df, []byte(content), 0o644); r.infraErr != nil {
			return r
		}
		if r.infraErr = e2eInstrTouch(df, e2eCtxTime.Add(time.Hour)); r.infraErr != nil {
			return r
		}
	}
	r.ourArchive = filepath.Join(dir, "dfbuild.tar")

	// Both builds at once.
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		defer r.timed("docker build", time.Now())
		args := append([]string{}, env.builder.argv[1:]...)
		args = append(args, "-f", refDF, "-t", r.refTag)
		args = append(args, c.flags()...)
		_, stderr, err := e2eExec(env.builder.env, nil, env.builder.argv[0], append(args, ctxDir)...)
		switch {
		case err == nil:
			r.created(r.refTag)
		case strings.Contains(stderr, "Cannot connect to the Docker daemon") || strings.Contains(stderr, "cannot connect to the Docker daemon"):
			r.infraErr = fmt.Errorf("docker build: %w", e2eInstrLastLines(stderr, err))
		default:
			r.refErr = e2eInstrLastLines(stderr, err)
		}
	}()
	go func() {
		defer wg.Done()
		defer r.timed("dfbuild", time.Now())
		argv := []string{"-f", r.dockerfile, "-t", r.ourTag, "-o", r.ourArchive, "--progress", "plain"}
		if c.usesBusybox() {
			argv = append(argv, "--build-context", "busybox="+env.baseTar)
		}
		argv = append(append(argv, c.flags()...), ctxDir)
		js, _ := json.Marshal(argv)
		_, stderr, err := e2eExec([]string{"SOURCE_DATE_EPOCH=", e2eHelperEnv + "=" + string(js)}, nil,
			env.self, "-test.run=^TestE2EHelperProcess$")
		if err != nil {
			r.ourErr = e2eInstrLastLines(stderr, err)
		}
	}()
	wg.Wait()
	if r.refErr != nil || r.ourErr != nil || r.infraErr != nil {
		return r
	}

	// The steps after the builds; the first that fails stops the rest.
	step := func(what string, f func() error) {
		if r.infraErr != nil {
			return
		}
		defer r.timed(what, time.Now())
		if err := f(); err != nil {
			r.infraErr = fmt.Errorf("%s: %w", what, err)
		}
	}
	step("docker load", func() error {
		out, err := e2eEngineLoad(r.ourArchive)
		r.created(r.ourTag)
		if err == nil && !strings.Contains(out, "Loaded image: "+r.ourTag+"\n") {
			err = fmt.Errorf("no \"Loaded image: %s\" in its output:\n%s", r.ourTag, out)
		}
		return err
	})
	step("docker image inspect", func() (err error) {
		r.inspect, err = e2eEngineInspect(r.refTag, r.ourTag)
		return err
	})
	step("docker save or history", func() error {
		var v []e2eInstrInspect
		if err := json.Unmarshal([]byte(r.inspect), &v); err != nil || len(v) != 2 {
			return fmt.Errorf("reading docker image inspect: %v (%d images)", err, len(v))
		}
		r.layers = len(v[0].RootFS.Layers) + len(v[1].RootFS.Layers)
		if len(v[0].RootFS.Layers) == 0 {
			// docker save of an image without layers fails in Engine 20.10 ("empty
			// export - not implemented"); its history is all the config there is.
			var err error
			r.refHistory, err = e2eInstrDocker("history", "--no-trunc", "--format", "{{json .}}", r.refTag)
			return err
		}
		r.refSaved = filepath.Join(dir, "reference.tar")
		return e2eEngineSave(r.refTag, r.refSaved)
	})
	step("docker export", func() error {
		if r.layers == 0 {
			// Neither image has a layer: a container of either holds only what docker
			// itself puts there.
			return nil
		}
		r.refExport, r.ourExport = filepath.Join(dir, "reference-export.tar"), filepath.Join(dir, "dfbuild-export.tar")
		var names []string
		defer func() {
			if len(names) > 0 {
				e2eEngineRemove(names...)
			}
		}()
		for _, x := range []struct{ tag, file string }{{r.refTag, r.refExport}, {r.ourTag, r.ourExport}} {
			name := fmt.Sprintf("dfbuild-e2e-%d-%d", os.Getpid(), e2eCounter.Add(1))
			// The container never runs; the entrypoint is replaced so that images
			// without a command can be created too.
			if err := e2eEngineCreate(x.tag, name); err != nil {
				return err
			}
			names = append(names, name)
			if err := e2eEngineExport(name, func(rd io.Reader) error { return e2eInstrWriteFile(x.file, rd) }); err != nil {
				return err
			}
		}
		return nil
	})
	return r
}

// e2eInstrWriteFile writes what r reads to the file p.
func e2eInstrWriteFile(p string, r io.Reader) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// flags are the case's build flags, the same for both builders.
func (c *e2eInstrCase) flags() []string {
	var args []string
	for _, a := range c.buildArgs {
		args = append(args, "--build-arg", a)
	}
	for _, l := range c.labels {
		args = append(args, "--label", l)
	}
	if c.target != "" {
		args = append(args, "--target", c.target)
	}
	if c.platform != "" {
		args = append(args, "--platform", c.platform)
	}
	return args
}

// e2eInstrLastLines keeps the end of a failed build's output: the error is there.
func e2eInstrLastLines(stderr string, err error) error {
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) > 12 {
		lines = lines[len(lines)-12:]
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("exit status %d:\n%s", ee.ExitCode(), strings.Join(lines, "\n"))
	}
	return fmt.Errorf("%v:\n%s", err, strings.Join(lines, "\n"))
}

// ---- the test ----------------------------------------------------------------------

// TestE2EInstructions runs every case of testdata/instructions against the reference
// builder; see the top of this file.
func TestE2EInstructions(t *testing.T) {
	cases, err := e2eInstrLoadCases(e2eInstrDir)
	if err != nil {
		t.Fatal(err)
	}
	requireDocker(t)
	e2eParallel(t)
	busybox := e2eBusybox(t)
	builder := e2eFindBuilder(t)
	if builder.kind == "classic" {
		// The classic builder differs from BuildKit in WORKDIR, history, ARG scope,
		// platform ARGs and more (semantics.md §5): its results say nothing here.
		imagetest.Require(t, "a BuildKit reference builder", errors.New("only the classic builder was found"))
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := &e2eInstrEnv{
		builder: builder,
		self:    self,
		baseTar: filepath.Join(dir, "busybox.tar"),
		base:    e2eName("instr-busybox:imported"),
		// Every input is from 2024 or older; a later time was stamped by docker.
		wallClock: e2eCtxTime.Add(48 * time.Hour),
	}
	if err := os.WriteFile(env.baseTar, e2eRootfsTar(busybox), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := e2eInstrTouch(env.baseTar, e2eCtxTime); err != nil {
		t.Fatal(err)
	}
	e2eRemoveImagesAfter(t, env.base)
	e2eDocker(t, "import", env.baseTar, env.base)

	// The images the cases made go when the test ends: registered before the
	// subtests, this runs after all of them.
	t.Cleanup(func() {
		e2eInstrTags.Lock()
		tags := e2eInstrTags.tags
		e2eInstrTags.tags = nil
		e2eInstrTags.Unlock()
		if len(tags) > 0 {
			if _, err := e2eInstrDocker(append([]string{"rmi", "-f"}, tags...)...); err != nil {
				t.Logf("cleanup: %v", err)
			}
		}
	})
	// Each subtest hands its docker work to the pool before it calls t.Parallel, so
	// every selected case starts at once, up to e2eInstrWorkers of them talking to the
	// daemon; the comparisons then run as their results come in.
	pool := make(chan struct{}, e2eInstrWorkers)
	start := time.Now()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			done := make(chan *e2eInstrResult, 1)
			caseDir := t.TempDir()
			go func() {
				pool <- struct{}{}
				defer func() { <-pool }()
				done <- env.run(c, caseDir)
			}()
			t.Parallel()
			r := <-done
			t.Logf("results after %.1fs", time.Since(start).Seconds())
			e2eInstrCompare(t, env, c, r)
		})
	}
}

// ---- comparing ---------------------------------------------------------------------

type e2eInstrInspect struct {
	ID           string `json:"Id"`
	Author       string
	Architecture string
	Os           string
	Variant      string
	Config       map[string]any
	RootFS       struct{ Layers []string }
}

// e2eInstrDiff is one difference between dfbuild's image and the reference's.
type e2eInstrDiff struct {
	what      string // build, platform, Author, Config.<key>, config.<key>, layers, history, created_by, comment, layer, export
	index     int    // the history entry, for created_by and comment
	ours, ref string // the two values; for layer and export, ours is the whole comparison line
}

func (d e2eInstrDiff) String() string {
	switch d.what {
	case "layer", "export":
		return d.what + " " + d.ours
	case "created_by", "comment":
		return fmt.Sprintf("history[%d].%s: %q (dfbuild) vs %q (reference)", d.index, d.what, d.ours, d.ref)
	}
	return fmt.Sprintf("%s: %s (dfbuild) vs %s (reference)", d.what, d.ours, d.ref)
}

func e2eInstrCompare(t *testing.T, env *e2eInstrEnv, c *e2eInstrCase, r *e2eInstrResult) {
	t.Logf("%s: %s", c.file, strings.Join(r.durations, ", "))
	if r.infraErr != nil {
		t.Fatal(r.infraErr)
	}
	var diffs []e2eInstrDiff
	switch {
	case c.wantError:
		e2eInstrCheckErrors(t, r)
		e2eInstrVerdict(t, env, c, nil)
		return
	case r.refErr != nil && r.ourErr != nil:
		t.Fatalf("both builds failed; a case that must fail says \"error\".\nreference: %v\ndfbuild: %v", r.refErr, r.ourErr)
	case r.refErr != nil:
		diffs = append(diffs, e2eInstrDiff{what: "build", ours: "succeeded", ref: "failed: " + r.refErr.Error()})
		e2eInstrCheckWant(t, c, r)
		e2eInstrVerdict(t, env, c, diffs)
		return
	case r.ourErr != nil:
		diffs = append(diffs, e2eInstrDiff{what: "build", ours: "failed: " + r.ourErr.Error(), ref: "succeeded"})
		e2eInstrVerdict(t, env, c, diffs)
		return
	}
	imagetest.Validate(t, r.ourArchive)
	e2eInstrCheckWant(t, c, r)

	// docker image inspect.
	var insp []e2eInstrInspect
	if err := json.Unmarshal([]byte(r.inspect), &insp); err != nil || len(insp) != 2 {
		t.Fatalf("docker image inspect: %v", err)
	}
	ref, ours := insp[0], insp[1]
	if a, b := ours.Os+"/"+ours.Architecture+"/"+ours.Variant, ref.Os+"/"+ref.Architecture+"/"+ref.Variant; a != b {
		diffs = append(diffs, e2eInstrDiff{what: "platform", ours: a, ref: b})
	}
	if ours.Author != ref.Author {
		diffs = append(diffs, e2eInstrDiff{what: "Author", ours: strconv.Quote(ours.Author), ref: strconv.Quote(ref.Author)})
	}
	diffs = append(diffs, e2eInstrCompareMaps("Config.", ours.Config, ref.Config)...)

	// The configs themselves, and the history.
	ourImg := e2eReadArchive(t, r.ourArchive).Images[0]
	var refImg e2eImage
	if r.refSaved != "" {
		refImg = e2eReadArchive(t, r.refSaved).Images[0]
		var a, b struct{ Config map[string]any }
		if err := json.Unmarshal(ourImg.ConfigRaw, &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(refImg.ConfigRaw, &b); err != nil {
			t.Fatal(err)
		}
		diffs = append(diffs, e2eInstrCompareMaps("config.", a.Config, b.Config)...)
	} else {
		refImg.Config.History = e2eInstrParseHistory(t, r.refHistory)
		if len(ref.RootFS.Layers) != 0 {
			t.Fatalf("the reference has layers but was not saved")
		}
	}
	diffs = append(diffs, e2eInstrCompareHistory(ourImg.Config, refImg.Config, len(ours.RootFS.Layers), len(ref.RootFS.Layers))...)

	// The layers, when the reference's could be read and they are as many.
	if r.refSaved != "" && len(ourImg.Layers) == len(refImg.Layers) {
		for i := range ourImg.Layers {
			a, _ := e2eLayerTree(t, ourImg.Layers[i])
			b, _ := e2eLayerTree(t, refImg.Layers[i])
			lines, notes := e2eCompareTrees(a, b, "dfbuild", "reference", e2eWallClockPolicy(env.wallClock))
			e2eInstrLogNotes(t, fmt.Sprintf("layer %d", i), notes)
			for _, l := range lines {
				diffs = append(diffs, e2eInstrDiff{what: "layer", ours: fmt.Sprintf("%d (%s): %s", i, e2eCreatedBy(ourImg.Config, i), l)})
			}
		}
	}

	// The filesystems a container sees.
	if r.refExport == "" {
		if len(ours.RootFS.Layers)+len(ref.RootFS.Layers) != 0 {
			t.Fatalf("not exported, yet there are layers")
		}
		t.Logf("compared: Config %s; no layers; %d history entries; no export (no layers in either image)",
			e2eInstrKeys(ref.Config), len(refImg.Config.History))
		e2eInstrVerdict(t, env, c, diffs)
		return
	}
	ourFS, refFS := e2eInstrReadTree(t, r.ourExport), e2eInstrReadTree(t, r.refExport)
	lines, notes := e2eCompareTrees(ourFS, refFS, "dfbuild", "reference", e2eWallClockPolicy(env.wallClock))
	e2eInstrLogNotes(t, "docker export", notes)
	for _, l := range lines {
		diffs = append(diffs, e2eInstrDiff{what: "export", ours: l})
	}
	t.Logf("compared: Config %s; %d layers; %d history entries; %d exported paths",
		e2eInstrKeys(ref.Config), len(ref.RootFS.Layers), len(refImg.Config.History), len(refFS))
	e2eInstrVerdict(t, env, c, diffs)
}

// e2eInstrLogNotes logs the mtime differences a comparison did not count: only how
// many for docker's init layer, which every container has, each one for the rest.
func e2eInstrLogNotes(t *testing.T, what string, notes map[string][]string) {
	t.Helper()
	const initLayer = "both stamped by docker when it created the containers (its init layer)"
	if n := len(notes[initLayer]); n > 0 {
		t.Logf("%s: %d mtimes not counted: %s", what, n, initLayer)
	}
	rest := maps.Clone(notes)
	delete(rest, initLayer)
	e2eLogNotes(t, what, rest)
}

func e2eInstrKeys(m map[string]any) string {
	var ks []string
	for k, v := range m {
		if v != nil && !reflect.ValueOf(v).IsZero() {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}

// e2eInstrCheckWant checks the fields of want-config.json in dfbuild's config.
func e2eInstrCheckWant(t *testing.T, c *e2eInstrCase, r *e2eInstrResult) {
	t.Helper()
	if c.want == nil {
		return
	}
	var got struct{ Config map[string]any }
	if err := json.Unmarshal(e2eReadArchive(t, r.ourArchive).Images[0].ConfigRaw, &got); err != nil {
		t.Fatal(err)
	}
	for _, k := range slices.Sorted(maps.Keys(c.want)) {
		if !reflect.DeepEqual(got.Config[k], c.want[k]) {
			t.Errorf("config.%s: %s (dfbuild), want %s (want-config.json)", k, e2eJSON(got.Config[k]), e2eJSON(c.want[k]))
		} else {
			t.Logf("config.%s is as want-config.json says: %s", k, e2eJSON(c.want[k]))
		}
	}
}

// e2eInstrCheckErrors checks a case that must fail in both builders: dfbuild's error
// names the Dockerfile, with a line; when the reference's error names a line, it is
// the same line.
func e2eInstrCheckErrors(t *testing.T, r *e2eInstrResult) {
	t.Helper()
	if r.refErr == nil {
		t.Errorf("the reference build succeeded; the case says both must fail")
	} else {
		t.Logf("reference: %v", r.refErr)
	}
	if r.ourErr == nil {
		t.Errorf("dfbuild succeeded; the case says both must fail")
		return
	}
	t.Logf("dfbuild: %v", r.ourErr)
	msg := r.ourErr.Error()
	m := regexp.MustCompile(`(?m)^dfbuild: ` + regexp.QuoteMeta(r.dockerfile) + `(?::(\d+))?: `).FindStringSubmatch(msg)
	if m == nil {
		t.Errorf("dfbuild's error does not start with the Dockerfile's name and line (%s:LINE: ...):\n%s", r.dockerfile, msg)
		return
	}
	if m[1] == "" {
		t.Errorf("dfbuild's error names the Dockerfile but no line:\n%s", msg)
	}
	if r.refErr != nil && m[1] != "" {
		if rm := regexp.MustCompile(`(?i)\bline (\d+)`).FindStringSubmatch(r.refErr.Error()); rm != nil && rm[1] != m[1] {
			t.Errorf("dfbuild's error is at line %s, the reference's at line %s", m[1], rm[1])
		}
	}
}

func e2eInstrReadTree(t *testing.T, file string) map[string]e2eEntry {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tree, err := e2eReadTree(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return tree.Entries
}

// e2eInstrCompareMaps compares two JSON objects key by key.
func e2eInstrCompareMaps(prefix string, ours, ref map[string]any) []e2eInstrDiff {
	var diffs []e2eInstrDiff
	for _, k := range e2eSortedKeys(ours, ref) {
		a, inA := ours[k]
		b, inB := ref[k]
		if inA == inB && reflect.DeepEqual(a, b) {
			continue
		}
		show := func(v any, in bool) string {
			if !in {
				return "(absent)"
			}
			return e2eJSON(v)
		}
		diffs = append(diffs, e2eInstrDiff{what: prefix + k, ours: show(a, inA), ref: show(b, inB)})
	}
	return diffs
}

// e2eInstrParseHistory reads docker history's JSON lines (newest first) into history
// entries (oldest first). The reference has no layers there, so every entry is empty.
func e2eInstrParseHistory(t *testing.T, out string) []e2eHistory {
	t.Helper()
	var hs []e2eHistory
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var h struct{ CreatedBy, Comment string }
		if err := json.Unmarshal([]byte(line), &h); err != nil {
			t.Fatalf("docker history: %v: %s", err, line)
		}
		hs = append(hs, e2eHistory{CreatedBy: h.CreatedBy, Comment: h.Comment, EmptyLayer: true})
	}
	slices.Reverse(hs)
	return hs
}

// e2eInstrCompareHistory compares the number of layers, the empty_layer pattern, and
// each entry's created_by and comment (not the times).
func e2eInstrCompareHistory(ours, ref e2eConfig, ourLayers, refLayers int) []e2eInstrDiff {
	var diffs []e2eInstrDiff
	if ourLayers != refLayers {
		diffs = append(diffs, e2eInstrDiff{what: "layers", ours: strconv.Itoa(ourLayers), ref: strconv.Itoa(refLayers)})
	}
	if p, q := e2eHistoryPattern(ours), e2eHistoryPattern(ref); p != q {
		diffs = append(diffs, e2eInstrDiff{what: "history (L = layer, e = empty_layer)", ours: p, ref: q})
	}
	for i := range min(len(ours.History), len(ref.History)) {
		a, b := ours.History[i], ref.History[i]
		if a.CreatedBy != b.CreatedBy {
			diffs = append(diffs, e2eInstrDiff{what: "created_by", index: i, ours: a.CreatedBy, ref: b.CreatedBy})
		}
		if a.Comment != b.Comment {
			diffs = append(diffs, e2eInstrDiff{what: "comment", index: i, ours: a.Comment, ref: b.Comment})
		}
	}
	return diffs
}

// ---- differences -------------------------------------------------------------------

// e2eInstrDifference is a documented difference from the reference: the number of
// its item in the README's "Differences from docker build", and how to recognise it.
type e2eInstrDifference struct {
	// oldBuildKit: it shows only against the BuildKit of Docker Engine 20.10 (v0.8),
	// where dfbuild follows current BuildKit.
	oldBuildKit bool
	// ambient: it may show in any case, so cases need not declare it.
	ambient bool
	reason  string
	match   func(c *e2eInstrCase, d e2eInstrDiff) bool
}

func (d e2eInstrDifference) applies(b e2eBuilder) bool { return !d.oldBuildKit || b.oldBuildKit() }

var e2eInstrDifferences = map[string]e2eInstrDifference{
	"2": {
		ambient: true,
		reason:  "README 2: a base tarball is taken as docker import takes it; dfbuild's history names the file",
		match: func(c *e2eInstrCase, d e2eInstrDiff) bool {
			return d.what == "comment" && d.ref == "Imported from -" && strings.HasPrefix(d.ours, "Imported from ")
		},
	},
	"7": {
		ambient:     true,
		oldBuildKit: true,
		reason:      `README 7: BuildKit v0.8 writes "OnBuild": null into the config; current BuildKit and dfbuild leave it out`,
		match: func(c *e2eInstrCase, d e2eInstrDiff) bool {
			return d.what == "config.OnBuild" && d.ours == "(absent)" && d.ref == "null"
		},
	},
	"6": {
		reason: "README 6: a user or group name the image's /etc/passwd or /etc/group lacks is an error " +
			"(for COPY --chown and for the directories WORKDIR creates for USER); BuildKit uses 0",
		match: func(c *e2eInstrCase, d e2eInstrDiff) bool {
			return d.what == "build" && d.ref == "succeeded" && strings.HasPrefix(d.ours, "failed: ") &&
				(strings.Contains(d.ours, "in the image's /etc/passwd") || strings.Contains(d.ours, "in the image's /etc/group"))
		},
	},
	"11": {
		oldBuildKit: true,
		reason: "README 11: the history's text for ARG, EXPOSE, HEALTHCHECK and COPY follows current BuildKit " +
			"(ARG with the values in effect, EXPOSE as a list, HEALTHCHECK as %+v, COPY with --chown and --chmod); " +
			"BuildKit v0.8 writes ARG as declared, EXPOSE as a Go map, HEALTHCHECK as %q of a pointer, and no COPY flags",
		match: e2eInstrHistoryText,
	},
	"12": {
		oldBuildKit: true,
		reason: "README 12: dfbuild accepts the Dockerfile syntax of current BuildKit that BuildKit v0.8 rejects: " +
			"HEALTHCHECK --start-interval and --retries=0, and the ${v#p} ${v%p} ${v/p/r} ${v-w} ${v+w} forms",
		match: func(c *e2eInstrCase, d e2eInstrDiff) bool {
			if d.what != "build" || d.ours != "succeeded" {
				return false
			}
			for _, msg := range []string{"Unknown flag: start-interval", "missing ':' in substitution", "--retries must be at least 1"} {
				if strings.Contains(d.ref, msg) {
					return true
				}
			}
			return false
		},
	},
	"13": {
		oldBuildKit: true,
		reason: "README 13: the automatic ARGs follow current BuildKit: a global ARG that names one without a value " +
			"keeps the automatic value, and TARGETSTAGE is defined; BuildKit v0.8 makes the first empty and lacks the second",
		match: e2eInstrAutomaticArgEmpty,
	},
}

// e2eInstrHistoryText recognises difference 11 exactly: the reference's created_by is
// what BuildKit v0.8 writes for the same instruction whose current form dfbuild wrote.
func e2eInstrHistoryText(c *e2eInstrCase, d e2eInstrDiff) bool {
	if d.what != "created_by" {
		return false
	}
	switch {
	case strings.HasPrefix(d.ours, "EXPOSE [") && strings.HasPrefix(d.ref, "EXPOSE map["):
		// current: EXPOSE [80/tcp 81/udp]; v0.8: EXPOSE map[80/tcp:{} 81/udp:{}]
		ports := strings.Fields(strings.TrimSuffix(strings.TrimPrefix(d.ours, "EXPOSE ["), "]"))
		slices.Sort(ports)
		ports = slices.Compact(ports)
		for i := range ports {
			ports[i] += ":{}"
		}
		return d.ref == "EXPOSE map["+strings.Join(ports, " ")+"]"
	case strings.HasPrefix(d.ours, "HEALTHCHECK {") && strings.HasPrefix(d.ref, "HEALTHCHECK &{"):
		h, ok := e2eInstrParseOldHealthcheck(strings.TrimPrefix(d.ref, "HEALTHCHECK "))
		return ok && d.ours == "HEALTHCHECK "+fmt.Sprintf("%+v", h)
	case strings.HasPrefix(d.ours, "ARG ") && strings.HasPrefix(d.ref, "ARG "):
		return e2eInstrArgText(c, strings.TrimPrefix(d.ours, "ARG "), strings.TrimPrefix(d.ref, "ARG "))
	case strings.HasPrefix(d.ours, "COPY ") || strings.HasPrefix(d.ours, "ADD "):
		// v0.8 leaves --chown and --chmod out (as e2eChownKnown accepts too).
		return d.ours != d.ref && regexp.MustCompile(` --ch(own|mod)=\S+`).ReplaceAllString(d.ours, "") == d.ref
	}
	return false
}

// e2eInstrHealthcheck prints, with %+v, as current BuildKit's history does
// (dockerspec.HealthcheckConfig).
type e2eInstrHealthcheck struct {
	Test          []string
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

// e2eInstrParseOldHealthcheck reads BuildKit v0.8's `&{["CMD-SHELL" "x"] "5s" "3s"
// "1m0s" ''}`: %q of a pointer to {Test, Interval, Timeout, StartPeriod, Retries}.
func e2eInstrParseOldHealthcheck(s string) (e2eInstrHealthcheck, bool) {
	var h e2eInstrHealthcheck
	m := regexp.MustCompile(`^&\{\[(.*)\] "([^"]*)" "([^"]*)" "([^"]*)" ('(?:[^'\\]|\\.)*')\}$`).FindStringSubmatch(s)
	if m == nil {
		return h, false
	}
	rest := strings.TrimSpace(m[1])
	for rest != "" {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return h, false
		}
		v, _ := strconv.Unquote(q)
		h.Test = append(h.Test, v)
		rest = strings.TrimSpace(rest[len(q):])
	}
	var err error
	for i, p := range []*time.Duration{&h.Interval, &h.Timeout, &h.StartPeriod} {
		if *p, err = time.ParseDuration(m[2+i]); err != nil {
			return h, false
		}
	}
	r, err := strconv.Unquote(m[5])
	if err != nil || len([]rune(r)) != 1 {
		return h, false
	}
	h.Retries = int([]rune(r)[0])
	return h, true
}

// e2eInstrArgText recognises the ARG part of difference 11: the same names in the
// same order; where the texts differ, BuildKit v0.8 wrote the declaration (a name
// alone, or its default) and dfbuild the value in effect (inherited, or a build
// arg).
func e2eInstrArgText(c *e2eInstrCase, ours, ref string) bool {
	a, b := e2eInstrArgWords(ours), e2eInstrArgWords(ref)
	if len(a) != len(b) {
		return false
	}
	buildArgs := map[string]string{}
	for _, ba := range c.buildArgs {
		k, v, _ := strings.Cut(ba, "=")
		buildArgs[k] = v
	}
	for i := range a {
		if a[i] == b[i] {
			continue
		}
		ka, va, hasA := strings.Cut(a[i], "=")
		kb, _, hasB := strings.Cut(b[i], "=")
		switch {
		case ka != kb || !hasA:
			return false
		case !hasB: // v0.8: the name alone
		case buildArgs[ka] == va: // v0.8: the default, dfbuild: the build arg
		default:
			return false
		}
	}
	return true
}

// e2eInstrArgWords splits "a=1 b c=two words" at the names: a word that looks like
// NAME or NAME=... starts a new one.
func e2eInstrArgWords(s string) []string {
	var words []string
	name := regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(=|$)`)
	for _, w := range strings.Split(s, " ") {
		if len(words) == 0 || name.MatchString(w) {
			words = append(words, w)
		} else {
			words[len(words)-1] += " " + w
		}
	}
	return words
}

// e2eInstrAutomaticValues are the values the automatic ARGs can have in a case: the
// machine's platform, and for TARGETSTAGE a stage name or "default".
func e2eInstrAutomaticValues(c *e2eInstrCase) []string {
	p := interp.HostPlatform()
	values := []string{p.OS, p.Arch, p.Variant, p.String(), "default"}
	for _, m := range regexp.MustCompile(`(?im)^\s*FROM\s.*\sAS\s+(\S+)\s*$`).FindAllStringSubmatch(c.dockerfile, -1) {
		values = append(values, strings.ToLower(m[1]))
	}
	return values
}

// e2eInstrAutomaticArgEmpty recognises difference 13: in Env, or in the created_by of
// ENV and ARG, the reference has an empty value where dfbuild has the value of an
// automatic ARG, and nothing else differs.
func e2eInstrAutomaticArgEmpty(c *e2eInstrCase, d e2eInstrDiff) bool {
	values := e2eInstrAutomaticValues(c)
	same := func(a, b string) bool {
		if a == b {
			return true
		}
		ka, va, _ := strings.Cut(a, "=")
		kb, vb, hasB := strings.Cut(b, "=")
		return ka == kb && (vb == "" || !hasB) && slices.Contains(values, va)
	}
	var a, b []string
	switch {
	case d.what == "Config.Env" || d.what == "config.Env":
		if json.Unmarshal([]byte(d.ours), &a) != nil || json.Unmarshal([]byte(d.ref), &b) != nil {
			return false
		}
	case d.what == "created_by" && (strings.HasPrefix(d.ours, "ENV ") || strings.HasPrefix(d.ours, "ARG ")):
		a, b = e2eInstrArgWords(d.ours[4:]), e2eInstrArgWords(d.ref[4:])
		if d.ours[:4] != d.ref[:4] {
			return false
		}
	default:
		return false
	}
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !same(a[i], b[i]) {
			return false
		}
	}
	return true
}

// e2eInstrVerdict fails t with every difference that no documented difference
// accounts for, logs the ones that are accounted for, and fails when a difference
// the case declares did not occur although it applies to this reference.
func e2eInstrVerdict(t *testing.T, env *e2eInstrEnv, c *e2eInstrCase, diffs []e2eInstrDiff) {
	t.Helper()
	seen := map[string]bool{}
	var bad []string
	accepted := map[string][]string{}
	candidates := slices.Clone(c.differs)
	for _, id := range slices.Sorted(maps.Keys(e2eInstrDifferences)) {
		if e2eInstrDifferences[id].ambient && !slices.Contains(candidates, id) {
			candidates = append(candidates, id)
		}
	}
	for _, d := range diffs {
		ok := false
		for _, id := range candidates {
			diff := e2eInstrDifferences[id]
			if diff.applies(env.builder) && diff.match(c, d) {
				seen[id] = true
				accepted[id] = append(accepted[id], d.String())
				ok = true
				break
			}
		}
		if !ok {
			bad = append(bad, d.String())
		}
	}
	for _, id := range slices.Sorted(maps.Keys(accepted)) {
		t.Logf("documented difference %s (%s):\n  %s", id, e2eInstrDifferences[id].reason, strings.Join(accepted[id], "\n  "))
	}
	for _, id := range c.differs {
		diff := e2eInstrDifferences[id]
		switch {
		case seen[id]:
		case diff.applies(env.builder):
			t.Errorf("the case declares difference %s (%s), and it did not occur", id, diff.reason)
		default:
			t.Logf("difference %s does not apply to this reference (%s build, Engine %s)", id, env.builder.kind, env.builder.engine)
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d differences from the reference:\n  %s", len(bad), strings.Join(bad, "\n  "))
	}
}
