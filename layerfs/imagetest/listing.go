package imagetest

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Listing renders a layer tar as one line per entry, in tar order, for golden files:
//
//	TYPE MODE UID:GID SIZE MTIME NAME [-> TARGET] [sha256:PREFIX] [xattr:NAME=VALUE ...]
//
// TYPE is d, f, l (symlink), h (hard link), c, b or p; MODE is octal with special
// bits; MTIME is Unix seconds; regular files end with the first 12 hex digits of their
// content's sha256. An entry with SCHILY.xattr PAX records ends with them, sorted by
// name, each value Go-quoted; entries without any show nothing.
func Listing(r io.Reader) (string, error) {
	var b strings.Builder
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return b.String(), nil
		}
		if err != nil {
			return b.String(), err
		}
		typ := map[byte]string{tar.TypeDir: "d", tar.TypeReg: "f", tar.TypeSymlink: "l", tar.TypeLink: "h",
			tar.TypeChar: "c", tar.TypeBlock: "b", tar.TypeFifo: "p"}[h.Typeflag]
		if typ == "" {
			typ = fmt.Sprintf("?%c", h.Typeflag)
		}
		fmt.Fprintf(&b, "%s %04o %d:%d %d %d %s", typ, h.Mode, h.Uid, h.Gid, h.Size, h.ModTime.Unix(), h.Name)
		if h.Linkname != "" {
			fmt.Fprintf(&b, " -> %s", h.Linkname)
		}
		if h.Typeflag == tar.TypeChar || h.Typeflag == tar.TypeBlock {
			fmt.Fprintf(&b, " %d,%d", h.Devmajor, h.Devminor)
		}
		if h.Typeflag == tar.TypeReg {
			s := sha256.New()
			if _, err := io.Copy(s, tr); err != nil {
				return b.String(), err
			}
			fmt.Fprintf(&b, " sha256:%s", hex.EncodeToString(s.Sum(nil))[:12])
		}
		var xattrs []string
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				xattrs = append(xattrs, " xattr:"+name+"="+strconv.Quote(v))
			}
		}
		slices.Sort(xattrs)
		b.WriteString(strings.Join(xattrs, ""))
		if !h.AccessTime.IsZero() || !h.ChangeTime.IsZero() || h.Uname != "" || h.Gname != "" {
			fmt.Fprintf(&b, " [atime/ctime/names set]")
		}
		if h.ModTime.Nanosecond() != 0 {
			fmt.Fprintf(&b, " [sub-second mtime %s]", h.ModTime.Format(time.RFC3339Nano))
		}
		b.WriteByte('\n')
	}
}
