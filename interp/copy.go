package interp

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/parser"
)

// dispatchAdd runs ADD.
func (b *builder) dispatchAdd(st *stage, in *parser.Copy) (*LayerInfo, error) {
	return nil, fmt.Errorf("ADD is not supported yet; for local files and directories use COPY")
}

// copyOpts are the resolved flags of one COPY.
type copyOpts struct {
	uid, gid int
	chown    bool
	chmod    *chmodSpec // nil without --chmod
}

// dispatchCopy runs COPY from the build context, following BuildKit's copy rules
// (semantics.md §1), and commits the result as one layer.
func (b *builder) dispatchCopy(st *stage, in *parser.Copy) (*LayerInfo, error) {
	switch {
	case in.From != "":
		return nil, errors.New("COPY --from is not supported yet")
	case in.Link:
		return nil, errors.New("COPY --link is not supported yet")
	case in.Parents:
		return nil, errors.New("COPY --parents is not supported yet")
	case len(in.Exclude) > 0:
		return nil, errors.New("COPY --exclude is not supported yet")
	case len(in.Heredocs) > 0:
		return nil, errors.New("COPY with a here-document source is not supported yet")
	}
	env := st.env()
	var opts copyOpts
	var flagText string
	// A flag that expands to nothing is left out, of the copy and of the history, as
	// BuildKit leaves it out.
	chown, err := b.ex.Word(in.Chown, env)
	if err != nil {
		return nil, fmt.Errorf("expanding --chown: %w", err)
	}
	if chown != "" {
		// Names are looked up in the image as it is before this COPY.
		if opts.uid, opts.gid, err = parseChown(st.fs, chown); err != nil {
			return nil, err
		}
		opts.chown = true
		flagText += " --chown=" + chown
	}
	chmod, err := b.ex.Word(in.Chmod, env)
	if err != nil {
		return nil, fmt.Errorf("expanding --chmod: %w", err)
	}
	if chmod != "" {
		spec, err := parseChmod(chmod)
		if err != nil {
			return nil, err
		}
		opts.chmod = &spec
		flagText += " --chmod=" + chmod
	}

	srcs := make([]string, len(in.Sources))
	for i, s := range in.Sources {
		x, err := b.ex.Word(s, env)
		if err != nil {
			return nil, fmt.Errorf("expanding source %q: %w", s, err)
		}
		srcs[i] = x
	}
	dest, err := b.ex.Word(in.Dest, env)
	if err != nil {
		return nil, fmt.Errorf("expanding destination %q: %w", in.Dest, err)
	}

	// A destination ending in "/" (or "." alone) is a directory; a relative one is
	// taken from the WORKDIR.
	destIsDir := dest == "" || dest == "." || strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.")
	absDest := dest
	if !path.IsAbs(absDest) {
		wd := st.config.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		absDest = path.Join(wd, dest)
	}
	absDest = path.Clean(absDest)

	var matches []source
	for _, src := range srcs {
		ms, err := b.matchSources(src)
		if err != nil {
			return nil, err
		}
		matches = append(matches, ms...)
	}
	// Docker's reference says several sources need a directory destination ending in
	// "/". BuildKit does not check, and copies each file over the last one when the
	// destination is not a directory; dfbuild refuses that instead of losing files.
	// (Directories alone merge into the destination, so nothing is lost there.)
	allDirs := !slices.ContainsFunc(matches, func(m source) bool { return !m.info.IsDir() })
	if len(matches) > 1 && !destIsDir && !allDirs {
		if n, _, _ := st.fs.Stat(absDest); n == nil || !n.IsDir() {
			return nil, fmt.Errorf("%d sources (%s) but the destination %q is not a directory: "+
				"when COPY has several sources, the destination must end with a /", len(matches), sourceList(matches), dest)
		}
	}
	for _, m := range matches {
		if err := b.copySource(st, m, absDest, destIsDir, opts); err != nil {
			return nil, fmt.Errorf("copying %q: %w", m.name, err)
		}
	}
	msg := "COPY" + flagText + " " + strings.Join(srcs, " ") + " " + dest
	return st.commit(msg + " # buildkit"), nil
}

func sourceList(ms []source) string {
	var names []string
	for i, m := range ms {
		if i == 3 {
			names = append(names, fmt.Sprintf("and %d more", len(ms)-3))
			break
		}
		names = append(names, strconv.Quote(m.name))
	}
	return strings.Join(names, ", ")
}

