package interp

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// chmodSpec is a parsed --chmod value: an octal mode, which replaces the mode of every
// copied entry, or a symbolic one (Dockerfile 1.14 and later), which changes each
// entry's own mode (BuildKit's tests testCopyChmod and testChmodNonOctal).
type chmodSpec struct {
	octal    bool
	mode     uint32       // the octal mode
	symbolic symbolicMode // the symbolic mode, when not octal
}

// errNotOctal is BuildKit's complaint about a value that looks like a number but is not
// an octal mode up to 07777.
var errNotOctal = errors.New("it should be an octal string between 0 and 07777")

// parseChmod reads a --chmod value as BuildKit does: a value that parses as an octal
// number is an octal mode, and so is any value starting with a digit (which is then
// an error unless it is one); anything else is a symbolic mode.
func parseChmod(s string) (chmodSpec, error) {
	if m, err := strconv.ParseUint(s, 8, 32); err == nil {
		if m > 0o7777 {
			return chmodSpec{}, fmt.Errorf("invalid chmod parameter: %q: %w", s, errNotOctal)
		}
		return chmodSpec{octal: true, mode: uint32(m)}, nil
	}
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		return chmodSpec{}, fmt.Errorf("invalid chmod parameter: %q: %w", s, errNotOctal)
	}
	sym, err := parseSymbolicMode(s)
	if err != nil {
		return chmodSpec{}, fmt.Errorf("invalid chmod parameter: %q: %w; it should be an octal string between 0 and 07777, "+
			"or a symbolic mode such as u=rwX,go=rX", s, err)
	}
	return chmodSpec{symbolic: sym}, nil
}

// The mode bits, as in a tar header.
const (
	modeSetuid = 0o4000
	modeSetgid = 0o2000
	modeSticky = 0o1000
	modeRead   = 0o444
	modeWrite  = 0o222
	modeExec   = 0o111
	// modeAll is what "a", and an empty class list, stand for: everything but the
	// sticky bit, which only "t" reaches.
	modeAll = 0o6777
)

// classBits are the bits each class letter reaches: its permissions and its special bit.
var classBits = map[byte]uint32{'u': modeSetuid | 0o700, 'g': modeSetgid | 0o070, 'o': 0o007, 'a': modeAll}

// classShift is where a class's rwx bits sit in the mode.
var classShift = map[byte]uint{'u': 6, 'g': 3, 'o': 0}

// symbolicMode is a symbolic chmod(1) mode such as "u=rwX,go=rX", as the steps that
// apply it. BuildKit parses it with BSD's setmode(3) rules (tonistiigi/dchapes-mode)
// with umask 0, and, since moby/buildkit#5850, with Linux's meaning of X, which also
// holds after "=". That module is not used here: it is a fork with no release, taken
// only at a pseudo-version, and the quirks below are what dfbuild must match. Its
// quirks are kept, because they decide the modes in the image:
//   - "s" and "t" are ignored when the classes are "o" alone;
//   - "t" adds the sticky bit to the classes the rest of that operation reaches, so
//     "+rt" sets the sticky bit and nothing else;
//   - "=" without classes clears every bit but the sticky one;
//   - "-X" clears the execute bits like "-x";
//   - X looks at the entry's mode before the whole change, not at the mode the
//     earlier clauses left.
type symbolicMode []modeStep

// modeStep is one change to a mode.
type modeStep struct {
	op   byte   // '+' sets bits, '-' clears them, 'X' sets them on a directory or an executable, 'c' copies a class
	bits uint32 // the bits '+', '-' and 'X' change
	// For 'c': the class whose rwx bits are read, the classes written (a mask over
	// "ugo"), and whether the written bits are cleared first ('=' and '-') and set
	// ('=' and '+'). '-' clears exactly the bits the source class has.
	from       byte
	to         string
	clear, set bool
}

