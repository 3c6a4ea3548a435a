//go:build linux

package main

// Helpers of the end-to-end tests in e2e_test.go: gating on the tools they need,
// running commands, the busybox root filesystem tarball, reading image archives and
// exported filesystems, and comparing trees. Every name starts with "e2e" so that
// nothing collides with the package's other tests.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

// ---- gating ------------------------------------------------------------------------

// The gating itself (CI=true turns a skip into a failure, -short skips outside CI)
// is imagetest's: imagetest.Require, imagetest.SkipShort, imagetest.RequireDocker.

var e2ePodmanProbe, e2eSkopeoProbe, e2eBusyboxProbe imagetest.Probe

// requireDocker skips the test unless a Docker daemon answers (docker info), or
// fails it under CI=true. It also skips in -short mode outside CI.
func requireDocker(t *testing.T) {
	t.Helper()
	imagetest.RequireDocker(t)
}

// requirePodman skips the test without a working podman, or fails it under CI=true.
func requirePodman(t *testing.T) {
	t.Helper()
	imagetest.Require(t, "podman", e2ePodmanProbe.Check(func() error { return imagetest.ProbeCmd("podman", "--version") }))
}

// requireSkopeo skips the test without a working skopeo, or fails it under CI=true.
func requireSkopeo(t *testing.T) {
	t.Helper()
	imagetest.Require(t, "skopeo", e2eSkopeoProbe.Check(func() error { return imagetest.ProbeCmd("skopeo", "--version") }))
}

var e2eBusyboxBytes []byte

// e2eBusybox returns the bytes of a statically linked busybox (Debian's
// busybox-static installs one as /bin/busybox); the images run it with no libc.
func e2eBusybox(t *testing.T) []byte {
	t.Helper()
	imagetest.Require(t, "a static busybox (apt-get install busybox-static)", e2eBusyboxProbe.Check(func() error {
		p, err := exec.LookPath("busybox")
		if _, serr := os.Stat("/bin/busybox"); serr == nil {
			p, err = "/bin/busybox", nil
		}
		if err != nil {
			return err
		}
		f, err := elf.Open(p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		defer f.Close()
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				return fmt.Errorf("%s is dynamically linked; the images need a static one", p)
			}
		}
		e2eBusyboxBytes, err = os.ReadFile(p)
		return err
	}))
	return e2eBusyboxBytes
}

// ---- commands ----------------------------------------------------------------------

// e2eExec runs a command with extra environment variables and returns its stdout and
// stderr. Commands are killed after three minutes.
func e2eExec(env []string, stdin io.Reader, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = stdin
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\nstderr:\n%s", name, strings.Join(args, " "), err, e.String())
	}
	return o.String(), e.String(), err
}

