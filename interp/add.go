package interp

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/parser"
)

// dispatchAdd runs ADD: everything COPY does from the build context, plus local tar
// archives extracted into the destination and http(s) URLs downloaded. It commits
// one layer, as COPY does.
func (b *builder) dispatchAdd(st *stage, in *parser.Copy) (*LayerInfo, error) {
	return b.dispatchCopy(st, in)
}

// prepareAdd checks ADD's own flags, in the order BuildKit checks them.
func (b *builder) prepareAdd(j *copyJob, in *parser.Copy, env parser.Vars) error {
	if in.KeepGit {
		return errors.New("--keep-git-dir: dfbuild does not clone Git repositories; " +
			"clone the repository beforehand and COPY the files from the build context")
	}
	sum, err := b.ex.WordVars(in.Checksum, env)
	if err != nil {
		return fmt.Errorf("expanding --checksum: %w", err)
	}
	if sum == "" {
		return nil
	}
	if len(j.srcs) != 1 {
		return fmt.Errorf("--checksum=%s: it checks one source, and there are %d", sum, len(j.srcs))
	}
	if !isHTTPSource(j.srcs[0]) && !isGitSource(j.srcs[0]) {
		return fmt.Errorf("--checksum=%s: it checks http(s) and Git sources only, and %q is neither", sum, j.srcs[0])
	}
	if _, err := parseChecksum(sum); err != nil {
		return fmt.Errorf("--checksum=%s: %w", sum, err)
	}
	j.checksum = sum
	return nil
}

// isArchive tells whether ADD extracts the file s, as BuildKit decides it
// (solver/llbsolver/file/unpack.go, isArchivePath): a regular file whose contents,
// once decompressed (gzip, bzip2, xz or zstd, detected by content), start with a
// tar header that parses. Anything else is copied as it is.
func isArchive(tree sourceTree, s source) (bool, error) {
	if !s.info.Mode().IsRegular() || s.info.Size() == 0 {
		return false, nil
	}
	n, err := tree.node(s.real, s.info)
	if err != nil {
		return false, err
	}
	if n.Content == nil {
		return false, nil
	}
	rc, err := n.Content()
	if err != nil {
		return false, fmt.Errorf("reading it to see whether it is an archive: %w", err)
	}
	defer rc.Close()
	br := bufio.NewReader(rc)
	dr, err := layerfs.Decompress(br, layerfs.DetectCompression(br))
	if err != nil {
		return false, nil
	}
	defer dr.Close()
	_, err = tar.NewReader(dr).Next()
	return err == nil, nil
}

// unpackDir is the template for the directories ADD creates to extract an archive
// into: 0755 whatever --chmod says, owned by root or the --chown ids, as BuildKit's
// unpack makes them with copy.MkdirAll.
func (o copyOpts) unpackDir() layerfs.Node {
	n := layerfs.Node{Type: layerfs.TypeDir, Mode: 0o755, Stamped: true}
	if o.chown {
		n.UID, n.GID = o.uid, o.gid
	}
	return n
}

// extract unpacks the archive s into the directory absDest: the destination of an
// archive is always a directory (BuildKit's testDockerfileAddArchiveWildcard). File
// bodies stay where they are: in the archive itself when it is not compressed,
// otherwise in its decompressed copy, spooled into the build's scratch directory;
// the tree refers to them by offset.
func (c *copier) extract(s source, absDest string) (err error) {
	n, err := c.src.node(s.real, s.info)
	if err != nil {
		return err
	}
	c.note(n)
	root, err := c.dst.MkdirAll(absDest, c.o.unpackDir())
	if err != nil {
		return destError(absDest, err)
	}
	rc, err := n.Content()
	if err != nil {
		return fmt.Errorf("opening the archive: %w", err)
	}
	defer rc.Close()
	br := bufio.NewReaderSize(ctxReader{c.b.ctx, rc}, 1<<20)
	comp := layerfs.DetectCompression(br)
	x := &tarExtractor{fs: c.dst, root: root, chown: c.o.chown, uid: c.o.uid, gid: c.o.gid}
	if comp == layerfs.Uncompressed {
		x.body = func(off, size int64) layerfs.Opener { return offsetOpener(n.Content, off, size) }
		return x.run(br)
	}
	dr, err := layerfs.Decompress(br, comp)
	if err != nil {
		return fmt.Errorf("reading %s data: %w", comp, err)
	}
	defer dr.Close()
	spool, err := os.CreateTemp(c.b.tmp, "add-*.tar")
	if err != nil {
		return fmt.Errorf("spooling the decompressed archive: %w", err)
	}
	defer spool.Close()
	name := spool.Name()
	w := bufio.NewWriterSize(spool, 1<<20)
	x.body = func(off, size int64) layerfs.Opener { return fileSection(name, off, size) }
	if err := x.run(io.TeeReader(dr, w)); err != nil {
		return err
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("spooling the decompressed archive: %w", err)
	}
	if err := spool.Close(); err != nil {
		return fmt.Errorf("spooling the decompressed archive: %w", err)
	}
	return nil
}

