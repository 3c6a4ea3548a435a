//go:build linux

package main

// Helpers of the COPY/ADD differential suite (e2e_copy_test.go): reading the cases of
// testdata/copy, making their build contexts (symlinks, hard links, modes, owners,
// sparse files, sockets, archives...), reading image archives and exported
// filesystems as streams, and listing a filesystem for the golden comparisons.
// Every name starts with "cp" so that nothing collides with the other e2e files.

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/rogpeppe/go-internal/txtar"
	"github.com/ulikunitz/xz"

	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

// ---- the cases ----------------------------------------------------------------------

// cpCase is one file of testdata/copy. Its comment holds description lines (starting
// with "#") and directives, one a line:
//
//	rules C6 C8 ...        the rules of semantics.md §1 the case covers
//	buildkit testName ...  the BuildKit integration tests (§4.2) it reproduces
//	differs ID ...         deliberate differences from the engine it must show (cpDifferences)
//	engine-lacks REASON    the engine's BuildKit cannot build it: dfbuild's result is
//	                       checked against want/listing and want/history instead
//	error [TEXT]           dfbuild must fail, with an error containing TEXT if given (and
//	                       the reference must fail too, unless a difference says otherwise)
//	flatten                read dfbuild's layers from its archive instead of loading
//	                       it into docker (for the 3 GiB case)
//	last-modified PATH T   the Last-Modified time the HTTP server gives for PATH
//
// and the directives that make the build context, applied in order after the
// context/ files and archives are written:
//
//	symlink PATH TARGET    hardlink PATH EXISTING   mkdir PATH    fifo PATH
//	socket PATH            chardev MAJOR,MINOR PATH sparse SIZE PATH (a hole with
//	"head" at offset 0 and "tail" at the end; SIZE takes KiB, MiB, GiB)
//	deep N PATH            N nested directories d00/d01/... under PATH, a file "leaf"
//	                       at the bottom
//	chmod MODE PATH        octal, with special bits
//	chown UID:GID PATH     the owner in the context (BuildKit sends 0:0 regardless)
//	xattr PATH NAME VALUE  an extended attribute (VALUE may be Go-quoted)
//	mtime TIME PATH        RFC 3339 or Unix seconds; everything else gets e2eCtxTime
//
// Sections: Dockerfile; context/PATH (files of the build context, mode 0644);
// Dockerfile.dockerignore (put beside both Dockerfiles); archive/PATH (a tar written
// into the context, see cpMakeArchive); http/PATH and http-archive/PATH (files and
// archives an HTTP server on 127.0.0.1 serves at /PATH, "index" at /, for ADD; the
// Dockerfile and want/history name the server "{URL}"); want/listing and
// want/history (engine-lacks).
// "{c*N}" anywhere in the Dockerfile, a name or a directive stands for N times c.
type cpCase struct {
	Name, File  string
	Desc        []string
	Dockerfile  string
	Ignore      *string // Dockerfile.dockerignore
	Context     []txtar.File
	Archives    []txtar.File
	HTTP        map[string][]byte    // URL path to body, served to both builders
	LastMod     map[string]time.Time // URL path to its Last-Modified time
	Gen         [][]string           // context directives, in order
	Rules       []string
	BuildKit    []string
	Differs     []string
	EngineLacks string
	ExpectError bool   // dfbuild must fail
	Error       string // with an error containing this
	Flatten     bool
	WantListing *string
	WantHistory *string
}

var cpMacro = regexp.MustCompile(`\{([^{}*])\*(\d+)\}`)

// cpExpand replaces "{c*N}" by N times c.
func cpExpand(s string) string {
	return cpMacro.ReplaceAllStringFunc(s, func(m string) string {
		sub := cpMacro.FindStringSubmatch(m)
		n, _ := strconv.Atoi(sub[2])
		return strings.Repeat(sub[1], n)
	})
}

var cpGenArgs = map[string]int{"symlink": 2, "hardlink": 2, "mkdir": 1, "fifo": 1, "socket": 1, "chardev": 2,
	"sparse": 2, "deep": 2, "chmod": 2, "chown": 2, "xattr": 3, "mtime": 2}

