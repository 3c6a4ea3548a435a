package interp

import (
	"io"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs"
)

// testImage is a tree with the given files (a value starting with "->" makes a
// symlink; "/" alone a directory).
func testImage(t *testing.T, files map[string]string) *layerfs.FS {
	t.Helper()
	f := layerfs.New()
	for p, body := range files {
		dir := p[:strings.LastIndex(p, "/")]
		if _, err := f.MkdirAll(dir, layerfs.Node{Mode: 0o755}); err != nil {
			t.Fatal(err)
		}
		n := &layerfs.Node{Type: layerfs.TypeReg, Mode: 0o644, Size: int64(len(body))}
		switch {
		case strings.HasPrefix(body, "->"):
			n = &layerfs.Node{Type: layerfs.TypeSymlink, Mode: 0o777, Target: body[2:]}
		case body == "/":
			n = &layerfs.Node{Type: layerfs.TypeDir, Mode: 0o755}
		default:
			n.Content = func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader(body)), nil }
		}
		if err := f.Put(p, n); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

const (
	testPasswd = "root:x:0:0:root:/root:/bin/sh\n" +
		"  app:x:1001:1002:app:/home/app:/bin/sh  \n" +
		"\n" +
		"nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n" +
		"app:x:7:7:a later duplicate:/:/bin/false\n" +
		"broken:x:abc:1\n" +
		"short:x\n"
	testGroup = "root:x:0:\nstaff:x:50:app\napp:x:2000:\nbadgid:x:-4:\n"
)

func TestChown(t *testing.T) {
	img := testImage(t, map[string]string{
		"/etc/passwd":    testPasswd,
		"/usr/lib/group": testGroup,
		"/etc/group":     "->../usr/lib/group", // resolved inside the image
	})
	tests := []struct {
		chown    string
		uid, gid int
		err      string
	}{
		{chown: "0", uid: 0, gid: 0},
		{chown: "42", uid: 42, gid: 42},
		{chown: "1000:1001", uid: 1000, gid: 1001},
		{chown: "root", uid: 0, gid: 0},
		{chown: "root:root", uid: 0, gid: 0},
		// A user alone takes the primary gid from /etc/passwd, not the group named
		// like the user (2000), as the classic builder would.
		{chown: "app", uid: 1001, gid: 1002},
		{chown: "app:staff", uid: 1001, gid: 50},
		{chown: "app:app", uid: 1001, gid: 2000},
		{chown: "1001:staff", uid: 1001, gid: 50},
		{chown: "app:50", uid: 1001, gid: 50},
		{chown: "root:staff", uid: 0, gid: 50},
		{chown: "nobody", uid: 65534, gid: 65534},
		{chown: "2147483647", uid: 2147483647, gid: 2147483647},

		{chown: "ghost", err: `--chown=ghost: no user "ghost" in the image's /etc/passwd`},
		{chown: "app:ghost", err: `--chown=app:ghost: no group "ghost" in the image's /etc/group`},
		{chown: "1:nobody", err: `--chown=1:nobody: no group "nobody" in the image's /etc/group`},
		{chown: "app:", err: `--chown=app: names no group after the colon; give a group name or id, or leave the colon out`},
		{chown: ":staff", err: `--chown=:staff names no user; give a user name or id before the colon`},
		{chown: "-1", err: `--chown=-1: "-1" is out of range: ids go from 0 to 2147483647`},
		{chown: "1:2147483648", err: `--chown=1:2147483648: "2147483648" is out of range: ids go from 0 to 2147483647`},
		{chown: "99999999999999999999", err: `--chown=99999999999999999999: "99999999999999999999" is out of range: ids go from 0 to 2147483647`},
		{chown: "broken", err: `--chown=broken: line 6 of the image's /etc/passwd gives user "broken" the uid "abc", which is not a valid id`},
		{chown: "short", err: `--chown=short: line 7 of the image's /etc/passwd has no uid for user "short"`},
		{chown: "0:badgid", err: `--chown=0:badgid: line 4 of the image's /etc/group gives group "badgid" the gid "-4", which is not a valid id`},
	}
	for _, tc := range tests {
		uid, gid, err := parseChown(img, tc.chown)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("parseChown(%q) = %d, %d, %v; want the error %s", tc.chown, uid, gid, err, tc.err)
			}
		case err != nil:
			t.Errorf("parseChown(%q): %v", tc.chown, err)
		case uid != tc.uid || gid != tc.gid:
			t.Errorf("parseChown(%q) = %d:%d, want %d:%d", tc.chown, uid, gid, tc.uid, tc.gid)
		}
	}
}

func TestChownFiles(t *testing.T) {
	big := strings.Repeat("x", maxUserFileBytes) + "\napp:x:1:1::/:/bin/sh\n"
	tests := []struct {
		name  string
		files map[string]string
		chown string
		err   string
	}{
		{"scratch", nil, "app",
			`--chown=app: the image has no /etc/passwd to look up the user "app" in; use numeric ids, or copy an /etc/passwd into the image first`},
		{"no group file", map[string]string{"/etc/passwd": testPasswd}, "app:staff",
			`--chown=app:staff: the image has no /etc/group to look up the group "staff" in; use numeric ids, or copy an /etc/group into the image first`},
		{"dangling symlink", map[string]string{"/etc/passwd": "->/nowhere"}, "app",
			`--chown=app: the image has no /etc/passwd to look up the user "app" in; use numeric ids, or copy an /etc/passwd into the image first`},
		{"etc is a file", map[string]string{"/etc": "x"}, "app",
			`--chown=app: the image has no /etc/passwd to look up the user "app" in; use numeric ids, or copy an /etc/passwd into the image first`},
		{"a directory", map[string]string{"/etc/passwd": "/"}, "app",
			`--chown=app: the image's /etc/passwd is a directory, not a regular file`},
		{"empty", map[string]string{"/etc/passwd": ""}, "app",
			`--chown=app: no user "app" in the image's /etc/passwd`},
		{"too big", map[string]string{"/etc/passwd": big}, "app",
			`--chown=app: the image's /etc/passwd is larger than 10485760 bytes`},
		// Numbers and root need no file at all.
		{"numbers on scratch", nil, "1:2", ""},
		{"root on scratch", nil, "root:root", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := parseChown(testImage(t, tc.files), tc.chown)
			if tc.err == "" {
				if err != nil {
					t.Errorf("parseChown(%q): %v", tc.chown, err)
				}
				return
			}
			if err == nil || err.Error() != tc.err {
				t.Errorf("parseChown(%q): %v\nwant: %s", tc.chown, err, tc.err)
			}
		})
	}
}