// e2eMust runs a command and fails the test if it fails; it returns stdout.
func e2eMust(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, _, err := e2eExec(env, nil, name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// e2eDocker runs the docker client found in PATH.
func e2eDocker(t *testing.T, args ...string) string {
	t.Helper()
	return e2eMust(t, nil, "docker", args...)
}

// e2eName makes names unique to this test process, so that two runs on one daemon,
// or other users of it, never see each other's images: dfbuild-e2e-PID/NAME.
func e2eName(name string) string {
	return fmt.Sprintf("dfbuild-e2e-%d/%s", os.Getpid(), name)
}

var e2eCounter atomic.Int64

// e2eRemoveImagesAfter untags the images when the test ends. Removal is by name only,
// never by ID: an image with other names (someone else's) keeps them.
func e2eRemoveImagesAfter(t *testing.T, refs ...string) {
	t.Cleanup(func() {
		args := append([]string{"rmi", "-f"}, refs...)
		if _, _, err := e2eExec(nil, nil, "docker", args...); err != nil {
			t.Logf("cleanup: %v", err)
		}
	})
}

// e2eDockerLoad loads an archive and checks that docker reports the expected tags.
func e2eDockerLoad(t *testing.T, archive string, tags ...string) {
	t.Helper()
	e2eRemoveImagesAfter(t, tags...)
	out := e2eDocker(t, "load", "-i", archive)
	for _, tag := range tags {
		if !strings.Contains(out, "Loaded image: "+tag+"\n") {
			t.Errorf("docker load -i %s: no \"Loaded image: %s\" in its output:\n%s", filepath.Base(archive), tag, out)
		}
	}
}

// e2eDockerRun runs a container, removes it, and returns its stdout. Anything on
// stderr that looks like a warning fails the test (docker warns, for instance, about
// a platform it cannot match).
func e2eDockerRun(t *testing.T, args ...string) string {
	t.Helper()
	args = append([]string{"run", "--rm", "--network", "none"}, args...)
	out, errOut, err := e2eExec(nil, nil, "docker", args...)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(strings.ToLower(errOut), "warning") {
		t.Errorf("docker %s warned:\n%s", strings.Join(args, " "), errOut)
	}
	return out
}

// e2eImageInspect returns docker image inspect's JSON for one image.
func e2eImageInspect(t *testing.T, ref string) e2eInspect {
	t.Helper()
	var v []e2eInspect
	if err := json.Unmarshal([]byte(e2eDocker(t, "image", "inspect", ref)), &v); err != nil || len(v) != 1 {
		t.Fatalf("docker image inspect %s: %v (%d results)", ref, err, len(v))
	}
	return v[0]
}

type e2eInspect struct {
	ID           string `json:"Id"`
	Architecture string
	Os           string
	Variant      string
	Config       map[string]any
	RootFS       struct{ Layers []string }
}

// ---- BuildKit ----------------------------------------------------------------------

// e2eBuilder is the docker command line that builds the reference images.
type e2eBuilder struct {
	argv   []string // the build command up to its options, e.g. docker buildx build --load
	env    []string
	kind   string // "buildx", "buildkit" or "classic"
	engine string // the Docker Engine's version
}

// oldBuildKit reports whether the reference is the BuildKit built into a Docker
// Engine older than 23 (20.10 has BuildKit v0.8), which predates some behaviour of
// current BuildKit that dfbuild follows.
func (b e2eBuilder) oldBuildKit() bool {
	major, err := strconv.Atoi(strings.SplitN(b.engine, ".", 2)[0])
	return b.kind == "buildkit" && err == nil && major < 23
}

var (
	e2eBuilderOnce   sync.Once
	e2eBuilderFound  e2eBuilder
	e2eBuilderReason string
)

// e2eFindBuilder picks the reference builder: docker buildx if it works; else a
// docker client older than 23 (whose "docker build" can use the engine's built-in
// BuildKit with DOCKER_BUILDKIT=1), looking at /usr/bin/docker explicitly; else the
// classic builder, which is logged loudly because it differs from BuildKit (see
// semantics.md §5). DFBUILD_E2E_BUILDER=classic forces the classic builder, to see
// how it differs.
func e2eFindBuilder(t *testing.T) e2eBuilder {
	t.Helper()
	e2eBuilderOnce.Do(func() {
		defer func() {
			out, _, _ := e2eExec(nil, nil, "docker", "version", "--format", "{{.Server.Version}}")
			e2eBuilderFound.engine = strings.TrimSpace(out)
		}()
		if os.Getenv("DFBUILD_E2E_BUILDER") == "classic" {
			e2eBuilderFound = e2eBuilder{argv: []string{"docker", "build"}, env: []string{"DOCKER_BUILDKIT=0"}, kind: "classic"}
			e2eBuilderReason = "the CLASSIC builder, as DFBUILD_E2E_BUILDER=classic asks"
			return
		}
		if imagetest.ProbeCmd("docker", "buildx", "version") == nil {
			e2eBuilderFound = e2eBuilder{argv: []string{"docker", "buildx", "build", "--load"}, kind: "buildx"}
			e2eBuilderReason = "docker buildx"
			return
		}
		candidates := []string{}
		if p, err := exec.LookPath("docker"); err == nil {
			candidates = append(candidates, p)
		}
		candidates = append(candidates, "/usr/bin/docker")
		for _, c := range candidates {
			out, _, err := e2eExec(nil, nil, c, "version", "--format", "{{.Client.Version}}")
			if err != nil {
				continue
			}
			v := strings.TrimSpace(out)
			major, err := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
			if err == nil && major < 23 {
				e2eBuilderFound = e2eBuilder{argv: []string{c, "build"}, env: []string{"DOCKER_BUILDKIT=1"}, kind: "buildkit"}
				e2eBuilderReason = fmt.Sprintf("DOCKER_BUILDKIT=1 %s build (client %s)", c, v)
				return
			}
		}
		e2eBuilderFound = e2eBuilder{argv: []string{"docker", "build"}, env: []string{"DOCKER_BUILDKIT=0"}, kind: "classic"}
		e2eBuilderReason = "the CLASSIC builder"
	})
	if e2eBuilderFound.kind == "classic" {
		t.Log("**************************************************************************")
		t.Log("* WARNING: no BuildKit-capable docker client (no buildx, no client < 23). *")
		t.Log("* The reference images come from the CLASSIC builder, which differs from  *")
		t.Log("* BuildKit in places (semantics.md §5); differences may be the builder's. *")
		t.Log("**************************************************************************")
	} else {
		t.Logf("reference builder: %s, Docker Engine %s", e2eBuilderReason, e2eBuilderFound.engine)
	}
	return e2eBuilderFound
}

// build builds dockerfile (a path inside ctxDir) as tag.
func (b e2eBuilder) build(t *testing.T, ctxDir, dockerfile, tag string) {
	t.Helper()
	e2eRemoveImagesAfter(t, tag)
	args := append(append([]string{}, b.argv[1:]...), "-f", dockerfile, "-t", tag, ctxDir)
	if _, _, err := e2eExec(b.env, nil, b.argv[0], args...); err != nil {
		t.Fatalf("reference build: %v", err)
	}
}

// ---- dfbuild -----------------------------------------------------------------------

// e2eDFBuild runs dfbuild in-process, validates the archive it wrote with
// imagetest.Validate, and returns the image ID dfbuild printed.
func e2eDFBuild(t *testing.T, o buildOptions) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr, o); err != nil {
		t.Fatalf("dfbuild -f %s -o %s %s: %v\nstderr:\n%s", o.file, o.output, o.contextDir, err, stderr.String())
	}
	imagetest.Validate(t, o.output)
	for _, line := range strings.Split(stdout.String(), "\n") {
		if id, ok := strings.CutPrefix(line, "Image "); ok {
			return id
		}
	}
	t.Fatalf("dfbuild printed no image ID:\n%s", stdout.String())
	return ""
}