// cpParseCase reads one case file.
func cpParseCase(file string) (*cpCase, error) {
	ar, err := txtar.ParseFile(file)
	if err != nil {
		return nil, err
	}
	c := &cpCase{Name: strings.TrimSuffix(filepath.Base(file), ".txtar"), File: file}
	for i, line := range strings.Split(string(ar.Comment), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "#") {
			c.Desc = append(c.Desc, strings.TrimSpace(strings.TrimPrefix(line, "#")))
			continue
		}
		f := strings.Fields(cpExpand(line))
		rest := strings.TrimSpace(strings.TrimPrefix(line, f[0]))
		bad := func(why string) error { return fmt.Errorf("%s:%d: %s: %q", file, i+1, why, line) }
		switch f[0] {
		case "rules":
			c.Rules = append(c.Rules, f[1:]...)
		case "buildkit":
			c.BuildKit = append(c.BuildKit, f[1:]...)
		case "differs":
			c.Differs = append(c.Differs, f[1:]...)
		case "engine-lacks":
			if rest == "" {
				return nil, bad("engine-lacks needs a reason")
			}
			c.EngineLacks = rest
		case "error":
			c.ExpectError, c.Error = true, cpExpand(rest)
		case "flatten":
			c.Flatten = true
		case "last-modified":
			if len(f) != 3 {
				return nil, bad("last-modified takes a URL path and a time")
			}
			tm, err := cpParseTime(f[2])
			if err != nil {
				return nil, bad(err.Error())
			}
			if c.LastMod == nil {
				c.LastMod = map[string]time.Time{}
			}
			c.LastMod[f[1]] = tm
		default:
			n, ok := cpGenArgs[f[0]]
			if !ok {
				return nil, bad("unknown directive (a description line starts with #)")
			}
			if len(f)-1 != n && !(f[0] == "xattr" && len(f) > 4) {
				return nil, bad(fmt.Sprintf("%s takes %d arguments", f[0], n))
			}
			if f[0] == "xattr" {
				// The value is the rest of the line.
				f = append(f[:3:3], strings.Join(f[3:], " "))
			}
			c.Gen = append(c.Gen, f)
		}
	}
	for _, f := range ar.Files {
		data := string(f.Data)
		switch {
		case f.Name == "Dockerfile":
			c.Dockerfile = cpExpand(data)
		case f.Name == "Dockerfile.dockerignore":
			c.Ignore = &data
		case strings.HasPrefix(f.Name, "context/"):
			c.Context = append(c.Context, txtar.File{Name: cpExpand(strings.TrimPrefix(f.Name, "context/")), Data: f.Data})
		case strings.HasPrefix(f.Name, "http/"), strings.HasPrefix(f.Name, "http-archive/"):
			name, isArchive := strings.CutPrefix(f.Name, "http-archive/")
			if !isArchive {
				name = strings.TrimPrefix(f.Name, "http/")
			}
			body := f.Data
			if isArchive {
				if body, err = cpMakeArchive(name, string(f.Data)); err != nil {
					return nil, fmt.Errorf("%s: %s: %v", file, f.Name, err)
				}
			}
			if name == "index" {
				name = ""
			}
			if c.HTTP == nil {
				c.HTTP = map[string][]byte{}
			}
			c.HTTP["/"+name] = body
		case strings.HasPrefix(f.Name, "archive/"):
			c.Archives = append(c.Archives, txtar.File{Name: cpExpand(strings.TrimPrefix(f.Name, "archive/")), Data: f.Data})
		case f.Name == "want/listing":
			data = cpExpand(data)
			c.WantListing = &data
		case f.Name == "want/history":
			data = cpExpand(data)
			c.WantHistory = &data
		default:
			return nil, fmt.Errorf("%s: unexpected section %q", file, f.Name)
		}
	}
	if c.Dockerfile == "" {
		return nil, fmt.Errorf("%s: no Dockerfile section", file)
	}
	if c.EngineLacks != "" && !c.ExpectError && c.WantListing == nil {
		return nil, fmt.Errorf("%s: an engine-lacks case needs want/listing or an error directive", file)
	}
	if c.EngineLacks == "" && (c.WantListing != nil || c.WantHistory != nil) {
		return nil, fmt.Errorf("%s: want/ sections belong to engine-lacks cases only", file)
	}
	return c, nil
}

