package interp

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/patternmatcher"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/parser"
)

// copyOpts are the resolved flags of one COPY or ADD that shape what it writes.
type copyOpts struct {
	uid, gid int
	chown    bool
	chmod    *chmodSpec // nil without --chmod
}

// copyJob is one COPY or ADD with its words expanded and its flags checked.
type copyJob struct {
	add       bool
	srcs      []string         // path and URL sources, expanded, in order
	docs      []parser.Heredoc // here-document sources, bodies expanded where due
	dest      string           // expanded, as written
	absDest   string           // from the root, WORKDIR applied, cleaned
	destIsDir bool             // written as a directory: a trailing "/", "." or ""
	opts      copyOpts
	from      sourceTree // the build context, or --from's filesystem
	fromCtx   bool       // from is the build context
	parents   bool
	exclude   *patternmatcher.PatternMatcher // nil without --exclude
	link      bool
	unpack    string // ADD --unpack: "", "true" or "false"
	checksum  string // ADD --checksum, expanded
	history   string // created_by, without " # buildkit"
}

// dispatchCopy runs COPY, following BuildKit's copy rules (dispatchCopy in
// dockerfile2llb/convert_copy.go, and fsutil's copy package), and
// commits the result as one layer.
func (b *builder) dispatchCopy(st *stage, in *parser.Copy) (*LayerInfo, error) {
	j, err := b.prepareCopy(st, in)
	if err != nil {
		return nil, err
	}
	if err := b.runCopy(st, j); err != nil {
		return nil, err
	}
	return st.commit(j.history + " # buildkit"), nil
}

// prepareCopy expands and checks the words and flags of a COPY or ADD, in the order
// BuildKit checks them.
func (b *builder) prepareCopy(st *stage, in *parser.Copy) (*copyJob, error) {
	env := st.env()
	j := &copyJob{add: in.Add, parents: in.Parents, unpack: in.Unpack, link: in.Link}
	flagText := ""
	if in.Parents {
		flagText += " --parents"
	}
	// A flag that expands to nothing is left out, of the copy and of the history, as
	// BuildKit leaves it out.
	chown, err := b.ex.WordVars(in.Chown, env)
	if err != nil {
		return nil, fmt.Errorf("expanding --chown: %w", err)
	}
	if chown != "" {
		lookIn := st.fs
		if in.Link {
			// A linked copy is made in an empty tree, which has no account files.
			if chownByName(chown) {
				return nil, fmt.Errorf("--chown=%s: user and group names cannot be looked up with --link, "+
					"which copies into an empty layer; use numeric uid[:gid]", chown)
			}
			lookIn = layerfs.New()
		}
		// Names are looked up in the image as it is before this instruction.
		if j.opts.uid, j.opts.gid, err = parseChown(lookIn, chown); err != nil {
			return nil, err
		}
		j.opts.chown = true
		flagText += " --chown=" + chown
	}
	chmod, err := b.ex.WordVars(in.Chmod, env)
	if err != nil {
		return nil, fmt.Errorf("expanding --chmod: %w", err)
	}
	if chmod != "" {
		spec, err := parseChmod(chmod)
		if err != nil {
			return nil, err
		}
		j.opts.chmod = &spec
		flagText += " --chmod=" + chmod
		// BuildKit links a copy only without --chmod.
		j.link = false
	}
	if len(in.Exclude) > 0 {
		// --exclude patterns are not expanded: BuildKit's CopyCommand.Expand expands
		// only --chown, --chmod, the sources and the destination.
		for _, p := range in.Exclude {
			if _, err := compilePattern(p); err != nil {
				return nil, fmt.Errorf("--exclude=%s: invalid pattern: %w", p, err)
			}
		}
		if j.exclude, err = patternmatcher.New(in.Exclude); err != nil {
			return nil, fmt.Errorf("--exclude: %w", err)
		}
	}

	paths, docs, err := splitSources(in)
	if err != nil {
		return nil, err
	}
	for _, s := range paths {
		x, err := b.ex.WordVars(s, env)
		if err != nil {
			return nil, fmt.Errorf("expanding source %q: %w", s, err)
		}
		j.srcs = append(j.srcs, x)
	}
	for _, d := range docs {
		if d.Expand {
			if d.Content, err = expandHeredoc(d.Content, env); err != nil {
				return nil, fmt.Errorf("expanding the here-document %q: %w", d.Name, err)
			}
		}
		j.docs = append(j.docs, d)
	}
	if j.dest, err = b.ex.WordVars(in.Dest, env); err != nil {
		return nil, fmt.Errorf("expanding destination %q: %w", in.Dest, err)
	}
	j.destIsDir, j.absDest = destPath(st, j.dest)

	if in.Add {
		if err := b.prepareAdd(j, in, env); err != nil {
			return nil, err
		}
	}
	j.from, j.fromCtx = b.source, true
	if in.From != "" {
		j.fromCtx = false
		// --from is never expanded (nor by CopyCommand.Expand); copyFromFS names the
		// stage or image.
		f, err := b.copyFromFS(st, in.From)
		if err != nil {
			return nil, err
		}
		j.from = newImageSource(f, fmt.Sprintf("the --from source %q", in.From))
	}

	// BuildKit writes the path sources, then the here-documents, then the destination.
	kw := "COPY"
	if in.Add {
		kw = "ADD"
	}
	words := []string{kw + flagText}
	words = append(words, j.srcs...)
	for _, d := range j.docs {
		words = append(words, "<<"+d.Name)
	}
	j.history = strings.Join(append(words, j.dest), " ")
	return j, nil
}