// e2eNoEpoch unsets SOURCE_DATE_EPOCH for the test: the in-process builds read it,
// and a value inherited from the caller's shell would change their times.
func e2eNoEpoch(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "")
}

// e2eParallel is e2eNoEpoch for a test that changes no other environment variable,
// and runs the test in parallel with the other end-to-end tests, so that the time
// one spends waiting for the engine goes on another's work. Go runs a parallel test
// only after every sequential one has ended, so the environment it reads is the
// process's own. If the caller's shell sets SOURCE_DATE_EPOCH, t.Setenv must unset
// it, and a test that sets its environment cannot be parallel: it then runs alone.
func e2eParallel(t *testing.T) {
	if os.Getenv("SOURCE_DATE_EPOCH") != "" {
		e2eNoEpoch(t)
		return
	}
	t.Parallel()
}

// e2eGoBuild compiles a Go package or file into dir with CGO_ENABLED=0 and returns
// the path of the binary.
func e2eGoBuild(t *testing.T, dir, name, pkg string) string {
	t.Helper()
	out := filepath.Join(dir, name)
	e2eMust(t, []string{"CGO_ENABLED=0"}, "go", "build", "-trimpath", "-o", out, pkg)
	return out
}

// ---- files -------------------------------------------------------------------------

// e2eWrite writes a file with an exact mode (no umask) and mtime.
func e2eWrite(t *testing.T, p, content string, mode os.FileMode, mtime time.Time) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	e2eTouch(t, p, mtime)
}

// e2eMkdir creates a directory with an exact mode; set its mtime after its contents.
func e2eMkdir(t *testing.T, p string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// e2eSymlink creates a symlink with a given mtime.
func e2eSymlink(t *testing.T, target, p string, mtime time.Time) {
	t.Helper()
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
	e2eTouch(t, p, mtime)
}

// e2eTouch sets the mtime (and atime) of p without following a final symlink.
func e2eTouch(t *testing.T, p string, mtime time.Time) {
	t.Helper()
	name, err := syscall.BytePtrFromString(p)
	if err != nil {
		t.Fatal(err)
	}
	ts := [2]syscall.Timespec{syscall.NsecToTimespec(mtime.UnixNano()), syscall.NsecToTimespec(mtime.UnixNano())}
	atFDCWD := -100
	const atSymlinkNofollow = 0x100
	if _, _, errno := syscall.Syscall6(syscall.SYS_UTIMENSAT, uintptr(atFDCWD), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(&ts[0])), atSymlinkNofollow, 0, 0); errno != 0 {
		t.Fatalf("utimensat %s: %v", p, errno)
	}
}

func e2eCopyFile(t *testing.T, src, dst string, mode os.FileMode, mtime time.Time) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	e2eWrite(t, dst, string(b), mode, mtime)
}