// tarExtractor unpacks one tar stream into a directory of a tree the way BuildKit's
// ADD does, with go-archive's Untar chrooted at the destination: names and
// symlinks resolve inside the destination and never leave it, an existing entry is
// replaced unless a directory meets a directory, implied parents are 0755 and owned
// by root, and each entry keeps the mode and time of its header and its owner, or
// takes the --chown ids.
type tarExtractor struct {
	fs       *layerfs.FS
	root     string // the destination's real path
	chown    bool
	uid, gid int
	// body returns an opener for the size bytes at offset off of the tar stream.
	body func(off, size int64) layerfs.Opener
	// dirs are the directory entries, whose times are set once every entry is in,
	// as go-archive sets them: entries going into a directory would change it.
	dirs []dirTime
}

type dirTime struct {
	path string
	t    time.Time
}

var (
	errSparse   = errors.New("sparse files are not supported")
	errWhiteout = errors.New("names starting with .wh. are layer whiteouts, which an archive for ADD must not hold: " +
		"in a layer they would delete files instead of adding them")
)

// run reads the tar stream r and extracts each entry.
func (x *tarExtractor) run(r io.Reader) error {
	cr := &layerfs.CountingReader{R: r}
	tr := tar.NewReader(cr)
	prev := ""
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			if prev == "" {
				return fmt.Errorf("reading the archive: %w", err)
			}
			return fmt.Errorf("reading the archive after entry %q: %w", layerfs.Shorten(prev), err)
		}
		if err := x.entry(hdr, cr.N); err != nil {
			return fmt.Errorf("archive entry %q: %w", layerfs.Shorten(hdr.Name), err)
		}
		prev = hdr.Name
	}
	for _, d := range x.dirs {
		if n := x.fs.Get(d.path); n != nil && n.IsDir() {
			x.fs.SetMeta(d.path, func(n *layerfs.Node) { n.ModTime, n.Stamped = d.t, false })
		}
	}
	return nil
}

// entry extracts one entry whose body starts at offset off of the stream.
func (x *tarExtractor) entry(hdr *tar.Header, off int64) error {
	switch hdr.Typeflag {
	case tar.TypeXGlobalHeader:
		return nil
	case tar.TypeGNUSparse:
		return errSparse
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return errSparse
		}
	}
	name := path.Clean(hdr.Name)
	if name == "." {
		// The archive's own root: the destination keeps its metadata.
		return nil
	}
	for c := range strings.SplitSeq(name, "/") {
		if strings.HasPrefix(c, ".wh.") {
			return errWhiteout
		}
	}
	n, err := x.header(hdr)
	if err != nil {
		return err
	}
	// Inside the chroot, "/x" and "../x" are x in the destination.
	rel := path.Clean("/" + name)
	if rel == "/" {
		// go-archive skips only "."; "/" or ".." is the destination itself, which a
		// directory entry gives its metadata.
		if hdr.Typeflag != tar.TypeDir {
			return errors.New("it names the destination directory itself, and is not a directory")
		}
		x.fs.SetMeta(x.root, func(d *layerfs.Node) { d.Mode, d.UID, d.GID = n.Mode, n.UID, n.GID })
		x.dirs = append(x.dirs, dirTime{x.root, n.ModTime})
		return nil
	}
	real, err := x.fs.ResolveIn(x.root, rel, false)
	if err != nil {
		return err
	}
	dir := path.Dir(real)
	switch parent := x.fs.Get(dir); {
	case parent == nil:
		// Parents the archive does not list get go-archive's defaults: 0755, owned by
		// root whatever --chown says, stamped with the build time.
		if _, err := x.fs.MkdirAll(dir, layerfs.Node{Mode: 0o755, Stamped: true}); err != nil {
			return err
		}
	case !parent.IsDir():
		return &fs.PathError{Op: "extract", Path: dir, Err: syscall.ENOTDIR}
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		n.Type = layerfs.TypeDir
	case tar.TypeReg:
		n.Type, n.Size = layerfs.TypeReg, hdr.Size
		if hdr.Size > 0 {
			n.Content = x.body(off, hdr.Size)
		}
	case tar.TypeSymlink:
		if hdr.Linkname == "" {
			return errors.New("a symlink with an empty target")
		}
		// Linux gives every symlink mode 0777.
		n.Type, n.Target, n.Mode = layerfs.TypeSymlink, hdr.Linkname, 0o777
	case tar.TypeLink:
		if err := x.hardLink(hdr, real, n); err != nil {
			return err
		}
	case tar.TypeChar, tar.TypeBlock:
		if hdr.Devmajor < 0 || hdr.Devminor < 0 {
			return fmt.Errorf("invalid device numbers %d, %d", hdr.Devmajor, hdr.Devminor)
		}
		n.Type, n.Major, n.Minor = layerfs.TypeChar, hdr.Devmajor, hdr.Devminor
		if hdr.Typeflag == tar.TypeBlock {
			n.Type = layerfs.TypeBlock
		}
	case tar.TypeFifo:
		n.Type = layerfs.TypeFIFO
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	// An existing entry is replaced, unless a directory meets a directory: then it
	// takes the entry's metadata and keeps its contents.
	if err := x.fs.Put(real, n); err != nil {
		return err
	}
	if n.IsDir() {
		x.dirs = append(x.dirs, dirTime{real, n.ModTime})
	}
	return nil
}