// destPath resolves a destination as written: one ending in "/" (or "." alone, or
// empty) is a directory, and a relative one is taken from the WORKDIR.
func destPath(st *stage, dest string) (isDir bool, abs string) {
	isDir = dest == "" || dest == "." || strings.HasSuffix(dest, "/") || strings.HasSuffix(dest, "/.")
	abs = dest
	if !path.IsAbs(abs) {
		wd := st.config.Config.WorkingDir
		if wd == "" {
			wd = "/"
		}
		abs = path.Join(wd, dest)
	}
	return isDir, path.Clean(abs)
}

// chownByName tells whether a --chown value names a user or group rather than giving
// numbers, as BuildKit decides it: "root" counts as a number.
func chownByName(s string) bool {
	for part := range strings.SplitSeq(s, ":") {
		if part == "" || part == "root" {
			continue
		}
		if _, numeric, _ := parseID(part); !numeric {
			return true
		}
	}
	return false
}

// heredocWord is how BuildKit's parser recognises a here-document word
// (parser.reHeredoc); the word after "<<" must not be empty.
var heredocWord = regexp.MustCompile(`^(\d*)<<(-?)\s*([^<]*)$`)

// splitSources separates the here-document sources from the path sources. The parser
// collected the bodies in the order the words come, and only in the non-JSON form.
func splitSources(in *parser.Copy) (paths []string, docs []parser.Heredoc, err error) {
	for _, s := range in.Sources {
		if len(docs) < len(in.Heredocs) {
			if m := heredocWord.FindStringSubmatch(s); m != nil && m[3] != "" {
				docs = append(docs, in.Heredocs[len(docs)])
				continue
			}
		}
		paths = append(paths, s)
	}
	if len(docs) != len(in.Heredocs) {
		return nil, nil, fmt.Errorf("matching %d here-documents to the sources: found %d", len(in.Heredocs), len(docs))
	}
	for _, d := range docs {
		if strings.Contains(d.Name, "/") {
			return nil, nil, fmt.Errorf("here-document %q: its name becomes a file name and cannot contain a /", d.Name)
		}
	}
	return paths, docs, nil
}

// expandHeredoc expands the body of a here-document whose delimiter was not quoted.
var expandHeredoc = parser.ExpandHeredocVars

// copyArg is one source of a COPY or ADD and what it matched.
type copyArg struct {
	written string     // the source as expanded, for messages
	tree    sourceTree // where the matches are
	matches []source
	unpack  bool // ADD: extract the matches that are archives
	context bool // the tree is the build context, whose mtimes count toward the build time
	// --parents: only the paths the pattern includes are copied, with the path they
	// have below each match; required, when set, must be among them.
	include  *patternmatcher.PatternMatcher
	literal  string // the pattern's leading path without wildcards, to skip whole directories
	required string
	clean    string // the required path from the tree's root, for the error
}

