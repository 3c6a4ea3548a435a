package interp

import (
	"strings"
	"testing"
)

// The expected modes follow BuildKit's parser (tonistiigi/dchapes-mode at the
// version BuildKit v0.34 pins, with umask 0), which agreed with parseChmod on these
// and on a few hundred thousand random values when they were written.
func TestSymbolicChmod(t *testing.T) {
	type entry struct {
		mode  uint32
		isDir bool
	}
	var (
		file    = entry{0o644, false}
		exe     = entry{0o755, false}
		private = entry{0o600, false}
		onlyGX  = entry{0o610, false} // an execute bit for the group alone
		dir     = entry{0o700, true}
		suid    = entry{0o4755, false}
		sticky  = entry{0o1777, true}
	)
	tests := []struct {
		chmod string
		in    entry
		want  uint32
	}{
		// The documented example: directories 0755, files 0644 unless executable.
		{"u=rwX,go=rX", file, 0o644},
		{"u=rwX,go=rX", exe, 0o755},
		{"u=rwX,go=rX", dir, 0o755},
		{"u=rwX,go=rX", entry{0o000, true}, 0o755},
		{"u=rwX,go=rX", onlyGX, 0o755},
		// X: execute for directories and for files with an execute bit already.
		{"a+X", file, 0o644},
		{"a+X", onlyGX, 0o711},
		{"a+X", entry{0o500, true}, 0o511},
		{"+X", private, 0o600},
		// X looks at the mode before the whole change, not after earlier clauses.
		{"a-x,a+X", exe, 0o755},
		{"a-x,a+X", file, 0o644},
		// "-X" clears like "-x".
		{"a-X", exe, 0o644},
		{"go-X", dir, 0o700},
		// No class means all of them.
		{"+x", file, 0o755},
		{"-r", file, 0o200},
		{"a-w", exe, 0o555},
		{"go-w", entry{0o777, false}, 0o755},
		{"u+w,g+w", entry{0o444, false}, 0o664},
		{"o=", exe, 0o750},
		{"=", suid, 0o000},
		{"=", sticky, 0o1000},
		{"=r", exe, 0o444},
		{"a=", suid, 0o000},
		{"ug=rw,o=r", exe, 0o664},
		{"+", exe, 0o755},
		// Several operations in one clause.
		{"u+x-w", file, 0o544},
		{"ug+rw-x=X", exe, 0o115},
		// Special bits.
		{"g+s", exe, 0o2755},
		{"u+s", file, 0o4644},
		{"+s", file, 0o6644},
		{"o+s", file, 0o644},
		{"+t", dir, 0o1700},
		{"o+t", dir, 0o700},
		{"u+t", file, 0o1644},
		{"+rt", private, 0o1600},
		{"u=rw", suid, 0o655},
		{"u-s", suid, 0o755},
		{"a-st", entry{0o7777, true}, 0o777},
		// Copying a class.
		{"g=u", entry{0o740, false}, 0o770},
		{"go=u", private, 0o666},
		{"g=u-w", entry{0o774, false}, 0o754},
		{"o=u", entry{0o750, false}, 0o757},
		{"u-g", entry{0o770, false}, 0o070},
		{"o+g", entry{0o650, false}, 0o655},
		{"=u", entry{0o640, false}, 0o666},
		{"u=gr", entry{0o070, false}, 0o470},
		{"u=rg", entry{0o070, false}, 0o770},
		{"g=u,u=o", entry{0o701, false}, 0o171},
	}
	for _, tc := range tests {
		spec, err := parseChmod(tc.chmod)
		if err != nil {
			t.Errorf("parseChmod(%q): %v", tc.chmod, err)
			continue
		}
		if spec.octal {
			t.Errorf("parseChmod(%q) is octal", tc.chmod)
			continue
		}
		if got := spec.symbolic.apply(tc.in.mode, tc.in.isDir); got != tc.want {
			t.Errorf("%q on %04o (directory: %v) = %04o, want %04o", tc.chmod, tc.in.mode, tc.in.isDir, got, tc.want)
		}
	}
}

func TestOctalChmod(t *testing.T) {
	for in, want := range map[string]uint32{"0": 0, "755": 0o755, "0640": 0o640, "7777": 0o7777, "04755": 0o4755, "00000644": 0o644} {
		spec, err := parseChmod(in)
		if err != nil || !spec.octal || spec.mode != want {
			t.Errorf("parseChmod(%q) = %+v, %v; want octal %04o", in, spec, err, want)
		}
	}
}

func TestInvalidChmod(t *testing.T) {
	const octal = ": it should be an octal string between 0 and 07777"
	const symbolic = "; it should be an octal string between 0 and 07777, or a symbolic mode such as u=rwX,go=rX"
	tests := map[string]string{
		// BuildKit's octal message for anything that starts with a digit.
		"64a":   `invalid chmod parameter: "64a"` + octal,
		"10000": `invalid chmod parameter: "10000"` + octal,
		"8":     `invalid chmod parameter: "8"` + octal,
		"0o755": `invalid chmod parameter: "0o755"` + octal,
		"7u+x":  `invalid chmod parameter: "7u+x"` + octal,
		// Symbolic values.
		"u":      `invalid chmod parameter: "u": clause "u" has no operator (+, - or =)` + symbolic,
		"u+q":    `invalid chmod parameter: "u+q": unexpected "q" at offset 2` + symbolic,
		"a+r,":   `invalid chmod parameter: "a+r,": empty clause at offset 4` + symbolic,
		",a+r":   `invalid chmod parameter: ",a+r": empty clause at offset 0` + symbolic,
		"u+a":    `invalid chmod parameter: "u+a": unexpected "a" at offset 2` + symbolic,
		"+7":     `invalid chmod parameter: "+7": unexpected "7" at offset 1` + symbolic,
		"-1":     `invalid chmod parameter: "-1": unexpected "1" at offset 1` + symbolic,
		"u=rw x": `invalid chmod parameter: "u=rw x": unexpected " " at offset 4` + symbolic,
		"rwx":    `invalid chmod parameter: "rwx": unexpected "r" at offset 0` + symbolic,
	}
	for in, want := range tests {
		_, err := parseChmod(in)
		if err == nil {
			t.Errorf("parseChmod(%q) succeeded", in)
			continue
		}
		if err.Error() != want {
			t.Errorf("parseChmod(%q):\n got %s\nwant %s", in, err, want)
		}
		if strings.Contains(want, octal) && !strings.Contains(err.Error(), errNotOctal.Error()) {
			t.Errorf("parseChmod(%q) does not wrap errNotOctal", in)
		}
	}
}
