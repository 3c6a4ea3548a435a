package interp_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/txtar"

	"github.com/dfbuild/dfbuild/interp"
	"github.com/dfbuild/dfbuild/layerfs/dockerarchive"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
	"github.com/dfbuild/dfbuild/parser"
)

var update = flag.Bool("update", false, "rewrite the want sections of testdata/*.txtar")

// defaultEpoch pins every case's times unless a case says "noepoch": context files
// are created at test time, and the clamp keeps their mtimes out of the golden files.
const defaultEpoch = 1700000000

// TestCases runs every testdata/*.txtar case. A case holds:
//
//   - Dockerfile: the Dockerfile;
//   - context/...: the build context (context/.dockerignore is its ignore file);
//   - Dockerfile.dockerignore: the Dockerfile's own ignore file, which wins;
//   - rootfs/NAME/...: a root filesystem, written as the tarball context/NAME.tar
//     (gzip-compressed as NAME.tar.gz with "gzip NAME");
//   - want/config.json, want/layers.txt: the expected image config and the listing
//     of each layer; or want/error: the expected error;
//   - want/warnings: the build's warnings, one a line, when there are any.
//
// The comment section describes the case in lines starting with "#" and holds
// directives, one a line:
//
//	symlink PATH TARGET   make a symlink in the context
//	hardlink PATH TARGET  make a hard link to TARGET in the context
//	chmod MODE PATH       set a context file's mode (octal)
//	mtime UNIX PATH       set a context file's mtime
//	mkdir PATH            make an empty directory in the context
//	xattr PATH NAME VALUE set an extended attribute of a context file (VALUE may be
//	                      Go-quoted); a case the filesystem or the privileges refuse
//	                      is skipped, and fails under CI=true
//	gzip NAME             compress the rootfs tarball NAME
//	build-context N=VALUE as --build-context: a PATH relative to the context,
//	                      oci-layout://PATH[:TAG|@DIGEST] (PATH relative to the
//	                      context) or docker-image://REF
//	ocilayout OUT TAG SECTION...
//	                      as image, but written as an OCI layout directory context/OUT
//	registry REF DIR      serve REF through Options.Images from the OCI layout
//	                      context/DIR (its first manifest); "registry" alone gives
//	                      the build an Images that serves nothing
//	epoch N | noepoch     SOURCE_DATE_EPOCH (default 1700000000)
//	build-arg K=V         as --build-arg (the rest of the line is the value)
//	target NAME           as --target
//	label K=V             as --label
//	platform P            as --platform
//	image OUT TAG SECTION... build the Dockerfile in each section image/SECTION (same
//	                      context) and write them, tagged TAG, as the archive context/OUT
//	imagedir OUT TAG SEC  the same, written unpacked (-o type=dir) as context/OUT
//	tar NAME DIR [COMP] [nodirs]
//	                      write context/DIR as the archive context/NAME, compressed
//	                      with gzip, bzip2, xz or zstd if COMP says so, without its
//	                      directories with nodirs (add_test.go)
//	tarowner NAME P U:G   give the entry DIR/P of archive NAME the owner U:G
//	compress NAME SRC C   write context/SRC compressed with C as context/NAME
//	http-mtime UNIX PATH  serve http/PATH with that Last-Modified time
//
// Sections http/PATH are served over http on the loopback interface, at /PATH of the
// address the Dockerfile and the results call http://SERVER, and context files at
// /context/PATH.
func TestCases(t *testing.T) {
	// The cases write their contexts; a fixed umask makes the modes they copy the
	// same whatever the caller's umask is (the CLI scripts check umask 077 builds).
	defer syscall.Umask(syscall.Umask(0o022))
	files, err := filepath.Glob("testdata/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			runCase(t, file)
		})
	}
}

func runCase(t *testing.T, file string) {
	ar, err := txtar.ParseFile(file)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctxDir := filepath.Join(dir, "context")
	if err := os.MkdirAll(ctxDir, 0o755); err != nil {
		t.Fatal(err)
	}
	var dockerfile []byte
	rootfs := map[string][]txtar.File{}
	var served httpFiles
	var tars archives
	for _, f := range ar.Files {
		switch {
		case f.Name == "Dockerfile":
			dockerfile = f.Data
		case f.Name == "Dockerfile.dockerignore":
			must(t, os.WriteFile(filepath.Join(dir, f.Name), f.Data, 0o644))
		case strings.HasPrefix(f.Name, "context/"):
			p := filepath.Join(dir, filepath.FromSlash(f.Name))
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			must(t, os.WriteFile(p, f.Data, 0o644))
		case strings.HasPrefix(f.Name, "rootfs/"):
			name, rest, _ := strings.Cut(strings.TrimPrefix(f.Name, "rootfs/"), "/")
			rootfs[name] = append(rootfs[name], txtar.File{Name: rest, Data: f.Data})
		case strings.HasPrefix(f.Name, "http/"):
			served.add(f.Name, f.Data)
		case strings.HasPrefix(f.Name, "want/"), strings.HasPrefix(f.Name, "image/"):
		default:
			t.Fatalf("unexpected section %q", f.Name)
		}
	}

	opts := interp.Options{ContextDir: ctxDir, BuildContexts: map[string]string{}}
	epoch := time.Unix(defaultEpoch, 0).UTC()
	opts.SourceDateEpoch = &epoch
	gz := map[string]bool{}
	for _, line := range strings.Split(string(ar.Comment), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		switch f[0] {
		case "symlink":
			must(t, os.MkdirAll(filepath.Dir(filepath.Join(ctxDir, f[1])), 0o755))
			must(t, os.Symlink(f[2], filepath.Join(ctxDir, f[1])))
		case "chmod":
			m, err := strconv.ParseUint(f[1], 8, 32)
			must(t, err)
			must(t, os.Chmod(filepath.Join(ctxDir, f[2]), imagetest.FileMode(m)))
		case "mtime":
			n, err := strconv.ParseInt(f[1], 10, 64)
			must(t, err)
			tm := time.Unix(n, 0)
			must(t, os.Chtimes(filepath.Join(ctxDir, f[2]), tm, tm))
		case "hardlink":
			must(t, os.MkdirAll(filepath.Dir(filepath.Join(ctxDir, f[1])), 0o755))
			must(t, os.Link(filepath.Join(ctxDir, f[2]), filepath.Join(ctxDir, f[1])))
		case "mkdir":
			must(t, os.MkdirAll(filepath.Join(ctxDir, f[1]), 0o755))
		case "xattr":
			setXattr(t, filepath.Join(ctxDir, f[1]), f[2], strings.Join(f[3:], " "))
		case "gzip":
			gz[f[1]] = true
		case "build-context":
			k, v, _ := strings.Cut(f[1], "=")
			switch {
			case strings.HasPrefix(v, "oci-layout://"):
				v = "oci-layout://" + filepath.Join(ctxDir, strings.TrimPrefix(v, "oci-layout://"))
			case strings.Contains(v, "://"):
			default:
				v = filepath.Join(ctxDir, v)
			}
			opts.BuildContexts[k] = v
		case "ocilayout":
			writeBaseImage(t, ar, ctxDir, false, f[1]+".tar", f[2], f[3:]...)
			untar(t, filepath.Join(ctxDir, f[1]+".tar"), filepath.Join(ctxDir, f[1]))
			must(t, os.Remove(filepath.Join(ctxDir, f[1]+".tar")))
		case "registry":
			reg, _ := opts.Images.(fakeRegistry)
			if reg == nil {
				reg = fakeRegistry{}
				opts.Images = reg
			}
			if len(f) == 3 {
				reg[f[1]] = filepath.Join(ctxDir, f[2])
			}
		case "epoch":
			n, err := strconv.ParseInt(f[1], 10, 64)
			must(t, err)
			e := time.Unix(n, 0).UTC()
			opts.SourceDateEpoch = &e
		case "noepoch":
			opts.SourceDateEpoch = nil
		case "build-arg":
			if opts.BuildArgs == nil {
				opts.BuildArgs = map[string]string{}
			}
			k, v, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "build-arg")), "=")
			opts.BuildArgs[k] = v
		case "target":
			opts.Target = f[1]
		case "label":
			if opts.Labels == nil {
				opts.Labels = map[string]string{}
			}
			k, v, _ := strings.Cut(strings.TrimSpace(strings.TrimPrefix(line, "label")), "=")
			opts.Labels[k] = v
		case "platform":
			p, err := interp.ParsePlatform(f[1])
			must(t, err)
			opts.Platform = &p
		case "image", "imagedir":
			writeBaseImage(t, ar, ctxDir, f[0] == "imagedir", f[1], f[2], f[3:]...)
		case "tar", "tarowner", "compress":
			tars.directive(t, f)
		case "http-mtime":
			served.mtime(t, f)
		default:
			t.Fatalf("unknown directive %q (a description line starts with #)", line)
		}
	}
	for name, files := range rootfs {
		out := filepath.Join(ctxDir, name+".tar")
		if gz[name] {
			out += ".gz"
		}
		must(t, writeRootfs(out, files, gz[name]))
	}
	tars.write(t, ctxDir)
	dockerfile, unserve := served.serve(t, dockerfile, ctxDir)

	got := map[string]string{}
	pf, err := parser.Parse(bytes.NewReader(dockerfile), "Dockerfile")
	var res *interp.Result
	if err == nil {
		// The Dockerfile is taken to sit in dir, beside Dockerfile.dockerignore.
		opts.Ignore, err = interp.ReadIgnoreFile(ctxDir, filepath.Join(dir, "Dockerfile"))
	}
	if err == nil {
		res, err = interp.Build(context.Background(), pf, opts)
	}
	if err != nil {
		// Ignore files are named by path; the temporary directory is left out.
		got["want/error"] = strings.ReplaceAll(err.Error(), dir+string(filepath.Separator), "") + "\n"
	} else {
		defer res.Close()
		if len(res.Warnings) > 0 {
			got["want/warnings"] = strings.ReplaceAll(strings.Join(res.Warnings, "\n"), dir+string(filepath.Separator), "") + "\n"
		}
		cfg, err := res.Image.ConfigJSON()
		must(t, err)
		var pretty bytes.Buffer
		must(t, json.Indent(&pretty, cfg, "", "  "))
		got["want/config.json"] = pretty.String() + "\n"
		var layers strings.Builder
		for i, l := range res.Image.Layers {
			var buf bytes.Buffer
			if _, err := l.WriteTo(&buf); err != nil {
				t.Fatalf("layer %d: %v", i+1, err)
			}
			if int64(buf.Len()) != l.Size() {
				t.Errorf("layer %d: wrote %d bytes, Size says %d", i+1, buf.Len(), l.Size())
			}
			listing, err := imagetest.Listing(&buf)
			must(t, err)
			fmt.Fprintf(&layers, "# layer %d\n%s", i+1, listing)
		}
		got["want/layers.txt"] = layers.String()
		checkInvariants(t, res)
	}
	for k, v := range got {
		got[k] = unserve(v)
	}
	imagetest.Golden(t, file, ar, got, *update)
}

// fakeRegistry serves image names from OCI layouts: the first manifest of each.
type fakeRegistry map[string]string

func (r fakeRegistry) Image(ctx context.Context, ref string, p interp.Platform) (*interp.LocalImage, error) {
	dir, ok := r[ref]
	if !ok {
		return nil, fmt.Errorf("%s: not found in the test registry", ref)
	}
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return nil, err
	}
	var idx dockerarchive.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return nil, err
	}
	return &interp.LocalImage{Layout: dir, Manifest: idx.Manifests[0].Digest, Name: "registry.test/" + ref}, nil
}

// untar extracts an archive of regular files and directories into dir.
func untar(t *testing.T, file, dir string) {
	t.Helper()
	f, err := os.Open(file)
	must(t, err)
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return
		}
		must(t, err)
		p := filepath.Join(dir, filepath.FromSlash(h.Name))
		switch h.Typeflag {
		case tar.TypeDir:
			must(t, os.MkdirAll(p, 0o755))
		case tar.TypeReg:
			must(t, os.MkdirAll(filepath.Dir(p), 0o755))
			b, err := io.ReadAll(tr)
			must(t, err)
			must(t, os.WriteFile(p, b, 0o644))
		}
	}
}

// writeBaseImage builds a base image for a case from one of its sections and writes
// it into the context, so cases can start FROM an image archive.
func writeBaseImage(t *testing.T, ar *txtar.Archive, ctxDir string, dir bool, out, tag string, sections ...string) {
	t.Helper()
	tg, err := image.ParseTag(tag)
	must(t, err)
	// Several sections give one archive several images of one name, as an OCI index
	// of a multi-platform image has.
	var entries []dockerarchive.Entry
	for _, section := range sections {
		var df []byte
		for _, f := range ar.Files {
			if f.Name == "image/"+section {
				df = f.Data
			}
		}
		if df == nil {
			t.Fatalf("no section image/%s", section)
		}
		pf, err := parser.Parse(bytes.NewReader(df), section)
		must(t, err)
		epoch := time.Unix(defaultEpoch-1000, 0).UTC()
		res, err := interp.Build(context.Background(), pf, interp.Options{ContextDir: ctxDir, SourceDateEpoch: &epoch})
		must(t, err)
		defer res.Close()
		entries = append(entries, dockerarchive.Entry{Image: res.Image, Tags: []image.Tag{tg}})
	}
	if dir {
		_, err = dockerarchive.WriteDir(context.Background(), filepath.Join(ctxDir, out), entries)
	} else {
		_, err = dockerarchive.WriteFile(context.Background(), filepath.Join(ctxDir, out), entries)
	}
	must(t, err)
}

// checkInvariants holds for every image: one non-empty history entry per layer, and
// layers whose paths are unique and come parents first.
func checkInvariants(t *testing.T, res *interp.Result) {
	t.Helper()
	nonEmpty := 0
	for _, h := range res.Image.Config.History {
		if !h.EmptyLayer {
			nonEmpty++
		}
	}
	if nonEmpty != len(res.Image.Layers) {
		t.Errorf("%d non-empty history entries for %d layers", nonEmpty, len(res.Image.Layers))
	}
	for i, l := range res.Image.Layers {
		var buf bytes.Buffer
		if _, err := l.WriteTo(&buf); err != nil {
			t.Fatal(err)
		}
		seen := map[string]bool{}
		tr := tar.NewReader(&buf)
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			must(t, err)
			name := strings.TrimSuffix(h.Name, "/")
			if seen[name] {
				t.Errorf("layer %d: %q twice", i+1, name)
			}
			seen[name] = true
			if dir := filepath.Dir(name); dir != "." && !seen[dir] && i > 0 {
				t.Errorf("layer %d: %q comes before its parent", i+1, name)
			}
		}
	}
}

// writeRootfs writes a root filesystem tarball from txtar files. A file whose name
// ends in "@" followed by a target becomes a symlink: "bin/sh@busybox".
func writeRootfs(out string, files []txtar.File, compress bool) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	var w io.Writer = f
	var zw *gzip.Writer
	if compress {
		zw = gzip.NewWriter(f)
		w = zw
	}
	tw := tar.NewWriter(w)
	mtime := time.Unix(1600000000, 0)
	dirs := map[string]bool{}
	var addDir func(d string) error
	addDir = func(d string) error {
		if d == "." || dirs[d] {
			return nil
		}
		if err := addDir(filepath.Dir(d)); err != nil {
			return err
		}
		dirs[d] = true
		mode := int64(0o755)
		if d == "tmp" {
			mode = 0o1777
		}
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: mode, ModTime: mtime})
	}
	for _, file := range files {
		name, target, isLink := strings.Cut(file.Name, "@")
		if strings.HasSuffix(name, "/") {
			if err := addDir(strings.TrimSuffix(name, "/")); err != nil {
				return err
			}
			continue
		}
		if err := addDir(filepath.Dir(name)); err != nil {
			return err
		}
		h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(file.Data)), ModTime: mtime}
		if isLink {
			h = &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777, ModTime: mtime}
		} else if strings.HasPrefix(name, "bin/") {
			h.Mode = 0o755
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if !isLink {
			if _, err := tw.Write(file.Data); err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if zw != nil {
		return zw.Close()
	}
	return nil
}

// setXattr sets the xattr name of the file p to value, Go-quoted or not. Setting
// security.capability takes CAP_SETFCAP: without it, or on a filesystem without
// xattrs, the case is skipped, unless CI=true says the environment must allow it.
func setXattr(t *testing.T, p, name, value string) {
	t.Helper()
	if strings.HasPrefix(value, `"`) {
		v, err := strconv.Unquote(value)
		must(t, err)
		value = v
	}
	err := setFileXattr(p, name, value)
	if (errors.Is(err, syscall.EPERM) || errors.Is(err, errors.ErrUnsupported)) && os.Getenv("CI") != "true" {
		t.Skipf("cannot set the xattr %s here (%v): the case needs CAP_SETFCAP and xattr support; CI=true makes this a failure", name, err)
	}
	must(t, err)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// A failed build removes its scratch directory, where a compressed base tarball is
// decompressed; a successful one removes it when the result is closed.
func TestScratchRemoved(t *testing.T) {
	tmp := t.TempDir()
	ctxDir := t.TempDir()
	must(t, writeRootfs(filepath.Join(ctxDir, "base.tar.gz"), []txtar.File{{Name: "etc/x", Data: []byte("x")}}, true))
	for _, df := range []string{"FROM base.tar.gz\nRUN x\n", "FROM base.tar.gz\nCOPY missing /\n", "FROM base.tar.gz\n"} {
		f, err := parser.Parse(strings.NewReader(df), "Dockerfile")
		must(t, err)
		res, err := interp.Build(context.Background(), f, interp.Options{ContextDir: ctxDir, TempDir: tmp})
		if err == nil {
			must(t, res.Close())
		}
		if left, _ := os.ReadDir(tmp); len(left) > 0 {
			t.Errorf("%q left %d scratch entries behind", df, len(left))
		}
	}
}
