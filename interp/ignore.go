package interp

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// IgnoreFile is a parsed .dockerignore file: patterns that keep context paths out of
// the build.
type IgnoreFile struct {
	// Name is the file as messages name it, such as ".dockerignore" or
	// "build/Dockerfile.web.dockerignore".
	Name     string
	Patterns []IgnorePattern
}

// IgnorePattern is one pattern as moby/patternmatcher's ignorefile reads it: cleaned,
// without a leading "/", and starting with "!" for an exception.
type IgnorePattern struct {
	Pattern string
	Line    int // 1-based, in the file
}

// ReadIgnoreFile reads the ignore file of a build the way BuildKit's
// frontend/dockerui/config.go chooses it (test: testDockerignoreOverride):
// "<dockerfile>.dockerignore" next to the Dockerfile if there is one, otherwise the
// context's ".dockerignore". dockerfile is the Dockerfile's path, or "" when it comes
// from standard input, which leaves only the context's file. It returns nil when
// there is no ignore file.
func ReadIgnoreFile(contextDir, dockerfile string) (*IgnoreFile, error) {
	var candidates []string
	if dockerfile != "" {
		candidates = append(candidates, dockerfile+".dockerignore")
	}
	candidates = append(candidates, filepath.Join(contextDir, ".dockerignore"))
	for _, name := range candidates {
		f, err := openRegularFile(name)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", name, err)
		}
		defer f.Close()
		return ParseIgnoreFile(name, f)
	}
	return nil, nil
}

// ParseIgnoreFile reads the patterns of an ignore file and checks them; name is what
// errors call the file, and they give the line too.
func ParseIgnoreFile(name string, r io.Reader) (*IgnoreFile, error) {
	ig := &IgnoreFile{Name: name}
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		// ignorefile.ReadAll decides what a line means, but says nothing of line
		// numbers, so it reads one line at a time. Lines after the first go in behind
		// an empty line, because ReadAll strips a byte order mark from its first line
		// only, as it does from the file's.
		text := sc.Text()
		if line > 1 {
			text = "\n" + text
		}
		pats, err := ignorefile.ReadAll(strings.NewReader(text))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, line, err)
		}
		for _, p := range pats {
			ig.Patterns = append(ig.Patterns, IgnorePattern{Pattern: p, Line: line})
			if _, err := compilePattern(p); err != nil {
				return nil, fmt.Errorf("%s:%d: invalid pattern %q: %w", name, line, strings.TrimSpace(sc.Text()), err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", name, err)
	}
	return ig, nil
}

// compilePattern checks one pattern and returns a matcher for it alone, with the "!"
// of an exception taken off: it tells whether the pattern matches a path or one of
// its parents, whatever the pattern's kind.
func compilePattern(p string) (*patternmatcher.PatternMatcher, error) {
	// A bare "!" is refused here.
	if _, err := patternmatcher.New([]string{p}); err != nil {
		return nil, err
	}
	pm, err := patternmatcher.New([]string{strings.TrimPrefix(p, "!")})
	if err != nil {
		return nil, err
	}
	// Patterns become regular expressions on their first use; one use here reports a
	// bad one now, with its line, instead of in the middle of a build.
	if _, err := pm.MatchesOrParentMatches(""); err != nil {
		return nil, err
	}
	return pm, nil
}

// ignoreFilter answers which context paths an ignore file keeps out of the build,
// the way BuildKit's context transfer (tonistiigi/fsutil's filtered walk) decides it.
type ignoreFilter struct {
	file *IgnoreFile
	all  *patternmatcher.PatternMatcher
	one  []*patternmatcher.PatternMatcher // each pattern alone, to explain an exclusion
	// prefixOnly is true when no exception has wildcards; the walk then enters an
	// excluded directory only if an exception names a path under it (exceptions).
	prefixOnly bool
	exceptions []string // exception patterns without a trailing "/*" or "/**", plus "/"
	states     map[string]ignoreState
	kept       map[string]bool // excluded directories: is something under them kept?
}

// ignoreState is what the walk makes of one context path.
type ignoreState struct {
	info     patternmatcher.MatchInfo // per pattern, for the paths below
	excluded bool                     // the patterns exclude the path
	pruned   bool                     // the walk does not look below the path
	unseen   bool                     // the walk never reaches the path: a parent was pruned
}

func newIgnoreFilter(ig *IgnoreFile) (*ignoreFilter, error) {
	if ig == nil || len(ig.Patterns) == 0 {
		return nil, nil
	}
	f := &ignoreFilter{file: ig, prefixOnly: true, states: map[string]ignoreState{}, kept: map[string]bool{}}
	var pats []string
	for _, p := range ig.Patterns {
		one, err := compilePattern(p.Pattern)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: invalid pattern %q: %w", ig.Name, p.Line, p.Pattern, err)
		}
		f.one = append(f.one, one)
		pats = append(pats, p.Pattern)
		if rest, ok := strings.CutPrefix(p.Pattern, "!"); ok {
			rest = strings.TrimSuffix(strings.TrimSuffix(rest, "/**"), "/*")
			if strings.ContainsAny(rest, `*?[]^\`) {
				f.prefixOnly = false
			}
			f.exceptions = append(f.exceptions, rest+"/")
		}
	}
	all, err := patternmatcher.New(pats)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", ig.Name, err)
	}
	// The matcher drops nothing that compilePattern accepted, so its patterns and
	// f.one stay in step.
	if len(all.Patterns()) != len(pats) {
		return nil, fmt.Errorf("%s: %d patterns read, %d compiled", ig.Name, len(pats), len(all.Patterns()))
	}
	f.all = all
	return f, nil
}

// state matches p (a context path in io/fs form, not ".") as the walk does: with
// the results of its parent directory, which are worked out first.
func (f *ignoreFilter) state(p string) ignoreState {
	if st, ok := f.states[p]; ok {
		return st
	}
	var parent ignoreState
	if dir := path.Dir(p); dir != "." {
		parent = f.state(dir)
	}
	var st ignoreState
	if parent.unseen || parent.pruned {
		st.unseen = true
	} else {
		m, info, err := f.all.MatchesUsingParentResults(p, parent.info)
		// Every pattern was compiled when the file was read; should one fail anyway,
		// the path is left out rather than let through.
		st.info, st.excluded = info, m || err != nil
		st.pruned = st.excluded && !f.mayKeepBelow(p)
	}
	f.states[p] = st
	return st
}

// mayKeepBelow tells whether an exception could bring back something under the
// excluded directory dir, so the walk must look inside it.
func (f *ignoreFilter) mayKeepBelow(dir string) bool {
	if !f.all.Exclusions() {
		return false
	}
	if !f.prefixOnly {
		return true
	}
	for _, e := range f.exceptions {
		if strings.HasPrefix(e, dir+"/") {
			return true
		}
	}
	return false
}

// explain names the pattern that excludes p: the last one that matches p or one of
// its parents, which is the one that decides ("" if none does).
func (f *ignoreFilter) explain(p string) string {
	for i := len(f.one) - 1; i >= 0; i-- {
		pat := f.file.Patterns[i]
		if strings.HasPrefix(pat.Pattern, "!") {
			continue
		}
		if m, err := f.one[i].MatchesOrParentMatches(p); err == nil && m {
			return fmt.Sprintf("excluded by %s line %d (%q)", f.file.Name, pat.Line, pat.Pattern)
		}
	}
	return ""
}