// runCopy copies every source into the stage's tree, or, with --link, into an empty
// tree that is then laid over the stage's, as BuildKit merges it (llb.Merge in
// dockerfile2llb/convert_copy.go).
func (b *builder) runCopy(st *stage, j *copyJob) error {
	args, err := b.gatherSources(j)
	if err != nil {
		return err
	}
	dst := st.fs
	if j.link {
		dst = layerfs.New()
	}
	// Docker's reference says several sources need a directory destination ending in
	// "/". BuildKit does not check, and copies each file over the last one when the
	// destination is not a directory; dfbuild refuses that instead of losing files.
	// (Directories, archives and --parents trees merge into the destination, so
	// nothing is lost there.)
	var all []source
	files := false
	for _, a := range args {
		all = append(all, a.matches...)
		for _, m := range a.matches {
			if !m.info.IsDir() && !m.archive && a.include == nil {
				files = true
			}
		}
	}
	if len(all) > 1 && !j.destIsDir && files {
		if n, _, _ := dst.Stat(j.absDest); n == nil || !n.IsDir() {
			return fmt.Errorf("%d sources (%s) but the destination %q is not a directory: "+
				"when %s has several sources, the destination must end with a /", len(all), sourceList(all), j.dest, keyword(j))
		}
	}
	for _, a := range args {
		c := &copier{b: b, dst: dst, src: a.tree, notes: a.context, o: j.opts,
			exclude: j.exclude, include: a.include, literal: a.literal}
		found := false
		if a.required != "" {
			c.seen = func(rel string) {
				if rel == a.required || strings.HasPrefix(rel, a.required+"/") {
					found = true
				}
			}
		}
		for _, m := range a.matches {
			if err := c.copySource(m, j.absDest, j.destIsDir, a.unpack); err != nil {
				return fmt.Errorf("copying %q: %w", m.name, err)
			}
		}
		if a.required != "" && !found {
			return b.notFound(a.tree, a.written, a.clean, fs.ErrNotExist)
		}
	}
	if j.link {
		if err := st.fs.Apply(dst); err != nil {
			return fmt.Errorf("merging the linked layer: %w", err)
		}
	}
	return nil
}

func keyword(j *copyJob) string {
	if j.add {
		return "ADD"
	}
	return "COPY"
}

// gatherSources resolves every source: wildcards and paths in the source tree, URLs
// fetched, here-documents made into files. BuildKit copies the path sources first,
// then the here-documents.
func (b *builder) gatherSources(j *copyJob) ([]copyArg, error) {
	var args []copyArg
	for _, src := range j.srcs {
		switch {
		case isGitSource(src):
			if !j.add {
				return nil, fmt.Errorf("source %q: COPY cannot copy a Git repository", src)
			}
			return nil, fmt.Errorf("source %q is a Git repository, and dfbuild does not clone repositories: "+
				"clone it beforehand and COPY the files from the build context", src)
		case isHTTPSource(src):
			if !j.add {
				return nil, fmt.Errorf("source %q: COPY cannot fetch a URL; ADD can", src)
			}
			a, err := b.urlArg(j, src)
			if err != nil {
				return nil, err
			}
			args = append(args, a)
			continue
		}
		var a copyArg
		var err error
		if j.parents {
			a, err = b.parentsArg(j.from, src)
		} else {
			a = copyArg{written: src, tree: j.from}
			a.matches, err = b.matchSources(j.from, src)
		}
		if err != nil {
			return nil, err
		}
		a.context = j.fromCtx
		// ADD extracts local archives unless --unpack=false (BuildKit: isArchivePath in
		// solver/llbsolver/file/unpack.go).
		a.unpack = j.add && j.unpack != "false"
		if a.unpack {
			for i := range a.matches {
				if a.matches[i].archive, err = isArchive(a.tree, a.matches[i]); err != nil {
					return nil, fmt.Errorf("source %q: %w", a.matches[i].name, err)
				}
			}
		}
		args = append(args, a)
	}
	for _, d := range j.docs {
		// Like BuildKit, each here-document is a file in an empty tree of its own:
		// mode 0644, owned by root, stamped with the build time, then copied.
		f := layerfs.New()
		n := &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o644, Stamped: true, Size: int64(len(d.Content)),
			Content: stringOpener(d.Content)}
		if err := f.Put("/"+d.Name, n); err != nil {
			return nil, fmt.Errorf("here-document %q: %w", d.Name, err)
		}
		tree := newImageSource(f, fmt.Sprintf("the here-document %q", d.Name))
		m, err := lookupSource(tree, d.Name)
		if err != nil {
			return nil, fmt.Errorf("here-document %q: %w", d.Name, err)
		}
		args = append(args, copyArg{written: "<<" + d.Name, tree: tree, matches: []source{m}})
	}
	return args, nil
}

