package interp

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"strconv"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
)

// The files --chown names are looked up in, inside the image.
const (
	passwdFile = "/etc/passwd"
	groupFile  = "/etc/group"
)

// maxUserFileBytes caps what is read of /etc/passwd and /etc/group, as BuildKit caps it.
const maxUserFileBytes = 10 << 20

// parseChown resolves a --chown value, user[:group], to ids (BuildKit: WithUser in
// client/llb/fileop.go, readUser in solver/llbsolver/ops/user_linux.go). Each
// part is a number or a name; "root" is 0 without a lookup. Names are looked up in
// the image being copied into, as it is before the COPY: a user in /etc/passwd, a
// group in /etc/group. A user alone gets the primary group its /etc/passwd entry
// names, as BuildKit gives it; a numeric user alone gets the same number as group.
//
// Where BuildKit silently falls back to 0 (or, for an unknown group, to the user's
// gid), dfbuild refuses: an unknown name, a missing file, an empty user or group
// ("app:"), or an entry whose id is not a number. Docker's reference says the build
// fails there.
func parseChown(f *layerfs.FS, s string) (uid, gid int, err error) {
	u, g, hasGroup := strings.Cut(s, ":")
	if u == "" {
		return 0, 0, fmt.Errorf("--chown=%s names no user; give a user name or id before the colon", s)
	}
	if hasGroup && g == "" {
		return 0, 0, fmt.Errorf("--chown=%s names no group after the colon; give a group name or id, or leave the colon out", s)
	}
	users := userDB{fs: f, file: passwdFile, kind: "user", label: "--chown=" + s}
	uid, primary, err := users.lookup(u)
	if err != nil {
		return 0, 0, err
	}
	if !hasGroup {
		return uid, primary, nil
	}
	groups := userDB{fs: f, file: groupFile, kind: "group", label: "--chown=" + s}
	gid, _, err = groups.lookup(g)
	return uid, gid, err
}

// parseID reads a numeric --chown part. What counts as numeric is what BuildKit
// parses as a number; unlike BuildKit, a negative id or one above its 32-bit range is
// an error rather than something else.
func parseID(s string) (id int, numeric bool, err error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if errors.Is(err, strconv.ErrRange) {
		return 0, true, fmt.Errorf("%q is out of range: ids go from 0 to %d", s, math.MaxInt32)
	}
	if err != nil {
		return 0, false, nil
	}
	if n < 0 || n > math.MaxInt32 {
		return 0, true, fmt.Errorf("%q is out of range: ids go from 0 to %d", s, math.MaxInt32)
	}
	return int(n), true, nil
}

// userDB looks names up in one of the image's account files.
type userDB struct {
	fs    *layerfs.FS
	file  string // passwdFile or groupFile
	kind  string // "user" or "group"
	label string // what is resolved, as messages start: "--chown=app:staff" or "USER app"
	data  []byte
}

// lookup resolves one part of --chown or USER: its id and, for a user, the primary gid (for a
// number or "root", the number itself).
func (db *userDB) lookup(name string) (id, primary int, err error) {
	n, numeric, err := parseID(name)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", db.label, err)
	}
	if numeric {
		return n, n, nil
	}
	if name == "root" {
		return 0, 0, nil
	}
	if err := db.load(name); err != nil {
		return 0, 0, err
	}
	fields, line := findEntry(db.data, name)
	if fields == nil {
		return 0, 0, fmt.Errorf("%s: no %s %q in the image's %s", db.label, db.kind, name, db.file)
	}
	// passwd: name:password:uid:gid:...; group: name:password:gid:members.
	if id, err = db.entryID(fields, 2, line); err != nil {
		return 0, 0, err
	}
	primary = id
	if db.file == passwdFile {
		if primary, err = db.entryID(fields, 3, line); err != nil {
			return 0, 0, err
		}
	}
	return id, primary, nil
}

func (db *userDB) entryID(fields []string, i, line int) (int, error) {
	what := "gid"
	if db.file == passwdFile && i == 2 {
		what = "uid"
	}
	if i >= len(fields) {
		return 0, fmt.Errorf("%s: line %d of the image's %s has no %s for %s %q", db.label, line, db.file, what, db.kind, fields[0])
	}
	n, err := strconv.ParseInt(fields[i], 10, 64)
	if err != nil || n < 0 || n > math.MaxInt32 {
		return 0, fmt.Errorf("%s: line %d of the image's %s gives %s %q the %s %q, which is not a valid id",
			db.label, line, db.file, db.kind, fields[0], what, fields[i])
	}
	return int(n), nil
}

// load reads the file once, as BuildKit does: symlinks followed inside the image
// root, a regular file only, at most maxUserFileBytes.
func (db *userDB) load(name string) error {
	if db.data != nil {
		return nil
	}
	n, _, err := db.fs.Stat(db.file)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s: the image has no %s to look up the %s %q in; use numeric ids, or copy an %s into the image first",
			db.label, db.file, db.kind, name, db.file)
	}
	if err != nil {
		return fmt.Errorf("%s: reading the image's %s: %w", db.label, db.file, err)
	}
	if n.Type != layerfs.TypeReg {
		return fmt.Errorf("%s: the image's %s is a %s, not a regular file", db.label, db.file, n.Type)
	}
	if n.Size > maxUserFileBytes {
		return fmt.Errorf("%s: the image's %s is larger than %d bytes", db.label, db.file, maxUserFileBytes)
	}
	db.data = []byte{}
	if n.Content == nil || n.Size == 0 {
		return nil
	}
	rc, err := n.Content()
	if err != nil {
		return fmt.Errorf("%s: reading the image's %s: %w", db.label, db.file, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxUserFileBytes+1))
	if err != nil {
		return fmt.Errorf("%s: reading the image's %s: %w", db.label, db.file, err)
	}
	if len(data) > maxUserFileBytes {
		return fmt.Errorf("%s: the image's %s is larger than %d bytes", db.label, db.file, maxUserFileBytes)
	}
	db.data = data
	return nil
}

// findEntry returns the colon-separated fields of the first line of an /etc/passwd or
// /etc/group file whose first field is name, and its line number. Lines are read as
// moby/sys/user reads them, which BuildKit uses: trimmed, and skipped when empty.
//
// moby/sys/user's ParsePasswdFilter is not used: it turns an id that is not a
// number into 0 without a word (its parseParts ignores strconv.Atoi's error), the
// silent fallback to root that dfbuild refuses, and it keeps no line numbers for the
// error.
func findEntry(data []byte, name string) (fields []string, line int) {
	for i, l := range bytes.Split(data, []byte("\n")) {
		l = bytes.TrimSpace(l)
		if len(l) == 0 {
			continue
		}
		f := strings.Split(string(l), ":")
		if f[0] == name {
			return f, i + 1
		}
	}
	return nil, 0
}
