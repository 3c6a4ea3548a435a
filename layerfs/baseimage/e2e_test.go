//go:build linux

package baseimage_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/baseimage"
	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

func docker(ctx context.Context, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(stderr.Bytes()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

func mustDocker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := docker(context.Background(), args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// busyboxRootfs returns a root filesystem tarball around a static busybox (Debian's
// busybox-static installs one as /bin/busybox), with a hard link, symlinks and a
// directory the second image replaces.
func busyboxRootfs(t *testing.T) []byte {
	t.Helper()
	p := "/bin/busybox"
	if _, err := os.Stat(p); err != nil {
		var lerr error
		if p, lerr = exec.LookPath("busybox"); lerr != nil {
			imagetest.Require(t, "a static busybox (apt-get install busybox-static)", errors.Join(err, lerr))
		}
	}
	bb, err := os.ReadFile(p)
	must(t, err)
	entries := []ent{
		dirE("bin/"),
		with(fileE("bin/busybox", string(bb)), func(h *tar.Header) { h.Mode = 0o755 }),
		with(hardE("bin/cat", "bin/busybox"), func(h *tar.Header) { h.Mode = 0o755 }),
	}
	for _, l := range []string{"sh", "rm", "mkdir", "echo", "ls"} {
		entries = append(entries, linkE("bin/"+l, "busybox"))
	}
	entries = append(entries,
		dirE("etc/"),
		fileE("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n"),
		fileE("etc/group", "root:x:0:\n"),
		dirE("srv/"),
		fileE("srv/old", "replaced by the second image\n"),
		with(dirE("home/"), func(h *tar.Header) { h.Uid, h.Gid, h.Mode = 1000, 1000, 0o750 }),
	)
	return layerTar(t, entries...)
}

// TestDockerSave loads what `docker save` writes: an image made by `docker import`
// of a busybox root filesystem, and one committed from a container that removed
// files above it (whiteouts). Each loaded tree must match what `docker export` of
// a container of the image gives, and the layers must rewrite to the diff_ids.
func TestDockerSave(t *testing.T) {
	imagetest.RequireDocker(t)
	dir := t.TempDir()
	rootfs := filepath.Join(dir, "rootfs.tar")
	must(t, os.WriteFile(rootfs, busyboxRootfs(t), 0o644))

	repo := fmt.Sprintf("dfbuild-baseimage-e2e-%d", time.Now().UnixNano())
	one, two := repo+":1", repo+":2"
	container := repo + "-c"
	t.Cleanup(func() {
		docker(context.Background(), "rm", "-f", container)
		docker(context.Background(), "rmi", one, two)
	})
	mustDocker(t, "import", rootfs, one)
	mustDocker(t, "run", "--name", container, one, "sh", "-c",
		"rm /etc/group && rm -r /srv && mkdir /srv && echo new > /srv/new && echo more >> /etc/passwd")
	mustDocker(t, "commit", container, two)
	mustDocker(t, "rm", container)
	saved := filepath.Join(dir, "saved.tar")
	mustDocker(t, "save", "-o", saved, one, two)

	if ok, err := baseimage.IsImage(saved); !ok || err != nil {
		t.Errorf("IsImage(docker save) = %v, %v", ok, err)
	}
	if ok, err := baseimage.IsImage(rootfs); ok || err != nil {
		t.Errorf("IsImage(rootfs) = %v, %v", ok, err)
	}
	for _, tag := range []string{one, two} {
		t.Run(tag[strings.LastIndex(tag, ":")+1:], func(t *testing.T) {
			spool := filepath.Join(dir, "spool-"+tag[strings.LastIndex(tag, ":")+1:])
			must(t, os.Mkdir(spool, 0o755))
			b, err := baseimage.Load(saved, tag, spool)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Close()
			if id := mustDocker(t, "image", "inspect", "--format", "{{.Id}}", tag); string(b.ID) != id {
				t.Errorf("loaded image %s, docker has %s", b.ID, id)
			}
			for i, l := range b.Layers {
				h := sha256.New()
				if _, err := l.WriteTo(h); err != nil {
					t.Fatalf("layer %d: %v", i+1, err)
				}
				if d := "sha256:" + hex.EncodeToString(h.Sum(nil)); d != string(b.Config.RootFS.DiffIDs[i]) {
					t.Errorf("layer %d writes %s, config has %s", i+1, d, b.Config.RootFS.DiffIDs[i])
				}
			}

			c := mustDocker(t, "create", tag, "sh")
			defer docker(context.Background(), "rm", "-f", c)
			export := filepath.Join(dir, "export-"+c+".tar")
			mustDocker(t, "export", "-o", export, c)
			want := exportRecords(t, export)
			got := fsRecords(t, b.FS)
			compareRecords(t, got, want)
			t.Logf("%d paths match docker export", len(want))
			if tag == two {
				_, group := got["/etc/group"]
				_, old := got["/srv/old"]
				_, added := got["/srv/new"]
				if group || old || !added {
					t.Errorf("the commit's whiteouts were not applied: /etc/group %v, /srv/old %v, /srv/new %v", group, old, added)
				}
				if len(b.Layers) != 2 {
					t.Errorf("%d layers, want 2", len(b.Layers))
				}
			}
		})
	}
}

// The paths that a container's init layer adds, which the image does not have.
var initPaths = map[string]bool{"/.dockerenv": true, "/dev": true, "/proc": true, "/sys": true,
	"/etc/hostname": true, "/etc/hosts": true, "/etc/mtab": true, "/etc/resolv.conf": true}

func skipInit(p string) bool {
	for q := p; q != "/"; q = filepath.Dir(q) {
		if initPaths[q] {
			return true
		}
	}
	return false
}

// record describes a path for comparison: type, mode, owner, and for files the
// size, contents and mtime (directories' mtimes move with the init layer).
func record(typ byte, mode int64, uid, gid int, size int64, sum, target string, mtime time.Time) string {
	s := fmt.Sprintf("%c %04o %d:%d", typ, mode&0o7777, uid, gid)
	switch typ {
	case 'f':
		s += fmt.Sprintf(" %d %s %d", size, sum, mtime.Unix())
	case 'l':
		s += " -> " + target
	}
	return s
}

func exportRecords(t *testing.T, file string) map[string]string {
	t.Helper()
	f, err := os.Open(file)
	must(t, err)
	defer f.Close()
	out := map[string]string{}
	files := map[string]string{}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		must(t, err)
		p := layerfs.Clean(h.Name)
		if p == "/" || skipInit(p) {
			continue
		}
		switch h.Typeflag {
		case tar.TypeDir:
			out[p] = record('d', h.Mode, h.Uid, h.Gid, 0, "", "", h.ModTime)
		case tar.TypeReg:
			s := sha256.New()
			n, err := io.Copy(s, tr)
			must(t, err)
			out[p] = record('f', h.Mode, h.Uid, h.Gid, n, hex.EncodeToString(s.Sum(nil))[:12], "", h.ModTime)
			files[p] = out[p]
		case tar.TypeLink:
			out[p] = files[layerfs.Clean(h.Linkname)]
		case tar.TypeSymlink:
			out[p] = record('l', h.Mode, h.Uid, h.Gid, 0, "", h.Linkname, h.ModTime)
		default:
			out[p] = fmt.Sprintf("type %c", h.Typeflag)
		}
	}
}

func fsRecords(t *testing.T, fsys *layerfs.FS) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := fsys.Walk(func(p string, n *layerfs.Node) error {
		if skipInit(p) {
			return nil
		}
		switch n.Type {
		case layerfs.TypeDir:
			out[p] = record('d', int64(n.Mode), n.UID, n.GID, 0, "", "", n.ModTime)
		case layerfs.TypeReg:
			s := sha256.New()
			if n.Content != nil {
				rc, err := n.Content()
				if err != nil {
					return err
				}
				_, err = io.Copy(s, rc)
				rc.Close()
				if err != nil {
					return err
				}
			}
			out[p] = record('f', int64(n.Mode), n.UID, n.GID, n.Size, hex.EncodeToString(s.Sum(nil))[:12], "", n.ModTime)
		case layerfs.TypeSymlink:
			out[p] = record('l', int64(n.Mode), n.UID, n.GID, 0, "", n.Target, n.ModTime)
		default:
			out[p] = fmt.Sprintf("type %s", n.Type)
		}
		return nil
	})
	must(t, err)
	return out
}

func compareRecords(t *testing.T, got, want map[string]string) {
	t.Helper()
	var paths []string
	for p := range want {
		paths = append(paths, p)
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		g, gok := got[p]
		w, wok := want[p]
		switch {
		case !gok:
			t.Errorf("%s: missing from the loaded tree; docker export has %s", p, w)
		case !wok:
			t.Errorf("%s: %s in the loaded tree, absent from docker export", p, g)
		case g != w:
			t.Errorf("%s: loaded %s, docker export has %s", p, g, w)
		}
	}
	if len(want) < 10 {
		t.Errorf("docker export has only %d paths", len(want))
	}
}
