package layerfs_test

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
)

// Operations of the little language FuzzLayerRoundTrip's input is read as. Each
// operation is an opcode byte followed by its operands; a missing byte reads as 0.
const (
	opMkdir   = iota // path, mode
	opFile           // path, mode, length (content bytes follow)
	opSymlink        // path, target
	opRemove         // path
	opCommit         //
	opChmod          // path, mode, uid
	opDir            // path, mode: Put a directory (merge or replace)
	opLink           // path, source path: a hard link to a regular file
	numOps
)

// fuzzNames are the path components the fuzzer picks from: short names that collide
// often, a name long enough to need PAX, non-ASCII, and a reserved whiteout name the
// tree must refuse.
var fuzzNames = []string{"a", "b", "c", "a.b", strings.Repeat("long", 30), "é", ".wh.x", ".."}

var fuzzTargets = []string{"a", "/a", "../a", "a/b", "..", "/", "missing", "b/../c", "/a/b/c", "."}

var fuzzModes = []uint32{0o755, 0o644, 0o700, 0o4755, 0o1777, 0}

type program struct {
	b []byte
}

func (p *program) next() byte {
	if len(p.b) == 0 {
		return 0
	}
	c := p.b[0]
	p.b = p.b[1:]
	return c
}

func (p *program) path() string {
	depth := 1 + int(p.next())%3
	parts := make([]string, depth)
	for i := range parts {
		parts[i] = fuzzNames[int(p.next())%len(fuzzNames)]
	}
	return "/" + strings.Join(parts, "/")
}

// modelEntry is one path of the model a layer stack is applied to.
type modelEntry struct {
	typ    byte
	mode   int64
	uid    int
	gid    int
	body   string
	target string
	major  int64
	minor  int64
}

func (e modelEntry) String() string {
	return fmt.Sprintf("%c %o %d:%d %q %q", e.typ, e.mode, e.uid, e.gid, e.body, e.target)
}

// applyLayer applies a layer tar to m the way an image store unpacks it: whiteouts
// first, against the layers below, then every entry in order. It checks the layer
// rules on the way.
func applyLayer(t *testing.T, m map[string]modelEntry, layer []byte) {
	t.Helper()
	type ent struct {
		h    *tar.Header
		body string
	}
	var ents []ent
	seen := map[string]bool{}
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("reading layer: %v", err)
		}
		body, err := io.ReadAll(tr)
		if err != nil || int64(len(body)) != h.Size {
			t.Fatalf("entry %q: %d body bytes of %d: %v", h.Name, len(body), h.Size, err)
		}
		name := strings.TrimSuffix(h.Name, "/")
		if seen[name] {
			t.Fatalf("entry %q twice", h.Name)
		}
		if d := path.Dir(name); d != "." && !seen[d] {
			t.Fatalf("entry %q before its parent", h.Name)
		}
		if name == "" || strings.HasPrefix(name, "/") || path.Clean(name) != name {
			t.Fatalf("entry %q: not a clean relative name", h.Name)
		}
		seen[name] = true
		ents = append(ents, ent{h, string(body)})
	}

	removeTree := func(p string) {
		for k := range m {
			if k == p || strings.HasPrefix(k, p+"/") {
				delete(m, k)
			}
		}
	}
	for _, e := range ents {
		name := strings.TrimSuffix(e.h.Name, "/")
		dir, base := path.Split(name)
		dir = strings.TrimSuffix(dir, "/")
		if !strings.HasPrefix(base, ".wh.") {
			continue
		}
		if e.h.Typeflag != tar.TypeReg || e.h.Size != 0 || e.h.Mode != 0 || e.h.ModTime.Unix() != 0 {
			t.Fatalf("whiteout %q is not an empty mode-0 file at the epoch", e.h.Name)
		}
		if base == ".wh..wh..opq" {
			if lower, ok := m[dir]; !ok || lower.typ != tar.TypeDir {
				t.Fatalf("opaque marker %q for a directory that was not one below", e.h.Name)
			}
			for k := range m {
				if strings.HasPrefix(k, dir+"/") {
					delete(m, k)
				}
			}
			continue
		}
		hidden := path.Join(dir, strings.TrimPrefix(base, ".wh."))
		if _, ok := m[hidden]; !ok {
			t.Fatalf("whiteout %q for %q, which no lower layer has", e.h.Name, hidden)
		}
		if seen[hidden] {
			t.Fatalf("whiteout %q and the path it hides in one layer", e.h.Name)
		}
		removeTree(hidden)
	}
	inLayer := map[string]bool{}
	for _, e := range ents {
		name := strings.TrimSuffix(e.h.Name, "/")
		if strings.HasPrefix(path.Base(name), ".wh.") {
			continue
		}
		if d := path.Dir(name); d != "." {
			if p, ok := m[d]; !ok || p.typ != tar.TypeDir {
				t.Fatalf("entry %q: parent is not a directory when applied", e.h.Name)
			}
		}
		ne := modelEntry{typ: e.h.Typeflag, mode: e.h.Mode, uid: e.h.Uid, gid: e.h.Gid,
			body: e.body, target: e.h.Linkname, major: e.h.Devmajor, minor: e.h.Devminor}
		if e.h.Typeflag == tar.TypeLink {
			// A hard link is another name for a file written earlier in this layer;
			// the two share one inode, so its own header must agree with it.
			first, ok := m[e.h.Linkname]
			if !ok || first.typ != tar.TypeReg || !inLayer[e.h.Linkname] {
				t.Fatalf("hard link %q to %q, which is not a file earlier in the layer", e.h.Name, e.h.Linkname)
			}
			if first.mode != ne.mode || first.uid != ne.uid || first.gid != ne.gid {
				t.Fatalf("hard link %q has metadata %v, its file %q has %v", e.h.Name, ne, e.h.Linkname, first)
			}
			ne = first
		}
		if old, ok := m[name]; !ok || old.typ != tar.TypeDir || ne.typ != tar.TypeDir {
			removeTree(name)
		}
		m[name] = ne
		inLayer[name] = true
	}
}

