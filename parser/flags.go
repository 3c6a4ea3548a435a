package parser

import (
	"fmt"
	"strings"
)

// flags parses an instruction's --name[=value] words the way BuildKit's BFlags does:
// declare the allowed flags, then parse; unknown flags, repeated single-valued flags
// and malformed booleans are errors.
type flags struct {
	keyword string
	words   []string
	kinds   map[string]int
	strVals map[string]*string
	boolVal map[string]*bool
	sliceV  map[string]*[]string
}

const (
	kindString = iota
	kindBool
	kindStrings
)

func newFlags(keyword string, words []string) *flags {
	return &flags{keyword: keyword, words: words, kinds: map[string]int{},
		strVals: map[string]*string{}, boolVal: map[string]*bool{}, sliceV: map[string]*[]string{}}
}

func (f *flags) str(name string) *string {
	v := new(string)
	f.kinds[name], f.strVals[name] = kindString, v
	return v
}

func (f *flags) boolean(name string) *bool {
	v := new(bool)
	f.kinds[name], f.boolVal[name] = kindBool, v
	return v
}

func (f *flags) strs(name string) *[]string {
	v := new([]string)
	f.kinds[name], f.sliceV[name] = kindStrings, v
	return v
}

func (f *flags) parse() error {
	seen := map[string]bool{}
	for _, w := range f.words {
		if !strings.HasPrefix(w, "--") {
			return fmt.Errorf("%s: flag %q does not start with --", f.keyword, w)
		}
		name, value, hasValue := strings.Cut(w[2:], "=")
		kind, ok := f.kinds[name]
		if !ok {
			if s := f.closest(name); s != "" {
				return fmt.Errorf("unknown flag: --%s for %s (did you mean --%s?)", name, f.keyword, s)
			}
			return fmt.Errorf("unknown flag: --%s for %s", name, f.keyword)
		}
		if seen[name] && kind != kindStrings {
			return fmt.Errorf("duplicate flag specified: --%s", name)
		}
		seen[name] = true
		switch kind {
		case kindString:
			if !hasValue {
				return fmt.Errorf("missing a value on flag: --%s", name)
			}
			*f.strVals[name] = value
		case kindStrings:
			if !hasValue {
				return fmt.Errorf("missing a value on flag: --%s", name)
			}
			*f.sliceV[name] = append(*f.sliceV[name], value)
		case kindBool:
			// --flag alone means true; --flag= with nothing after it is a mistake.
			if hasValue && value == "" {
				return fmt.Errorf("missing a value on flag: --%s", name)
			}
			switch strings.ToLower(value) {
			case "", "true":
				*f.boolVal[name] = true
			case "false":
				*f.boolVal[name] = false
			default:
				return fmt.Errorf("expecting boolean value for flag --%s, not: %s", name, value)
			}
		}
	}
	return nil
}

// closest returns the declared flag nearest to name, by the same measure as the
// instruction suggestions, or "" when none is close.
func (f *flags) closest(name string) string {
	best, bestDist := "", 3
	for k := range f.kinds {
		d := EditDistance(strings.ToLower(name), k)
		if d < bestDist || (d == bestDist && best != "" && k < best) {
			best, bestDist = k, d
		}
	}
	return best
}