// cpLoadCases reads every case of dir.
func cpLoadCases(dir string) ([]*cpCase, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.txtar"))
	if err != nil {
		return nil, err
	}
	var cases []*cpCase
	for _, f := range files {
		c, err := cpParseCase(f)
		if err != nil {
			return nil, err
		}
		cases = append(cases, c)
	}
	return cases, nil
}

// ---- making a build context -----------------------------------------------------------

// cpParseSize reads "3GiB", "10MiB", "4KiB" or a plain byte count.
func cpParseSize(s string) (int64, error) {
	mult := int64(1)
	for suffix, m := range map[string]int64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(s, suffix) {
			s, mult = strings.TrimSuffix(s, suffix), m
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	return n * mult, err
}

// cpParseTime reads RFC 3339 or Unix seconds.
func cpParseTime(s string) (time.Time, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Unix(n, 0).UTC(), nil
	}
	return time.Parse(time.RFC3339Nano, s)
}

// cpFileMode turns an octal mode with special bits into an os.FileMode.
func cpFileMode(s string) (os.FileMode, error) {
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("bad mode %q", s)
	}
	return imagetest.FileMode(m), nil
}

// cpWriteContext makes the case's build context in dir/ctx and returns its path.
func cpWriteContext(t *testing.T, c *cpCase, dir string) string {
	t.Helper()
	ctxDir := filepath.Join(dir, "ctx")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	p := func(rel string) string { return filepath.Join(ctxDir, filepath.FromSlash(rel)) }
	parent := func(rel string) {
		if err := os.MkdirAll(filepath.Dir(p(rel)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range c.Context {
		e2eWrite(t, p(f.Name), string(f.Data), 0o644, e2eCtxTime)
	}
	for _, a := range c.Archives {
		b, err := cpMakeArchive(a.Name, string(a.Data))
		if err != nil {
			t.Fatalf("%s: archive/%s: %v", c.File, a.Name, err)
		}
		e2eWrite(t, p(a.Name), string(b), 0o644, e2eCtxTime)
	}
	mtimes := map[string]time.Time{}
	var owners [][2]string
	for _, g := range c.Gen {
		var err error
		switch g[0] {
		case "symlink":
			parent(g[1])
			err = os.Symlink(g[2], p(g[1]))
		case "hardlink":
			parent(g[1])
			err = os.Link(p(g[2]), p(g[1]))
		case "mkdir":
			err = os.MkdirAll(p(g[1]), 0o755)
		case "fifo":
			parent(g[1])
			err = syscall.Mkfifo(p(g[1]), 0o644)
		case "chardev":
			parent(g[2])
			var major, minor uint32
			if _, err = fmt.Sscanf(g[1], "%d,%d", &major, &minor); err == nil {
				dev := (minor & 0xff) | ((major & 0xfff) << 8) | ((minor &^ 0xff) << 12)
				err = syscall.Mknod(p(g[2]), syscall.S_IFCHR|0o644, int(dev))
			}
		case "socket":
			parent(g[1])
			err = cpMakeSocket(p(g[1]))
		case "sparse":
			parent(g[2])
			err = cpMakeSparse(p(g[2]), g[1])
		case "deep":
			var n int
			if n, err = strconv.Atoi(g[1]); err == nil {
				d := p(g[2])
				for i := range n {
					d = filepath.Join(d, fmt.Sprintf("d%02d", i))
				}
				if err = os.MkdirAll(d, 0o755); err == nil {
					err = os.WriteFile(filepath.Join(d, "leaf"), []byte("at the bottom\n"), 0o644)
				}
			}
		case "chmod":
			var m os.FileMode
			if m, err = cpFileMode(g[1]); err == nil {
				err = os.Chmod(p(g[2]), m)
			}
		case "chown":
			owners = append(owners, [2]string{g[1], g[2]})
		case "xattr":
			err = syscall.Setxattr(p(g[1]), g[2], []byte(cpUnquote(g[3])), 0)
		case "mtime":
			var tm time.Time
			if tm, err = cpParseTime(g[1]); err == nil {
				mtimes[g[2]] = tm
			}
		}
		if err != nil {
			t.Fatalf("%s: %s: %v", c.File, strings.Join(g, " "), err)
		}
	}
	for _, o := range owners {
		var uid, gid int
		if _, err := fmt.Sscanf(o[0], "%d:%d", &uid, &gid); err != nil {
			t.Fatalf("%s: chown %s: %v", c.File, o[0], err)
		}
		if err := os.Lchown(p(o[1]), uid, gid); err != nil {
			t.Fatalf("%s: chown %s %s: %v", c.File, o[0], o[1], err)
		}
	}
	// Times last, children before their directories, without following symlinks.
	var all []string
	err := filepath.WalkDir(ctxDir, func(q string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		all = append(all, q)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := len(all) - 1; i >= 0; i-- {
		rel, _ := filepath.Rel(ctxDir, all[i])
		tm, ok := mtimes[filepath.ToSlash(rel)]
		if !ok {
			tm = e2eCtxTime
		}
		e2eTouch(t, all[i], tm)
	}
	return ctxDir
}

// cpUnquote reads a Go-quoted string, or takes the text as it is.
func cpUnquote(s string) string {
	if u, err := strconv.Unquote(s); err == nil {
		return u
	}
	return s
}

// cpMakeSocket leaves a Unix socket at p (the listener is closed, the file stays).
func cpMakeSocket(p string) error {
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	if err != nil {
		return err
	}
	l.SetUnlinkOnClose(false)
	return l.Close()
}

// cpMakeSparse makes a sparse file: "head" at the start, "tail" at the end, a hole
// between.
func cpMakeSparse(p, size string) error {
	n, err := cpParseSize(size)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = f.WriteAt([]byte("head"), 0)
	if err == nil {
		_, err = f.WriteAt([]byte("tail"), n-4)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// cpMakeArchive builds the archive of an archive/NAME section. Each line is an entry:
//
//	d MODE UID:GID MTIME NAME
//	f MODE UID:GID MTIME NAME "CONTENT"   (Go-quoted)
//	l MODE UID:GID MTIME NAME TARGET      (a symlink)
//	h MODE UID:GID MTIME NAME TARGET      (a hard link)
//	raw "BYTES"                           (the payload is these bytes, not a tar)
//	compress gz xz ...                    (these compressions, innermost first)
//
// Lines starting with # are comments. Without a compress line, NAME's suffixes
// choose the compression, the last one outermost: .gz or .tgz, .bz2, .xz, .zst;
// "t.tar.xz.gz" is xz, then gzip.
func cpMakeArchive(name, spec string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	raw := false
	var explicit []string // from a "compress" line
	for _, line := range strings.Split(spec, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if rest, ok := strings.CutPrefix(line, "compress "); ok {
			explicit = strings.Fields(rest)
			continue
		}
		if rest, ok := strings.CutPrefix(line, "raw "); ok {
			buf.Reset()
			buf.WriteString(cpUnquote(rest))
			raw = true
			continue
		}
		f := strings.SplitN(line, " ", 6)
		if len(f) < 5 {
			return nil, fmt.Errorf("bad entry %q", line)
		}
		mode, err := strconv.ParseInt(f[1], 8, 64)
		if err != nil {
			return nil, fmt.Errorf("bad mode in %q", line)
		}
		var uid, gid int
		if _, err := fmt.Sscanf(f[2], "%d:%d", &uid, &gid); err != nil {
			return nil, fmt.Errorf("bad owner in %q", line)
		}
		mt, err := cpParseTime(f[3])
		if err != nil {
			return nil, fmt.Errorf("bad mtime in %q", line)
		}
		h := &tar.Header{Name: cpExpand(f[4]), Mode: mode, Uid: uid, Gid: gid, ModTime: mt, Format: tar.FormatPAX}
		arg := ""
		if len(f) == 6 {
			arg = cpExpand(f[5])
		}
		var body string
		switch f[0] {
		case "d":
			h.Typeflag = tar.TypeDir
		case "f":
			h.Typeflag, body = tar.TypeReg, cpUnquote(arg)
			h.Size = int64(len(body))
		case "l":
			h.Typeflag, h.Linkname = tar.TypeSymlink, arg
		case "h":
			h.Typeflag, h.Linkname = tar.TypeLink, arg
		default:
			return nil, fmt.Errorf("bad entry type in %q", line)
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return nil, err
		}
	}
	if !raw {
		if err := tw.Close(); err != nil {
			return nil, err
		}
	}
	// The compressions, innermost first.
	var comps []string
	base := path.Base(name)
	for {
		ext := path.Ext(base)
		switch ext {
		case ".gz", ".bz2", ".xz", ".zst":
			comps = append([]string{ext}, comps...)
		case ".tgz":
			comps = append([]string{".gz"}, comps...)
		default:
			ext = ""
		}
		if ext == "" {
			break
		}
		base = strings.TrimSuffix(base, ext)
	}
	if explicit != nil {
		comps = nil
		for _, c := range explicit {
			comps = append(comps, "."+c)
		}
	}
	b := buf.Bytes()
	for _, c := range comps {
		var out bytes.Buffer
		var err error
		switch c {
		case ".gz":
			zw := gzip.NewWriter(&out)
			_, err = zw.Write(b)
			if cerr := zw.Close(); err == nil {
				err = cerr
			}
		case ".xz":
			var zw *xz.Writer
			if zw, err = xz.NewWriter(&out); err == nil {
				_, err = zw.Write(b)
				if cerr := zw.Close(); err == nil {
					err = cerr
				}
			}
		case ".zst":
			var zw *zstd.Encoder
			if zw, err = zstd.NewWriter(&out); err == nil {
				_, err = zw.Write(b)
				if cerr := zw.Close(); err == nil {
					err = cerr
				}
			}
		case ".bz2":
			cmd := exec.Command("bzip2", "-c")
			cmd.Stdin, cmd.Stdout = bytes.NewReader(b), &out
			err = cmd.Run()
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		b = out.Bytes()
	}
	return b, nil
}

// ---- trees ------------------------------------------------------------------------

// cpFlatten applies layers in order, as a container runtime would: whiteouts remove,
// an opaque whiteout empties its directory, a non-directory replaces a directory with
// everything below it.
func cpFlatten(layers []*e2eTree) *e2eTree {
	out := &e2eTree{Entries: map[string]e2eEntry{}}
	removeBelow := func(dir string, self bool) {
		for p := range out.Entries {
			if strings.HasPrefix(p, dir+"/") || (dir == "/" && p != "/") || (self && p == dir) {
				delete(out.Entries, p)
			}
		}
	}
	for _, l := range layers {
		for _, p := range l.Order {
			e := l.Entries[p]
			dir, base := path.Split(p)
			dir = path.Clean(dir)
			switch {
			case base == ".wh..wh..opq":
				removeBelow(dir, false)
			case strings.HasPrefix(base, ".wh."):
				removeBelow(path.Join(dir, strings.TrimPrefix(base, ".wh.")), true)
			default:
				if old, ok := out.Entries[p]; ok && old.Type == "d" && e.Type != "d" {
					removeBelow(p, false)
				}
				out.Entries[p] = e
			}
		}
	}
	for p := range out.Entries {
		out.Order = append(out.Order, p)
	}
	sort.Strings(out.Order)
	return out
}

// ---- image archives, read as streams ----------------------------------------------------

// cpImage is the one image of a docker-archive: its raw config and its layers.
type cpImage struct {
	ConfigRaw []byte
	Config    e2eConfig
	Layers    []*e2eTree
}

// cpReadArchive reads a docker-archive file (dfbuild's, or docker save's with its
// symlinked layers) in two passes: small members and symlinks first, then the layers
// the manifest names, streamed, so that a layer of gigabytes is never held in memory.
func cpReadArchive(file string) (*cpImage, error) {
	small := map[string][]byte{}
	links := map[string]string{}
	if err := cpEachMember(file, func(name string, h *tar.Header, r io.Reader) error {
		switch {
		case h.Typeflag == tar.TypeSymlink:
			links[name] = path.Join(path.Dir(name), h.Linkname)
		case h.Typeflag == tar.TypeReg && h.Size <= 4<<20:
			b, err := io.ReadAll(r)
			small[name] = b
			return err
		}
		return nil
	}); err != nil {
		return nil, err
	}
	var manifest []struct {
		Config string
		Layers []string
	}
	if err := json.Unmarshal(small["manifest.json"], &manifest); err != nil {
		return nil, fmt.Errorf("%s: manifest.json: %w", file, err)
	}
	if len(manifest) != 1 {
		return nil, fmt.Errorf("%s: %d images, want 1", file, len(manifest))
	}
	resolve := func(n string) string {
		for i := 0; i < 10; i++ {
			t, ok := links[n]
			if !ok {
				break
			}
			n = t
		}
		return n
	}
	img := &cpImage{ConfigRaw: small[resolve(manifest[0].Config)]}
	if err := json.Unmarshal(img.ConfigRaw, &img.Config); err != nil {
		return nil, fmt.Errorf("%s: config: %w", file, err)
	}
	trees := map[string]*e2eTree{}
	var need []string
	for _, l := range manifest[0].Layers {
		need = append(need, resolve(l))
	}
	if err := cpEachMember(file, func(name string, h *tar.Header, r io.Reader) error {
		if h.Typeflag != tar.TypeReg || !slices.Contains(need, name) || trees[name] != nil {
			return nil
		}
		var rd io.Reader = r
		if b, ok := small[name]; ok {
			rd = bytes.NewReader(b)
		}
		rd, err := cpMaybeGunzip(rd)
		if err != nil {
			return err
		}
		t, err := e2eReadTree(rd)
		if err != nil {
			return fmt.Errorf("layer %s: %w", name, err)
		}
		trees[name] = t
		return nil
	}); err != nil {
		return nil, err
	}
	for _, n := range need {
		if trees[n] == nil {
			return nil, fmt.Errorf("%s: layer %s is missing", file, n)
		}
		img.Layers = append(img.Layers, trees[n])
	}
	return img, nil
}

// cpEachMember calls f for each member of a tar file (names cleaned, no "./").
func cpEachMember(file string, f func(name string, h *tar.Header, r io.Reader) error) error {
	fh, err := os.Open(file)
	if err != nil {
		return err
	}
	defer fh.Close()
	tr := tar.NewReader(fh)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", file, err)
		}
		if err := f(strings.TrimPrefix(path.Clean(h.Name), "./"), h, tr); err != nil {
			return err
		}
	}
}

// cpMaybeGunzip decompresses a gzip stream and passes anything else through.
func cpMaybeGunzip(r io.Reader) (io.Reader, error) {
	br := newPeekReader(r)
	magic, _ := br.peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		return gzip.NewReader(br)
	}
	return br, nil
}

type peekReader struct {
	r   io.Reader
	buf []byte
}

func newPeekReader(r io.Reader) *peekReader { return &peekReader{r: r} }

func (p *peekReader) peek(n int) ([]byte, error) {
	for len(p.buf) < n {
		b := make([]byte, n-len(p.buf))
		m, err := p.r.Read(b)
		p.buf = append(p.buf, b[:m]...)
		if err != nil {
			return p.buf, err
		}
	}
	return p.buf[:n], nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// ---- docker, as streams -------------------------------------------------------------------

// cpCommand runs a command with extra environment variables; it returns stderr, and
// an error that quotes it. Commands are killed after ten minutes.
func cpCommand(env []string, name string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.TrimSpace(e.String()))
	}
	return o.String(), e.String(), err
}

// ---- listings ---------------------------------------------------------------------------

// cpListing lists what tree has that base lacks or has otherwise, one line a path,
// sorted, and "removed PATH" for what base has and tree lacks. Directory mtimes are
// left out ("-"): the engine stamps the directories a build touches with its clock.
func cpListing(tree, base *e2eTree) string {
	var lines []string
	for _, p := range tree.Order {
		e := tree.Entries[p]
		if p == "/" {
			continue
		}
		if b, ok := base.Entries[p]; ok && cpSameIgnoringDirMtime(e, b) {
			continue
		}
		lines = append(lines, cpListingLine(p, e))
	}
	for p := range base.Entries {
		if _, ok := tree.Entries[p]; !ok && p != "/" {
			lines = append(lines, "removed "+p)
		}
	}
	sort.Slice(lines, func(i, j int) bool { return cpLinePath(lines[i]) < cpLinePath(lines[j]) })
	if len(lines) == 0 {
		return ""
	}
	return strings.Join(lines, "\n") + "\n"
}

func cpSameIgnoringDirMtime(a, b e2eEntry) bool {
	if a.Type == "d" && b.Type == "d" {
		a.MTime = b.MTime
	}
	a.Small, b.Small = nil, nil
	return a.Type == b.Type && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID && a.Size == b.Size &&
		a.SHA == b.SHA && a.Link == b.Link && a.MTime.Equal(b.MTime) && a.Xattrs == b.Xattrs
}

// cpListingLine renders an entry: TYPE MODE UID:GID SIZE MTIME PATH, then "-> LINK",
// the contents ("quoted" when small and printable, else sha256:12 hex digits) and
// "xattrs:...". MTIME is Unix seconds, "-" for a directory.
func cpListingLine(p string, e e2eEntry) string {
	mt := strconv.FormatInt(e.MTime.Unix(), 10)
	if e.Type == "d" {
		mt = "-"
	}
	s := fmt.Sprintf("%s %04o %d:%d %d %s %s", e.Type, e.Mode, e.UID, e.GID, e.Size, mt, p)
	if e.Link != "" {
		s += " -> " + e.Link
	}
	if e.Type == "f" {
		if e.Small != nil && cpPrintable(e.Small) {
			s += " " + strconv.Quote(string(e.Small))
		} else {
			s += " sha256:" + e.SHA[:12]
		}
	}
	if e.Xattrs != "" {
		s += " xattrs:" + e.Xattrs
	}
	return s
}

func cpPrintable(b []byte) bool {
	for _, r := range string(b) {
		if r == '\uFFFD' || (r < 0x20 && r != '\n' && r != '\t') {
			return false
		}
	}
	return true
}

// cpLinePath is the path a listing line is about.
func cpLinePath(line string) string {
	if p, ok := strings.CutPrefix(line, "removed "); ok {
		return p
	}
	f := strings.SplitN(line, " ", 7)
	if len(f) < 6 {
		return line
	}
	p, _, _ := strings.Cut(f[5], " ")
	return p
}

// cpCompareListing compares a listing with the expected one, line by line; an
// expected MTIME of "*" matches any. It returns the differences.
func cpCompareListing(got, want string) []string {
	index := func(s string) (map[string]string, []string) {
		m := map[string]string{}
		var order []string
		for _, line := range strings.Split(s, "\n") {
			line = strings.TrimSpace(line)
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			p := cpLinePath(line)
			if _, ok := m[p]; !ok {
				order = append(order, p)
			}
			m[p] = line
		}
		return m, order
	}
	g, gOrder := index(got)
	w, wOrder := index(want)
	var diffs []string
	for _, p := range wOrder {
		gl, ok := g[p]
		switch {
		case !ok:
			diffs = append(diffs, "missing: "+w[p])
		case !cpLineMatches(gl, w[p]):
			diffs = append(diffs, fmt.Sprintf("%s\n      got:  %s\n      want: %s", p, gl, w[p]))
		}
	}
	for _, p := range gOrder {
		if _, ok := w[p]; !ok {
			diffs = append(diffs, "unexpected: "+g[p])
		}
	}
	return diffs
}

func cpLineMatches(got, want string) bool {
	if got == want {
		return true
	}
	gf, wf := strings.SplitN(got, " ", 6), strings.SplitN(want, " ", 6)
	if len(gf) != 6 || len(wf) != 6 || wf[4] != "*" {
		return false
	}
	gf[4] = "*"
	return slices.Equal(gf, wf)
}

// cpMergeStars keeps the "*" mtimes of an old expected listing in a new one.
func cpMergeStars(got, old string) string {
	stars := map[string]bool{}
	for _, line := range strings.Split(old, "\n") {
		if f := strings.SplitN(line, " ", 6); len(f) == 6 && f[4] == "*" {
			stars[cpLinePath(line)] = true
		}
	}
	var out []string
	for _, line := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
		if f := strings.SplitN(line, " ", 6); len(f) == 6 && stars[cpLinePath(line)] {
			f[4] = "*"
			line = strings.Join(f, " ")
		}
		out = append(out, line)
	}
	if len(out) == 1 && out[0] == "" {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}

// cpHistoryListing renders the history entries that are not the base's: "L" for an
// entry with a layer, "e" for an empty_layer one, then created_by.
func cpHistoryListing(c e2eConfig) string {
	var b strings.Builder
	for _, h := range c.History {
		if strings.HasPrefix(h.Comment, "Imported from ") {
			continue
		}
		kind := "L"
		if h.EmptyLayer {
			kind = "e"
		}
		fmt.Fprintf(&b, "%s %s\n", kind, h.CreatedBy)
	}
	return b.String()
}

// cpSortedKeys returns the keys of a map, sorted.
func cpSortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }
