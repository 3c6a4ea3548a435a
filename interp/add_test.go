package interp_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// This file holds the harness directives for ADD cases: archives built from a
// context directory, and files served over http on the loopback interface.

// tarSpec is an archive a case asks for with "tar NAME DIR [COMPRESSION]", or, with
// "compress NAME SRC COMPRESSION", a compressed copy of the context file SRC.
type tarSpec struct {
	name, dir, comp string
	owners          map[string]string // "tarowner NAME PATH UID:GID"
	file            bool              // compress a file rather than archive a directory
	nodirs          bool              // leave directories out, so the archive only implies them
}

// archives are the "tar" and "compress" lines of a case, written in order once
// every other directive has shaped the context.
type archives []*tarSpec

func (a *archives) directive(t *testing.T, f []string) {
	t.Helper()
	switch f[0] {
	case "tar":
		if len(f) < 3 {
			t.Fatalf("usage: tar NAME DIR [gzip|bzip2|xz|zstd] [nodirs]")
		}
		s := &tarSpec{name: f[1], dir: f[2], owners: map[string]string{}}
		for _, opt := range f[3:] {
			if opt == "nodirs" {
				s.nodirs = true
			} else {
				s.comp = opt
			}
		}
		*a = append(*a, s)
	case "compress":
		if len(f) != 4 {
			t.Fatalf("usage: compress NAME SRC gzip|bzip2|xz|zstd")
		}
		*a = append(*a, &tarSpec{name: f[1], dir: f[2], comp: f[3], file: true})
	case "tarowner":
		var s *tarSpec
		for _, x := range *a {
			if x.name == f[1] && !x.file {
				s = x
			}
		}
		if s == nil || len(f) != 4 {
			t.Fatalf("usage: tarowner NAME PATH UID:GID, after tar NAME")
		}
		s.owners[f[2]] = f[3]
	}
}

func (a archives) write(t *testing.T, ctxDir string) {
	t.Helper()
	for _, s := range a {
		if !s.file {
			writeTar(t, ctxDir, s)
			continue
		}
		b, err := os.ReadFile(filepath.Join(ctxDir, s.dir))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(ctxDir, s.name), compressBytes(t, s.comp, b), 0o644))
	}
}

// writeTar writes context/NAME from context/DIR as `tar -C DIR -cf NAME .` would:
// names start with "./", the root included, entries in walk order, hard links to the
// first name of a file, owners 0:0 unless tarowner says otherwise, mtimes no later
// than the default epoch, a file's security.capability xattr as its PAX record.
// With nodirs it leaves the directories out.
func writeTar(t *testing.T, ctxDir string, s *tarSpec) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	root := filepath.Join(ctxDir, s.dir)
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		name := "./" + filepath.ToSlash(rel)
		if rel == "." {
			name = "./"
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if fi.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		h, err := tar.FileInfoHeader(fi, link)
		if err != nil {
			return err
		}
		h.Name, h.Uname, h.Gname, h.Format = name, "", "", tar.FormatPAX
		// Files the case wrote just now would make the archive differ on every run;
		// they get the default epoch, older mtimes (the mtime directive) stay.
		h.ModTime, h.AccessTime, h.ChangeTime = fi.ModTime().Truncate(time.Second), time.Time{}, time.Time{}
		if epoch := time.Unix(defaultEpoch, 0); h.ModTime.After(epoch) {
			h.ModTime = epoch
		}
		if fi.IsDir() {
			if s.nodirs {
				return nil
			}
			if name != "./" {
				h.Name += "/"
			}
		}
		h.Uid, h.Gid = 0, 0
		if o, ok := s.owners[filepath.ToSlash(rel)]; ok {
			u, g, _ := strings.Cut(o, ":")
			h.Uid, _ = strconv.Atoi(u)
			h.Gid, _ = strconv.Atoi(g)
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && fi.Mode().IsRegular() && st.Nlink > 1 {
			if first, ok := inodes[st.Ino]; ok {
				h.Typeflag, h.Linkname, h.Size = tar.TypeLink, first, 0
			} else {
				inodes[st.Ino] = name
			}
		}
		// The capability xattr (the xattr directive) goes in as GNU tar --xattrs and
		// go-archive write it.
		if c := fileCapability(p); c != "" && fi.Mode().IsRegular() {
			h.PAXRecords = map[string]string{"SCHILY.xattr.security.capability": c}
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if h.Typeflag == tar.TypeReg && h.Size > 0 {
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(tw, f)
			return err
		}
		return nil
	})
	must(t, err)
	must(t, tw.Close())
	must(t, os.WriteFile(filepath.Join(ctxDir, s.name), compressBytes(t, s.comp, buf.Bytes()), 0o644))
}

// compressBytes compresses b with a named compression ("" leaves it as it is).
func compressBytes(t *testing.T, comp string, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	switch comp {
	case "":
		return b
	case "gzip":
		zw := gzip.NewWriter(&out)
		zw.Write(b)
		must(t, zw.Close())
	case "xz":
		zw, err := xz.NewWriter(&out)
		must(t, err)
		zw.Write(b)
		must(t, zw.Close())
	case "zstd":
		zw, err := zstd.NewWriter(&out)
		must(t, err)
		zw.Write(b)
		must(t, zw.Close())
	case "bzip2":
		// Go has no bzip2 writer; the command makes one, as the rootfs tests do.
		if _, err := exec.LookPath("bzip2"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("the bzip2 command is required under CI=true (.ci/run installs it)")
			}
			t.Skip("no bzip2 command")
		}
		cmd := exec.Command("bzip2", "-c")
		cmd.Stdin = bytes.NewReader(b)
		o, err := cmd.Output()
		must(t, err)
		return o
	default:
		t.Fatalf("unknown compression %q", comp)
	}
	return out.Bytes()
}

// serverURL stands for the test server's address in a case: the Dockerfile says
// http://SERVER/..., and the results show it so.
const serverURL = "http://SERVER"

// httpFiles are the files a case serves: sections http/PATH are served at /PATH,
// and context files at /context/PATH, with a Last-Modified header when "http-mtime
// UNIX PATH" gives one. Anything else is a 404.
type httpFiles struct {
	files  map[string][]byte
	mtimes map[string]time.Time
}

func (h *httpFiles) add(name string, data []byte) {
	if h.files == nil {
		h.files = map[string][]byte{}
	}
	h.files["/"+strings.TrimPrefix(name, "http/")] = data
}

func (h *httpFiles) mtime(t *testing.T, f []string) {
	t.Helper()
	if len(f) != 3 {
		t.Fatalf("usage: http-mtime UNIX PATH")
	}
	n, err := strconv.ParseInt(f[1], 10, 64)
	must(t, err)
	if h.mtimes == nil {
		h.mtimes = map[string]time.Time{}
	}
	h.mtimes["/"+f[2]] = time.Unix(n, 0)
}

// serve starts the server on the loopback interface when the Dockerfile names it,
// and returns the Dockerfile with SERVER replaced and a function that puts SERVER
// back into a result.
func (h *httpFiles) serve(t *testing.T, dockerfile []byte, ctxDir string) ([]byte, func(string) string) {
	if !bytes.Contains(dockerfile, []byte(serverURL)) {
		return dockerfile, func(s string) string { return s }
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		data, ok := h.files[r.URL.Path]
		if rel, inContext := strings.CutPrefix(r.URL.Path, "/context/"); !ok && inContext {
			var err error
			data, err = os.ReadFile(filepath.Join(ctxDir, filepath.FromSlash(rel)))
			ok = err == nil
		}
		if !ok {
			http.NotFound(w, r)
			return
		}
		if m, ok := h.mtimes[r.URL.Path]; ok {
			w.Header().Set("Last-Modified", m.UTC().Format(http.TimeFormat))
		}
		w.Write(data)
	}))
	t.Cleanup(srv.Close)
	df := bytes.ReplaceAll(dockerfile, []byte(serverURL), []byte(srv.URL))
	return df, func(s string) string { return strings.ReplaceAll(s, srv.URL, serverURL) }
}