// parentsArg resolves a --parents source (BuildKit's testCopyParents): the part
// before a "/./" pivot is matched like any source, and the rest becomes a pattern,
// in which "**" spans directories, that picks what is copied below each match, with
// its path.
func (b *builder) parentsArg(tree sourceTree, src string) (copyArg, error) {
	parent, pattern, pivot := strings.Cut(src, "/./")
	if !pivot {
		parent, pattern = "/", src
	}
	pattern = strings.TrimPrefix(path.Clean("/"+pattern), "/")
	a := copyArg{written: src, tree: tree}
	if pattern != "" {
		if _, err := compilePattern(pattern); err != nil {
			return copyArg{}, fmt.Errorf("source %q: invalid pattern %q: %w", src, pattern, err)
		}
		pm, err := patternmatcher.New([]string{pattern})
		if err != nil {
			return copyArg{}, fmt.Errorf("source %q: %w", src, err)
		}
		a.include = pm
		var lit []string
		for seg := range strings.SplitSeq(pattern, "/") {
			if strings.ContainsAny(seg, `*?[\`) {
				break
			}
			lit = append(lit, seg)
		}
		a.literal = strings.Join(lit, "/")
		// Without wildcards the path must exist; a pattern may match nothing.
		if !hasWildcard(parent) && !hasWildcard(pattern) {
			a.required = pattern
			a.clean = strings.TrimPrefix(path.Join("/", parent, pattern), "/")
		}
	}
	var err error
	a.matches, err = b.matchSources(tree, parent)
	return a, err
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

// source is one thing a source names: a path after wildcard matching.
type source struct {
	name    string // the path as matched, relative to the tree's root; its base names the copy
	real    string // the resolved path in the tree, every symlink followed
	info    fs.FileInfo
	archive bool // ADD: a tar archive, to be extracted
}

// matchSources resolves one source argument: a plain path must exist; a pattern
// may match nothing. Sources are relative to the tree's root whatever they start
// with, so "/x", "./x" and "../x" all name x in it.
func (b *builder) matchSources(tree sourceTree, src string) ([]source, error) {
	clean := strings.TrimPrefix(path.Clean("/"+src), "/")
	if clean == "" {
		clean = "."
	}
	if !hasWildcard(clean) {
		s, err := lookupSource(tree, clean)
		if err != nil {
			return nil, b.notFound(tree, src, clean, err)
		}
		return []source{s}, nil
	}
	segs := strings.Split(clean, "/")
	k := slices.IndexFunc(segs, hasWildcard)
	prefix := strings.Join(segs[:k], "/")
	if prefix == "" {
		prefix = "."
	}
	real, err := tree.resolve(prefix, true)
	if err != nil {
		return nil, err
	}
	fi, err := tree.lstat(real)
	if err != nil || !fi.IsDir() {
		return nil, b.notFound(tree, src, prefix, fs.ErrNotExist)
	}
	var names []string
	if err := glob(tree, real, prefix, segs[k:], &names); err != nil {
		return nil, err
	}
	out := make([]source, 0, len(names))
	for _, n := range names {
		s, err := lookupSource(tree, n)
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

// glob walks dir (a real path of the tree, shown as shown) in lexical order,
// matching one pattern segment per level as filepath.Match does ("**" is no more
// than "*"). A matched directory is not searched further.
func glob(tree sourceTree, dir, shown string, pattern []string, out *[]string) error {
	entries, err := tree.readDir(dir)
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
			if err := glob(tree, path.Join(dir, e.Name()), name, pattern[1:], out); err != nil {
				return err
			}
		}
	}
	return nil
}

func hasWildcard(s string) bool { return strings.ContainsAny(s, "*?[") }

// lookupSource follows a path of the tree to what it names.
func lookupSource(tree sourceTree, name string) (source, error) {
	real, err := tree.resolve(name, true)
	if err != nil {
		return source{}, err
	}
	fi, err := tree.lstat(real)
	if err != nil {
		return source{}, err
	}
	return source{name: name, real: real, info: fi}, nil
}

// notFound explains a missing source: the .dockerignore line that excludes it, or
// else a close match where there is one.
func (b *builder) notFound(tree sourceTree, written, clean string, err error) error {
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("source %q: %w", written, err)
	}
	msg := fmt.Sprintf("source %q: not found in %s", written, tree.where())
	if strings.Contains(written, "..") && !strings.HasPrefix(clean, "..") {
		msg += fmt.Sprintf(" (sources cannot leave the context: %q means %q inside it)", written, clean)
	}
	// A source that .dockerignore excludes is missing too, as in BuildKit (whose
	// linter says so: CopyIgnoredFile); say which line did it.
	if why := tree.excluded(clean); why != "" {
		msg += ": " + why
	} else if dangling(tree, clean) {
		msg += ": it is a symlink, and what it points to does not exist there"
	} else if near := nearest(tree, clean); near != "" {
		msg += fmt.Sprintf("; did you mean %q?", near)
	}
	return errors.New(msg)
}

// dangling reports whether clean names a symlink whose target is missing.
func dangling(tree sourceTree, clean string) bool {
	real, err := tree.resolve(clean, false)
	if err != nil {
		return false
	}
	fi, err := tree.lstat(real)
	return err == nil && fi.Mode()&fs.ModeSymlink != 0
}

// nearest finds the existing path closest to a missing one: the deepest existing
// parent directory, then the entry in it with the nearest name.
func nearest(tree sourceTree, clean string) string {
	dir, base := path.Split(clean)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	real, err := tree.resolve(dir, true)
	if err != nil {
		return ""
	}
	entries, err := tree.readDir(real)
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

// newDir is the template for directories COPY creates (BuildKit's testCopyChmod,
// testCopyChownCreateDest): owned by root, or by the --chown ids; stamped with the
// build time; mode 0755, or an octal --chmod mode. That BuildKit gives created
// parents the octal mode is a quirk dfbuild keeps; a symbolic mode leaves them at
// 0755, since they have no mode of their own to change.
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

// apply gives a copied entry its owner and mode: the --chown ids when given (the
// build context's entries are owned by root already, an image's keep their owners),
// and --chmod on everything but symlinks. An octal mode replaces the entry's mode; a
// symbolic one changes it.
func (o copyOpts) apply(n *layerfs.Node) {
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

// copier copies the matches of one source argument into a tree, the way
// tonistiigi/fsutil's copier does for BuildKit.
type copier struct {
	b     *builder
	dst   *layerfs.FS
	src   sourceTree
	notes bool // the source is the build context, whose mtimes count toward the build time
	o     copyOpts
	// include (--parents) and exclude (--exclude) filter what is below each match;
	// the match itself is always copied (moby/buildkit#5489).
	include *patternmatcher.PatternMatcher
	literal string
	exclude *patternmatcher.PatternMatcher
	// links gives the files hard-linked to each other in the match being copied one
	// link group in the copy. BuildKit copies each match of a source on its own, with
	// an inode map of its own, so files linked across matches are not linked.
	links map[fileID]uint64
	// pending are the directories on the way to the entry being looked at that
	// the filters left out so far; they are made once something below them is copied.
	pending []pendingDir
	seen    func(rel string) // told of each path the filters let through
}

type pendingDir struct {
	src, dst string
	fi       fs.FileInfo
	made     bool
}

func (c *copier) note(n *layerfs.Node) {
	if c.notes && !n.Stamped {
		c.b.noteTime(n.ModTime)
	}
}

func (c *copier) linkGroup(fi fs.FileInfo) uint64 {
	id, ok := c.src.linkID(fi)
	if !ok {
		return 0
	}
	if c.links[id] == 0 {
		c.links[id] = c.dst.NewLinkGroup()
	}
	return c.links[id]
}

// copySource copies one match to the destination: an archive is extracted into it,
// a directory's contents merge into it, a file goes into or becomes it.
func (c *copier) copySource(s source, absDest string, destIsDir, unpack bool) error {
	c.links = map[fileID]uint64{}
	switch {
	case unpack && s.archive:
		return c.extract(s, absDest)
	case s.info.IsDir():
		return c.copyDir(s, absDest)
	}
	return c.copyFile(s, absDest, destIsDir)
}

// copyDir merges a directory's contents into the destination, which becomes a
// directory.
func (c *copier) copyDir(s source, absDest string) error {
	real, err := c.dst.MkdirAll(absDest, c.o.newDir())
	if err != nil {
		return destError(absDest, err)
	}
	if err := c.copyTree(s.real, real, "", patternmatcher.MatchInfo{}, patternmatcher.MatchInfo{}); err != nil {
		return err
	}
	// BuildKit gives the destination the source directory's mtime, new or not.
	if c.notes {
		c.b.noteTime(s.info.ModTime())
	}
	c.dst.SetMeta(real, func(n *layerfs.Node) { n.ModTime, n.Stamped = s.info.ModTime(), false })
	return nil
}

// copyFile copies a file (or symlink, device, fifo) source: into the destination if
// that is a directory, otherwise as the destination.
func (c *copier) copyFile(s source, absDest string, destIsDir bool) error {
	name := path.Base(s.name)
	target := absDest
	// named is true when the copy takes the source's own name inside a directory.
	named := false
	if destIsDir {
		dir, err := c.dst.MkdirAll(absDest, c.o.newDir())
		if err != nil {
			return destError(absDest, err)
		}
		target, named = path.Join(dir, name), true
	} else if n, real, _ := c.dst.Stat(absDest); n != nil && n.IsDir() {
		target, named = path.Join(real, name), true
	}
	// Symlinks on the way are followed inside the image. The last one is followed
	// only for a destination written out (COPY f /link), as BuildKit does: a name
	// taken from the source replaces a symlink already there (fsutil's copier
	// removes it), so "COPY s f d/" with s/f -> ../f cannot write outside d.
	real, err := c.dst.Resolve(target, !named)
	if err != nil {
		return destError(target, err)
	}
	if n := c.dst.Get(real); n != nil && n.IsDir() {
		real = path.Join(real, name)
	}
	parent, err := c.dst.MkdirAll(path.Dir(real), c.o.newDir())
	if err != nil {
		return destError(path.Dir(real), err)
	}
	real = path.Join(parent, path.Base(real))
	n, err := c.src.node(s.real, s.info)
	if err != nil {
		return err
	}
	c.o.apply(n)
	c.note(n)
	if old := c.dst.Get(real); old != nil && old.IsDir() {
		return fmt.Errorf("cannot replace directory %s with a file", real)
	}
	return c.dst.Put(real, n)
}

// copyTree merges the source directory src into the directory dst. Symlinks below
// dst are not followed: an entry meets whatever is at its own path. rel is src's path
// below the match, which the filters see; inc and exc are their results for it.
func (c *copier) copyTree(src, dst, rel string, inc, exc patternmatcher.MatchInfo) error {
	// A walk of a large context stops once the build is interrupted.
	if err := c.b.ctx.Err(); err != nil {
		return err
	}
	entries, err := c.src.readDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		sp := path.Join(src, e.Name())
		dp := path.Join(dst, e.Name())
		r := path.Join(rel, e.Name())
		include, excluded := true, false
		var ii, ei patternmatcher.MatchInfo
		if c.include != nil {
			if include, ii, err = c.include.MatchesUsingParentResults(r, inc); err != nil {
				return fmt.Errorf("matching %q: %w", r, err)
			}
		}
		if c.exclude != nil {
			var m bool
			if m, ei, err = c.exclude.MatchesUsingParentResults(r, exc); err != nil {
				return fmt.Errorf("matching %q against --exclude: %w", r, err)
			}
			if m {
				include, excluded = false, true
			}
		}
		// Nothing below an excluded path can come back without an exception.
		if !include && c.include == nil && !c.exclude.Exclusions() {
			continue
		}
		fi, err := c.src.lstat(sp)
		if err != nil {
			return err
		}
		if !include && !fi.IsDir() {
			continue
		}
		if include {
			if err := c.makePending(); err != nil {
				return err
			}
			if c.seen != nil {
				c.seen(r)
			}
		}
		if fi.IsDir() {
			if err := c.copySubdir(sp, dp, r, fi, include, excluded, ii, ei); err != nil {
				return err
			}
			continue
		}
		n, err := c.src.node(sp, fi)
		if err != nil {
			return fmt.Errorf("%s: %w", sp, err)
		}
		c.o.apply(n)
		c.note(n)
		if old := c.dst.Get(dp); old != nil && old.IsDir() {
			return fmt.Errorf("cannot replace directory %s with the %s %s", dp, n.Type, sp)
		}
		n.HardLink = c.linkGroup(fi)
		if err := c.dst.Put(dp, n); err != nil {
			return err
		}
	}
	return nil
}

// copySubdir copies a directory below a match. One the filters let through is made
// at once, and gets its source's mtime back once its contents are in; one they left
// out waits in c.pending until something below it is copied.
func (c *copier) copySubdir(sp, dp, r string, fi fs.FileInfo, include, excluded bool, ii, ei patternmatcher.MatchInfo) error {
	var n *layerfs.Node
	if include {
		var err error
		if n, err = c.src.node(sp, fi); err != nil {
			return fmt.Errorf("%s: %w", sp, err)
		}
		c.o.apply(n)
		c.note(n)
		if old := c.dst.Get(dp); old != nil && !old.IsDir() {
			return fmt.Errorf("cannot copy directory %s onto the %s at %s", sp, old.Type, dp)
		}
		if err := c.dst.Put(dp, n); err != nil {
			return err
		}
	} else {
		if excluded && !c.exclude.Exclusions() {
			return nil
		}
		if c.include != nil && !c.mayInclude(r) {
			return nil
		}
		c.pending = append(c.pending, pendingDir{src: sp, dst: dp, fi: fi})
		defer func() { c.pending = c.pending[:len(c.pending)-1] }()
	}
	if err := c.copyTree(sp, dp, r, ii, ei); err != nil {
		return err
	}
	if n != nil {
		c.dst.SetMeta(dp, func(x *layerfs.Node) { x.ModTime, x.Stamped = n.ModTime, false })
	}
	return nil
}

// mayInclude tells whether the --parents pattern could include something below the
// directory rel: its fixed leading path must lead there or be above it.
func (c *copier) mayInclude(rel string) bool {
	l := c.literal
	return l == "" || l == rel || strings.HasPrefix(l, rel+"/") || strings.HasPrefix(rel, l+"/")
}

// makePending makes the directories the filters left out on the way to an entry
// they let through, as fsutil makes them: a new one from its source, which then
// takes the build time as entries go into it; an existing one only takes its
// source's mode (not --chmod's).
func (c *copier) makePending() error {
	for i := range c.pending {
		p := &c.pending[i]
		if p.made {
			continue
		}
		old := c.dst.Get(p.dst)
		switch {
		case old == nil:
			n, err := c.src.node(p.src, p.fi)
			if err != nil {
				return fmt.Errorf("%s: %w", p.src, err)
			}
			c.o.apply(n)
			c.note(n)
			if err := c.dst.Put(p.dst, n); err != nil {
				return err
			}
		case !old.IsDir():
			return fmt.Errorf("cannot copy directory %s onto the %s at %s", p.src, old.Type, p.dst)
		default:
			mode := unixMode(p.fi.Mode())
			c.dst.SetMeta(p.dst, func(x *layerfs.Node) { x.Mode = mode })
		}
		p.made = true
	}
	return nil
}

func destError(p string, err error) error {
	return fmt.Errorf("destination %s: %w", p, err)
}