func e2eSHA256(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func e2eFileSHA256(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return e2eSHA256(b)
}

// ---- the busybox root filesystem ---------------------------------------------------

// e2eRootfsTime is the mtime of every entry of the busybox tarball.
var e2eRootfsTime = time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)

// e2eBusyboxApplets are the symlinks to busybox in /bin.
var e2eBusyboxApplets = []string{"cat", "echo", "env", "id", "ls", "sh", "true"}

// e2eRootfsTar returns a deterministic busybox root filesystem as a tar: bin/busybox,
// applet symlinks, etc/passwd and etc/group, tmp at 1777 and an empty mnt; explicit
// directory entries, numeric root ownership, no user or group names, one mtime.
func e2eRootfsTar(busybox []byte) []byte {
	type ent struct {
		name, body, link string
		typ              byte
		mode             int64
	}
	ents := []ent{
		{name: "bin/", typ: tar.TypeDir, mode: 0o755},
		{name: "bin/busybox", typ: tar.TypeReg, mode: 0o755, body: string(busybox)},
	}
	for _, a := range e2eBusyboxApplets {
		ents = append(ents, ent{name: "bin/" + a, typ: tar.TypeSymlink, mode: 0o777, link: "busybox"})
	}
	ents = append(ents,
		ent{name: "etc/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "etc/group", typ: tar.TypeReg, mode: 0o644, body: "root:x:0:\nnogroup:x:65534:\n"},
		ent{name: "etc/passwd", typ: tar.TypeReg, mode: 0o644, body: "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"},
		ent{name: "mnt/", typ: tar.TypeDir, mode: 0o755},
		ent{name: "tmp/", typ: tar.TypeDir, mode: 0o1777},
	)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Linkname: e.link,
			Size: int64(len(e.body)), ModTime: e2eRootfsTime, Format: tar.FormatPAX}
		if err := tw.WriteHeader(h); err != nil {
			panic(err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			panic(err)
		}
	}
	if err := tw.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// e2eGzip compresses deterministically (Go's gzip header has no name and mtime 0).
func e2eGzip(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// ---- archives and layers -----------------------------------------------------------

// e2eEntry is one path of a layer, an exported filesystem or a flattened image.
type e2eEntry struct {
	Type   string // d, f, l (symlink), h (hard link), c, b, p
	Mode   int64  // permission and special bits
	UID    int
	GID    int
	Size   int64
	SHA    string // sha256 of a regular file's contents
	Small  []byte // the contents of a regular file of up to e2eSmall bytes
	Link   string // symlink target, hard link name (absolute), or "major,minor"
	MTime  time.Time
	Xattrs string // the SCHILY.xattr records, sorted, "name=value" joined by ","
	Index  int    // position in the tar
}

const e2eSmall = 64

func (e e2eEntry) String() string {
	s := fmt.Sprintf("%s %04o %d:%d size=%d mtime=%s", e.Type, e.Mode, e.UID, e.GID, e.Size, e.MTime.UTC().Format(time.RFC3339))
	if e.Link != "" {
		s += " -> " + e.Link
	}
	if e.SHA != "" {
		s += " sha256:" + e.SHA[:12]
	}
	if e.Xattrs != "" {
		s += " xattrs:" + e.Xattrs
	}
	return s
}

// e2eCleanName turns a tar name into an absolute, clean path ("/" for the root).
func e2eCleanName(n string) string { return path.Clean("/" + n) }

// e2eTree is a filesystem: clean absolute paths ("/a/b") to entries, and their order.
type e2eTree struct {
	Entries map[string]e2eEntry
	Order   []string
}

// e2eReadTree reads a tar stream, hashing file contents as they go by, so that a
// layer or an export of gigabytes is never held in memory.
func e2eReadTree(r io.Reader) (*e2eTree, error) {
	tree := &e2eTree{Entries: map[string]e2eEntry{}}
	tr := tar.NewReader(r)
	for i := 0; ; i++ {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return tree, nil
		}
		if err != nil {
			return nil, err
		}
		e := e2eEntry{Mode: h.Mode & 0o7777, UID: h.Uid, GID: h.Gid, MTime: h.ModTime, Index: i}
		switch h.Typeflag {
		case tar.TypeDir:
			e.Type = "d"
		case tar.TypeReg:
			e.Type, e.Size = "f", h.Size
			s := sha256.New()
			var small bytes.Buffer
			w := io.Writer(s)
			if h.Size <= e2eSmall {
				w = io.MultiWriter(s, &small)
			}
			if _, err := io.Copy(w, tr); err != nil {
				return nil, err
			}
			e.SHA = hex.EncodeToString(s.Sum(nil))
			if h.Size <= e2eSmall {
				e.Small = append([]byte{}, small.Bytes()...)
			}
		case tar.TypeSymlink:
			e.Type, e.Link = "l", h.Linkname
		case tar.TypeLink:
			e.Type, e.Link = "h", e2eCleanName(h.Linkname)
		case tar.TypeChar:
			e.Type, e.Link = "c", fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor)
		case tar.TypeBlock:
			e.Type, e.Link = "b", fmt.Sprintf("%d,%d", h.Devmajor, h.Devminor)
		case tar.TypeFifo:
			e.Type = "p"
		default:
			e.Type = fmt.Sprintf("?%c", h.Typeflag)
		}
		var xattrs []string
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xattrs = append(xattrs, name+"="+strconv.Quote(v))
			}
		}
		slices.Sort(xattrs)
		e.Xattrs = strings.Join(xattrs, ",")
		name := e2eCleanName(h.Name)
		if _, dup := tree.Entries[name]; dup {
			return nil, fmt.Errorf("duplicate path %s in the tar", name)
		}
		tree.Entries[name] = e
		tree.Order = append(tree.Order, name)
	}
}