// header returns a node with the metadata of an entry's header: mode, owner (or the
// --chown ids), mtime, bounded as go-archive bounds it, and the security.capability
// xattr.
func (x *tarExtractor) header(hdr *tar.Header) (*layerfs.Node, error) {
	n := &layerfs.Node{Mode: uint32(hdr.Mode) & 0o7777, UID: hdr.Uid, GID: hdr.Gid, ModTime: boundTime(hdr.ModTime)}
	// go-archive sets every SCHILY.xattr record as an xattr of what it extracts, after
	// the chown that would clear a capability; the layer keeps security.capability.
	n.Capability = hdr.PAXRecords[layerfs.PAXCapability]
	if x.chown {
		n.UID, n.GID = x.uid, x.gid
	} else if hdr.Uid < 0 || hdr.Uid > math.MaxInt32 || hdr.Gid < 0 || hdr.Gid > math.MaxInt32 {
		return nil, fmt.Errorf("invalid owner %d:%d", hdr.Uid, hdr.Gid)
	}
	return n, nil
}

// hardLink makes n, at real, a hard link to an entry already extracted (or already in
// the destination), named from the destination as the chroot names it. As with
// link(2), a symlink at the target is not followed. The link's header gives the
// shared file its metadata, as go-archive's chown, chmod and chtimes of the new name
// do.
func (x *tarExtractor) hardLink(hdr *tar.Header, real string, n *layerfs.Node) error {
	tgt, err := x.fs.ResolveIn(x.root, path.Clean("/"+hdr.Linkname), false)
	if err != nil {
		return err
	}
	t := x.fs.Get(tgt)
	// go-archive removes what is at the new name before it links, so the target
	// cannot be there or below it.
	if t == nil || tgt == real || strings.HasPrefix(tgt, real+"/") {
		return fmt.Errorf("hard link to %q: no such file", hdr.Linkname)
	}
	switch t.Type {
	case layerfs.TypeDir:
		return fmt.Errorf("hard link to %q, which is a directory", hdr.Linkname)
	case layerfs.TypeReg:
	default:
		// A second name for a symlink, device or fifo: an entry of its own here, as
		// layers hard-link regular files only.
		n.Type, n.Target, n.Major, n.Minor = t.Type, t.Target, t.Major, t.Minor
		if t.Type == layerfs.TypeSymlink {
			n.Mode, n.ModTime = t.Mode, t.ModTime
		}
		return nil
	}
	g := t.HardLink
	if g == 0 {
		g = x.fs.NewLinkGroup()
	}
	// The link's xattrs are set on the shared inode; without any, it keeps the
	// target's.
	if _, ok := hdr.PAXRecords[layerfs.PAXCapability]; !ok {
		n.Capability = t.Capability
	}
	// SetMeta takes a file whose metadata changes out of its group; it joins g after.
	x.fs.SetMeta(tgt, func(m *layerfs.Node) {
		m.Mode, m.UID, m.GID, m.ModTime, m.Stamped = n.Mode, n.UID, n.GID, n.ModTime, false
		m.Capability = n.Capability
	})
	x.fs.SetMeta(tgt, func(m *layerfs.Node) { m.HardLink = g })
	n.Type, n.Size, n.Content, n.HardLink = layerfs.TypeReg, t.Size, t.Content, g
	return nil
}

// Times go-archive accepts; anything outside becomes the Unix epoch (archive.boundTime).
var (
	minTime = time.Unix(0, 0)
	maxTime = time.Unix(0, math.MaxInt64)
)

func boundTime(t time.Time) time.Time {
	if t.Before(minTime) || t.After(maxTime) {
		return minTime
	}
	return t
}

// stringOpener serves a here-document's body, which the parsed Dockerfile holds.
func stringOpener(s string) layerfs.Opener {
	return func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(s)), nil }
}

// offsetOpener serves size bytes at offset off of what open reads: a body inside an
// uncompressed archive, read again from the archive when the layer is written.
func offsetOpener(open layerfs.Opener, off, size int64) layerfs.Opener {
	return func() (io.ReadCloser, error) {
		rc, err := open()
		if err != nil {
			return nil, err
		}
		if s, ok := rc.(io.Seeker); ok {
			_, err = s.Seek(off, io.SeekStart)
		} else {
			_, err = io.CopyN(io.Discard, rc, off)
		}
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("seeking to offset %d of the archive: %w", off, err)
		}
		return readCloser{io.LimitReader(rc, size), rc}, nil
	}
}

// fileSection serves size bytes at offset off of the file name.
func fileSection(name string, off, size int64) layerfs.Opener {
	return func() (io.ReadCloser, error) {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		return readCloser{io.NewSectionReader(f, off, size), f}, nil
	}
}

type readCloser struct {
	io.Reader
	io.Closer
}