// modelOf renders the tree as a model, reading every file's contents.
func modelOf(t *testing.T, fsys *layerfs.FS) map[string]modelEntry {
	t.Helper()
	m := map[string]modelEntry{}
	err := fsys.Walk(func(p string, n *layerfs.Node) error {
		e := modelEntry{mode: int64(n.Mode & 0o7777), uid: n.UID, gid: n.GID, target: n.Target, major: n.Major, minor: n.Minor}
		switch n.Type {
		case layerfs.TypeDir:
			e.typ = tar.TypeDir
		case layerfs.TypeReg:
			e.typ = tar.TypeReg
			e.body = string(readAll(t, n.Content))
		case layerfs.TypeSymlink:
			e.typ = tar.TypeSymlink
		default:
			return fmt.Errorf("unexpected type %v at %s", n.Type, p)
		}
		m[strings.TrimPrefix(p, "/")] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func compareModels(t *testing.T, got, want map[string]modelEntry) {
	t.Helper()
	var keys []string
	for k := range got {
		keys = append(keys, k)
	}
	for k := range want {
		if _, ok := got[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	bad := 0
	for _, k := range keys {
		g, gok := got[k]
		w, wok := want[k]
		if gok != wok || g != w {
			if bad++; bad <= 10 {
				t.Errorf("%s: layers give %v (present %v), tree has %v (present %v)", k, g, gok, w, wok)
			}
		}
	}
	if bad > 0 {
		t.FailNow()
	}
}

// FuzzLayerRoundTrip runs a program of tree operations; after each commit it writes
// the layer, checks it and applies it to a model of the image, which must then equal
// the tree.
func FuzzLayerRoundTrip(f *testing.F) {
	f.Add([]byte{opFile, 0, 0, 1, 5, 'h', 'e', 'l', 'l', 'o', opCommit})
	f.Add([]byte{opMkdir, 2, 0, 1, 2, 0, opFile, 2, 0, 1, 2, 1, 3, 'a', 'b', 'c', opCommit,
		opRemove, 0, 0, opCommit, opMkdir, 0, 0, 1, opCommit})
	f.Add([]byte{opMkdir, 0, 0, 0, opSymlink, 0, 1, 1, opFile, 1, 1, 2, 1, 2, 'x', 'y', opCommit,
		opRemove, 1, 0, 2, opChmod, 0, 0, 2, 7, opCommit})
	f.Add([]byte{opMkdir, 1, 0, 1, 0, opFile, 1, 0, 2, 1, 1, 'z', opCommit,
		opRemove, 0, 0, opMkdir, 0, 0, 0, opFile, 1, 0, 3, 1, 1, 'q', opCommit,
		opFile, 0, 0, 1, 0, opDir, 0, 0, 0, opCommit})
	f.Add([]byte{opFile, 0, 4, 0, 1, 'L', opSymlink, 0, 5, 2, opFile, 0, 6, 0, 1, 'w', opCommit,
		opFile, 0, 2, 0, 1, 't', opFile, 0, 2, 0, 1, 'u', opRemove, 0, 2, opCommit})
	f.Add([]byte{opFile, 0, 0, 1, 2, 'h', 'l', opLink, 0, 1, 0, 0, opLink, 0, 2, 0, 0, opCommit,
		opChmod, 0, 1, 2, 9, opLink, 0, 3, 0, 2, opCommit, opRemove, 0, 0, opCommit})
	f.Add([]byte{opFile, 0, 0, 0, 1, 'x', opLink, 0, 1, 0, 0, opChmod, 0, 1, 2, 0, opCommit})

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 512 {
			in = in[:512]
		}
		p := &program{b: in}
		fsys := layerfs.New()
		model := map[string]modelEntry{}
		opts := layerfs.TarOptions{BuildTime: buildTime}
		commit := func() {
			c := fsys.Commit()
			l, err := c.Layer(opts)
			if err != nil {
				t.Fatalf("Layer: %v", err)
			}
			var buf bytes.Buffer
			n, err := l.WriteTo(&buf)
			if err != nil || n != l.Size() || int64(buf.Len()) != n {
				t.Fatalf("WriteTo = %d, %v; Size %d, wrote %d", n, err, l.Size(), buf.Len())
			}
			var again bytes.Buffer
			if _, err := l.WriteTo(&again); err != nil || !bytes.Equal(buf.Bytes(), again.Bytes()) {
				t.Fatalf("second write differs: %v", err)
			}
			applyLayer(t, model, buf.Bytes())
			compareModels(t, model, modelOf(t, fsys))
		}
		for ops := 0; len(p.b) > 0 && ops < 64; ops++ {
			switch p.next() % numOps {
			case opMkdir:
				target := p.path()
				mode := fuzzModes[int(p.next())%len(fuzzModes)]
				_, _ = fsys.MkdirAll(target, layerfs.Node{Mode: mode, Stamped: true})
			case opFile:
				target := p.path()
				mode := fuzzModes[int(p.next())%len(fuzzModes)]
				n := int(p.next()) % 40
				body := make([]byte, n)
				for i := range body {
					body[i] = p.next()
				}
				if real, err := fsys.Resolve(target, false); err == nil {
					_ = fsys.Put(real, &layerfs.Node{Type: layerfs.TypeReg, Mode: mode, Size: int64(n), Content: opener(body)})
				}
			case opSymlink:
				target := p.path()
				to := fuzzTargets[int(p.next())%len(fuzzTargets)]
				if real, err := fsys.Resolve(target, false); err == nil {
					_ = fsys.Put(real, &layerfs.Node{Type: layerfs.TypeSymlink, Mode: 0o777, Target: to})
				}
			case opRemove:
				if real, err := fsys.Resolve(p.path(), false); err == nil {
					_ = fsys.Remove(real)
				}
			case opCommit:
				commit()
			case opChmod:
				target := p.path()
				mode := fuzzModes[int(p.next())%len(fuzzModes)]
				uid := int(p.next())
				if real, err := fsys.Resolve(target, false); err == nil {
					fsys.SetMeta(real, func(n *layerfs.Node) { n.Mode, n.UID = mode, uid })
				}
			case opLink:
				target, source := p.path(), p.path()
				real, err := fsys.Resolve(target, false)
				if err != nil {
					break
				}
				srcReal, err := fsys.Resolve(source, false)
				src := fsys.Get(srcReal)
				if err != nil || src == nil || src.Type != layerfs.TypeReg {
					break
				}
				if src.HardLink == 0 {
					id := fsys.NewLinkGroup()
					fsys.SetMeta(srcReal, func(n *layerfs.Node) { n.HardLink = id })
				}
				link := *fsys.Get(srcReal)
				_ = fsys.Put(real, &link)
			case opDir:
				target := p.path()
				mode := fuzzModes[int(p.next())%len(fuzzModes)]
				if real, err := fsys.Resolve(target, false); err == nil {
					_ = fsys.Put(real, &layerfs.Node{Type: layerfs.TypeDir, Mode: mode, Stamped: true})
				}
			}
		}
		commit()
		// The tree never holds a name a layer would read as a whiteout.
		_ = fsys.Walk(func(p string, n *layerfs.Node) error {
			if strings.HasPrefix(path.Base(p), ".wh.") {
				t.Fatalf("the tree holds %s", p)
			}
			return nil
		})
	})
}

// FuzzLoadRootfs feeds arbitrary bytes to LoadRootfs: it must return an error or a
// tree, never panic, and a tree it returns must have readable files of the recorded
// sizes and a layer that writes exactly the (decompressed) input.
func FuzzLoadRootfs(f *testing.F) {
	rich, _ := richTar(f)
	f.Add(rich)
	f.Add(makeTar(f, dirEnt("./"), reg("a", "a"), hardlinkEnt("b", "a"), symlinkEnt("c", "a")))
	f.Add(makeTar(f, reg("a/b/c", "x"), dirEnt("a/")))
	f.Add(makeTar(f, reg("/abs", "x")))
	f.Add(makeTar(f, reg("a", "1"), reg("a", "2")))
	f.Add([]byte{})
	f.Add([]byte("not a tar"))
	f.Add(compressors[1].comp(f, makeTar(f, reg("g", "gzip"))))
	f.Add(compressors[4].comp(f, makeTar(f, reg("z", "zstd"))))
	// Issue 11, faults 4 and 5: a file 300 deep, within MaxPathLen, and one 2,100
	// deep and a symlink target of 4 KiB, past it.
	f.Add(makeTar(f, reg(strings.Repeat("a/", 300)+"f", "x")))
	f.Add(makeTar(f, reg(strings.Repeat("a/", 2100)+"f", "x")))
	f.Add(makeTar(f, symlinkEnt("l", strings.Repeat("x/", 2048))))

	// One directory for every input a worker runs, emptied after each, because
	// making directories costs more than loading most inputs.
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, in []byte) {
		file, spool := filepath.Join(dir, "rootfs"), filepath.Join(dir, "spool")
		defer os.RemoveAll(spool)
		if err := os.WriteFile(file, in, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(spool, 0o755); err != nil {
			t.Fatal(err)
		}
		r, err := layerfs.LoadRootfs(file, spool)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if n, err := r.Layer.WriteTo(&buf); err != nil || n != r.Layer.Size() {
			t.Fatalf("layer WriteTo = %d, %v; Size %d", n, err, r.Layer.Size())
		}
		if r.Compression == layerfs.Uncompressed && !bytes.Equal(buf.Bytes(), in) {
			t.Fatalf("layer bytes differ from a plain input")
		}
		err = r.FS.Walk(func(p string, n *layerfs.Node) error {
			if strings.HasPrefix(path.Base(p), ".wh.") {
				return fmt.Errorf("whiteout name %s loaded", p)
			}
			if n.Type != layerfs.TypeReg {
				return nil
			}
			var got int
			if n.Content != nil {
				rc, err := n.Content()
				if err != nil {
					return err
				}
				b, err := io.ReadAll(rc)
				rc.Close()
				if err != nil {
					return err
				}
				got = len(b)
			}
			if int64(got) != n.Size {
				return fmt.Errorf("%s: read %d bytes, size %d", p, got, n.Size)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