// e2eImage is one image of a docker-archive (ours or docker save's legacy one).
type e2eImage struct {
	RepoTags   []string
	ConfigPath string
	ConfigRaw  []byte
	Config     e2eConfig
	LayerPaths []string
	Layers     [][]byte // uncompressed layer tars, in order
}

type e2eConfig struct {
	Architecture string
	OS           string `json:"os"`
	Variant      string
	Created      *time.Time
	Config       map[string]any
	History      []e2eHistory
	RootFS       struct {
		Type    string
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

type e2eHistory struct {
	Created    *time.Time
	CreatedBy  string `json:"created_by"`
	Comment    string
	EmptyLayer bool `json:"empty_layer"`
}

// e2eArchive is a whole image archive held in memory (the tests' archives are small).
type e2eArchive struct {
	Files  map[string][]byte
	Order  []string
	Images []e2eImage
}

// e2eReadArchive reads a docker-archive through its manifest.json.
func e2eReadArchive(t *testing.T, file string) *e2eArchive {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	a := &e2eArchive{Files: map[string][]byte{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("reading %s: %v", file, err)
		}
		name := strings.TrimPrefix(path.Clean(h.Name), "./")
		a.Order = append(a.Order, name)
		switch h.Typeflag {
		case tar.TypeReg:
			b, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			a.Files[name] = b
		case tar.TypeSymlink: // docker save links repeated layers
			a.Files[name] = nil
			if b, ok := a.Files[path.Join(path.Dir(name), h.Linkname)]; ok {
				a.Files[name] = b
			}
		}
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(a.Files["manifest.json"], &manifest); err != nil {
		t.Fatalf("%s: manifest.json: %v", file, err)
	}
	for _, m := range manifest {
		img := e2eImage{RepoTags: m.RepoTags, ConfigPath: m.Config, ConfigRaw: a.Files[m.Config], LayerPaths: m.Layers}
		if err := json.Unmarshal(img.ConfigRaw, &img.Config); err != nil {
			t.Fatalf("%s: config %s: %v", file, m.Config, err)
		}
		for _, l := range m.Layers {
			b, ok := a.Files[l]
			if !ok {
				t.Fatalf("%s: layer %s is missing", file, l)
			}
			b, err := e2eMaybeGunzip(b)
			if err != nil {
				t.Fatalf("%s: layer %s: %v", file, l, err)
			}
			img.Layers = append(img.Layers, b)
		}
		a.Images = append(a.Images, img)
	}
	return a
}

func e2eMaybeGunzip(b []byte) ([]byte, error) {
	if len(b) < 2 || b[0] != 0x1f || b[1] != 0x8b {
		return b, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}

// e2eLayerTree reads one layer tar.
func e2eLayerTree(t *testing.T, layer []byte) (map[string]e2eEntry, []string) {
	t.Helper()
	tree, err := e2eReadTree(bytes.NewReader(layer))
	if err != nil {
		t.Fatalf("reading a layer: %v", err)
	}
	return tree.Entries, tree.Order
}

// e2eDockerSave saves an image with docker save and reads it back.
func e2eDockerSave(t *testing.T, ref string) e2eImage {
	t.Helper()
	file := filepath.Join(t.TempDir(), "saved.tar")
	e2eDocker(t, "save", "-o", file, ref)
	a := e2eReadArchive(t, file)
	if len(a.Images) != 1 {
		t.Fatalf("docker save %s: %d images", ref, len(a.Images))
	}
	return a.Images[0]
}

// e2eExport creates a container from the image (without starting it) and reads
// docker export's tar of its filesystem.
func e2eExport(t *testing.T, ref string) map[string]e2eEntry {
	t.Helper()
	name := fmt.Sprintf("dfbuild-e2e-%d-%d", os.Getpid(), e2eCounter.Add(1))
	tree, err := e2eExportTree(ref, name)
	if err != nil {
		t.Fatal(err)
	}
	return tree.Entries
}

// e2eExportTree creates the container named container of the image (never started:
// the entrypoint is replaced so that images without a command can be created too),
// streams docker export of it into a tree, and removes the container.
func e2eExportTree(ref, container string) (*e2eTree, error) {
	if err := e2eEngineCreate(ref, container); err != nil {
		return nil, err
	}
	defer e2eEngineRemove(container)
	var tree *e2eTree
	err := e2eEngineExport(container, func(r io.Reader) (err error) {
		if tree, err = e2eReadTree(r); err != nil {
			err = fmt.Errorf("docker export %s: %w", ref, err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	return tree, nil
}

// ---- comparing ---------------------------------------------------------------------

// e2eMtimePolicy decides about an mtime difference: "" makes it a failure, any other
// text is the reason it is only noted.
type e2eMtimePolicy func(p string, ours, theirs e2eEntry) string

// e2eCompareTrees compares two trees path by path on type, mode with special bits,
// uid, gid, size, content and link target, and on mtime unless the policy excuses it.
// It returns the differences, and the excused mtime differences by reason.
func e2eCompareTrees(ours, theirs map[string]e2eEntry, oursName, theirsName string, policy e2eMtimePolicy) (diffs []string, notes map[string][]string) {
	notes = map[string][]string{}
	paths := map[string]bool{}
	for p := range ours {
		paths[p] = true
	}
	for p := range theirs {
		paths[p] = true
	}
	sorted := make([]string, 0, len(paths))
	for p := range paths {
		sorted = append(sorted, p)
	}
	sort.Strings(sorted)
	for _, p := range sorted {
		a, inA := ours[p]
		b, inB := theirs[p]
		switch {
		case !inA:
			diffs = append(diffs, fmt.Sprintf("%s: only in %s: %v", p, theirsName, b))
			continue
		case !inB:
			diffs = append(diffs, fmt.Sprintf("%s: only in %s: %v", p, oursName, a))
			continue
		}
		var fields []string
		if a.Type != b.Type {
			fields = append(fields, fmt.Sprintf("type %s vs %s", a.Type, b.Type))
		}
		if a.Mode != b.Mode {
			fields = append(fields, fmt.Sprintf("mode %04o vs %04o", a.Mode, b.Mode))
		}
		if a.UID != b.UID || a.GID != b.GID {
			fields = append(fields, fmt.Sprintf("owner %d:%d vs %d:%d", a.UID, a.GID, b.UID, b.GID))
		}
		if a.Size != b.Size {
			fields = append(fields, fmt.Sprintf("size %d vs %d", a.Size, b.Size))
		}
		if a.SHA != b.SHA {
			fields = append(fields, "content differs")
		}
		if a.Link != b.Link {
			fields = append(fields, fmt.Sprintf("link %q vs %q", a.Link, b.Link))
		}
		if !a.MTime.Equal(b.MTime) {
			msg := fmt.Sprintf("mtime %s vs %s", a.MTime.UTC().Format(time.RFC3339Nano), b.MTime.UTC().Format(time.RFC3339Nano))
			if reason := policy(p, a, b); reason != "" {
				notes[reason] = append(notes[reason], p+": "+msg)
			} else {
				fields = append(fields, msg)
			}
		}
		if len(fields) > 0 {
			diffs = append(diffs, fmt.Sprintf("%s: %s (%s vs %s)", p, strings.Join(fields, "; "), oursName, theirsName))
		}
	}
	return diffs, notes
}

// e2eDeepEqualJSON compares two decoded JSON values.
func e2eDeepEqualJSON(a, b any) bool { return reflect.DeepEqual(a, b) }

func e2eJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// e2eSortedKeys returns the union of two maps' keys, sorted.
func e2eSortedKeys(a, b map[string]any) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