// source is one thing a COPY source names: a context path after wildcard matching.
type source struct {
	name string // the path as matched, relative to the context root; its base names the copy
	real string // the resolved path in the context, every symlink followed
	info fs.FileInfo
}

// matchSources resolves one source argument: a plain path must exist; a pattern
// may match nothing. Sources are relative to the context root whatever they start
// with, so "/x", "./x" and "../x" all name x in the context.
func (b *builder) matchSources(src string) ([]source, error) {
	clean := strings.TrimPrefix(path.Clean("/"+src), "/")
	if clean == "" {
		clean = "."
	}
	if !hasWildcard(clean) {
		s, err := b.lookupSource(clean)
		if err != nil {
			return nil, b.notFound(src, clean, err)
		}
		return []source{s}, nil
	}
	segs := strings.Split(clean, "/")
	k := slices.IndexFunc(segs, hasWildcard)
	prefix := strings.Join(segs[:k], "/")
	if prefix == "" {
		prefix = "."
	}
	real, err := b.source.resolve(prefix, true)
	if err != nil {
		return nil, err
	}
	fi, err := b.source.lstat(real)
	if err != nil || !fi.IsDir() {
		return nil, b.notFound(src, prefix, fs.ErrNotExist)
	}
	var names []string
	if err := b.glob(real, prefix, segs[k:], &names); err != nil {
		return nil, err
	}
	out := make([]source, 0, len(names))
	for _, n := range names {
		s, err := b.lookupSource(n)
		if err != nil {
			// A dangling symlink matched by a pattern names nothing to copy.
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// glob walks dir (a real context path shown as shown) in lexical order, matching one
// pattern segment per level as filepath.Match does ("**" is no more than "*").
// A matched directory is not searched further.
func (b *builder) glob(dir, shown string, pattern []string, out *[]string) error {
	entries, err := b.source.readDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		ok, err := path.Match(pattern[0], e.Name())
		if err != nil {
			return fmt.Errorf("bad pattern %q: %w", strings.Join(pattern, "/"), err)
		}
		if !ok {
			continue
		}
		name := path.Join(shown, e.Name())
		if len(pattern) == 1 {
			*out = append(*out, name)
			continue
		}
		if e.IsDir() {
			if err := b.glob(path.Join(dir, e.Name()), name, pattern[1:], out); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasWildcard(s string) bool { return strings.ContainsAny(s, "*?[") }

// lookupSource follows a context path to what it names.
func (b *builder) lookupSource(name string) (source, error) {
	real, err := b.source.resolve(name, true)
	if err != nil {
		return source{}, err
	}
	fi, err := b.source.lstat(real)
	if err != nil {
		return source{}, err
	}
	return source{name: name, real: real, info: fi}, nil
}

// notFound explains a missing source: the .dockerignore line that excludes it, or
// else a close match where there is one.
func (b *builder) notFound(written, clean string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("source %q: %w", written, err)
	}
	msg := fmt.Sprintf("source %q: not found in the build context", written)
	if strings.Contains(written, "..") && !strings.HasPrefix(clean, "..") {
		msg += fmt.Sprintf(" (sources cannot leave the context: %q means %q inside it)", written, clean)
	}
	// A source that .dockerignore excludes is missing too (C5); say which line did it.
	if why := b.source.excluded(clean); why != "" {
		msg += ": " + why
	} else if near := b.nearest(clean); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	}
	return errors.New(msg)
}

// nearest finds the existing context path closest to a missing one: the deepest
// existing parent directory, then the entry in it with the nearest name.
func (b *builder) nearest(clean string) string {
	dir, base := path.Split(clean)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	real, err := b.source.resolve(dir, true)
	if err != nil {
		return ""
	}
	entries, err := b.source.readDir(real)
	if err != nil {
		return ""
	}
	best, bestDist := "", len(base)/2+1
	for _, e := range entries {
		if d := parser.EditDistance(strings.ToLower(base), strings.ToLower(e.Name())); d < bestDist {
			best, bestDist = path.Join(dir, e.Name()), d
		}
	}
	return best
}

// newDir is the template for directories COPY creates (C13): owned by root, or by
// the --chown ids; stamped with the build time; mode 0755, or an octal --chmod mode.
// That BuildKit gives created parents the octal mode is a quirk dfbuild keeps; a
// symbolic mode leaves them at 0755, since they have no mode of their own to change.
func (o copyOpts) newDir() layerfs.Node {
	n := layerfs.Node{Type: layerfs.TypeDir, Mode: 0o755, Stamped: true}
	if o.chmod != nil && o.chmod.octal {
		n.Mode = o.chmod.mode
	}
	if o.chown {
		n.UID, n.GID = o.uid, o.gid
	}
	return n
}

// apply gives a copied entry its owner and mode: root unless --chown, and --chmod on
// everything but symlinks. An octal mode replaces the entry's mode; a symbolic one
// changes it.
func (o copyOpts) apply(n *layerfs.Node) {
	n.UID, n.GID = 0, 0
	if o.chown {
		n.UID, n.GID = o.uid, o.gid
	}
	if o.chmod == nil || n.Type == layerfs.TypeSymlink {
		return
	}
	if o.chmod.octal {
		n.Mode = o.chmod.mode
	} else {
		n.Mode = o.chmod.symbolic.apply(n.Mode, n.IsDir())
	}
}

// copySource copies one matched source to the destination.
func (b *builder) copySource(st *stage, s source, absDest string, destIsDir bool, o copyOpts) error {
	if s.info.IsDir() {
		// A directory's contents go into the destination, which becomes a directory.
		real, err := st.fs.MkdirAll(absDest, o.newDir())
		if err != nil {
			return destError(absDest, err)
		}
		// Files hard-linked to each other inside the tree stay linked, as BuildKit's
		// copy keeps an inode map per source.
		links := map[fileID]uint64{}
		if err := b.copyTree(st, s.real, real, o, links); err != nil {
			return err
		}
		// BuildKit gives the destination the source directory's mtime, new or not.
		b.noteTime(s.info.ModTime())
		st.fs.SetMeta(real, func(n *layerfs.Node) { n.ModTime, n.Stamped = s.info.ModTime(), false })
		return nil
	}

	name := path.Base(s.name)
	target := absDest
	if destIsDir {
		dir, err := st.fs.MkdirAll(absDest, o.newDir())
		if err != nil {
			return destError(absDest, err)
		}
		target = path.Join(dir, name)
	} else if n, real, _ := st.fs.Stat(absDest); n != nil && n.IsDir() {
		target = path.Join(real, name)
	}
	// Symlinks on the way, the last one included, are followed inside the image.
	real, err := st.fs.Resolve(target, true)
	if err != nil {
		return destError(target, err)
	}
	if n := st.fs.Get(real); n != nil && n.IsDir() {
		real = path.Join(real, name)
	}
	parent, err := st.fs.MkdirAll(path.Dir(real), o.newDir())
	if err != nil {
		return destError(path.Dir(real), err)
	}
	real = path.Join(parent, path.Base(real))
	n, err := b.source.node(s.real, s.info)
	if err != nil {
		return err
	}
	o.apply(n)
	b.noteTime(n.ModTime)
	if old := st.fs.Get(real); old != nil && old.IsDir() {
		return fmt.Errorf("cannot replace directory %s with a file", real)
	}
	return st.fs.Put(real, n)
}

// copyTree merges the context directory src into the image directory dst. Symlinks
// below dst are not followed: an entry meets whatever is at its own path.
func (b *builder) copyTree(st *stage, src, dst string, o copyOpts, links map[fileID]uint64) error {
	entries, err := b.source.readDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		sp := path.Join(src, e.Name())
		dp := path.Join(dst, e.Name())
		fi, err := b.source.lstat(sp)
		if err != nil {
			return err
		}
		n, err := b.source.node(sp, fi)
		if err != nil {
			return fmt.Errorf("%s: %w", sp, err)
		}
		o.apply(n)
		b.noteTime(n.ModTime)
		old := st.fs.Get(dp)
		if n.IsDir() {
			if old != nil && !old.IsDir() {
				return fmt.Errorf("cannot copy directory %s onto the %s at %s", sp, old.Type, dp)
			}
			if err := st.fs.Put(dp, n); err != nil {
				return err
			}
			if err := b.copyTree(st, sp, dp, o, links); err != nil {
				return err
			}
			// The directory takes its source's metadata once its contents are in.
			st.fs.SetMeta(dp, func(x *layerfs.Node) { x.ModTime, x.Stamped = n.ModTime, false })
			continue
		}
		if old != nil && old.IsDir() {
			return fmt.Errorf("cannot replace directory %s with the %s %s", dp, n.Type, sp)
		}
		if id, ok := linkedID(fi); ok {
			if links[id] == 0 {
				links[id] = st.fs.NewLinkGroup()
			}
			n.HardLink = links[id]
		}
		if err := st.fs.Put(dp, n); err != nil {
			return err
		}
	}
	return nil
}

func destError(p string, err error) error {
	return fmt.Errorf("destination %s: %w", p, err)
}