// parseSymbolicMode parses comma-separated clauses, each a list of classes (u, g, o,
// a) then one or more operations: an operator (+, - or =) and permissions (r, w, x,
// X, s, t) or a class to copy from (u, g, o).
func parseSymbolicMode(s string) (symbolicMode, error) {
	if s == "" {
		return nil, errors.New("it is empty")
	}
	var m symbolicMode
	pos := 0
	for _, clause := range strings.Split(s, ",") {
		if err := m.parseClause(clause, pos); err != nil {
			return nil, err
		}
		pos += len(clause) + 1
	}
	return m, nil
}

func (m *symbolicMode) parseClause(clause string, pos int) error {
	i := 0
	var who uint32
	for ; i < len(clause) && strings.IndexByte("augo", clause[i]) >= 0; i++ {
		who |= classBits[clause[i]]
	}
	if i == len(clause) {
		if clause == "" {
			return fmt.Errorf("empty clause at offset %d", pos)
		}
		return fmt.Errorf("clause %q has no operator (+, - or =)", clause)
	}
	for i < len(clause) {
		op := clause[i]
		if op != '+' && op != '-' && op != '=' {
			return fmt.Errorf("unexpected %q at offset %d", string(op), pos+i)
		}
		i++
		// A "t" of an earlier operation in this clause does not carry over.
		who &^= modeSticky
		var perm, permX uint32
		copied := false
	perms:
		for ; i < len(clause); i++ {
			c := clause[i]
			switch c {
			case 'r':
				perm |= modeRead
			case 'w':
				perm |= modeWrite
			case 'x':
				perm |= modeExec
			case 'X':
				if op == '-' {
					perm |= modeExec
				} else {
					permX = modeExec
				}
			case 's':
				if who == 0 || who&^0o007 != 0 {
					perm |= modeSetuid | modeSetgid
				}
			case 't':
				if who == 0 || who&^0o007 != 0 {
					who |= modeSticky
					perm |= modeSticky
				}
			case 'u', 'g', 'o':
				// The permissions so far apply before the copy, in order.
				if perm != 0 {
					m.add(op, who, perm)
					perm = 0
				}
				if permX != 0 {
					m.add('X', who, permX)
					permX = 0
				}
				copied = true
				m.addCopy(c, who, op)
			default:
				break perms
			}
		}
		// "u=" clears the class; "u=g" already did by copying.
		if perm != 0 || (op == '=' && !copied) {
			m.add(op, who, perm)
		}
		if permX != 0 {
			m.add('X', who, permX)
		}
	}
	return nil
}

// add records op on the bits of perm that the classes in who reach (all of perm
// when no class was named). "=" first clears everything the classes reach.
func (m *symbolicMode) add(op byte, who, perm uint32) {
	reach := func(bits uint32) uint32 {
		if who == 0 {
			return bits
		}
		return who & bits
	}
	if op == '=' {
		cleared := who
		if who == 0 {
			cleared = modeAll
		}
		*m = append(*m, modeStep{op: '-', bits: cleared})
		op = '+'
	}
	*m = append(*m, modeStep{op: op, bits: reach(perm)})
}

// addCopy records a copy of class from's rwx bits into the classes in who (all three
// when none was named).
func (m *symbolicMode) addCopy(from byte, who uint32, op byte) {
	var to string
	for _, c := range []byte("ugo") {
		if who == 0 || who&classBits[c]&modeRead != 0 {
			to += string(c)
		}
	}
	*m = append(*m, modeStep{op: 'c', from: from, to: to, clear: op != '+', set: op != '-'})
}

// apply returns mode (permission and special bits) changed by m, for a directory or
// not.
func (m symbolicMode) apply(mode uint32, isDir bool) uint32 {
	orig := mode & 0o7777
	cur := orig
	for _, s := range m {
		switch s.op {
		case '+':
			cur |= s.bits
		case '-':
			cur &^= s.bits
		case 'X':
			if isDir || orig&modeExec != 0 {
				cur |= s.bits
			}
		case 'c':
			v := cur >> classShift[s.from] & 0o7
			for i := range len(s.to) {
				shift := classShift[s.to[i]]
				if s.clear {
					clr := v
					if s.set {
						clr = 0o7
					}
					cur &^= clr << shift
				}
				if s.set {
					cur |= v << shift
				}
			}
		}
	}
	return cur
}
