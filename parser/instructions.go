package parser

import (
	"strings"
	"time"
)

// Location is where an instruction stands in its Dockerfile.
type Location struct {
	File    string // the Dockerfile's name as given by the user
	Line    int    // first line, 1-based
	EndLine int    // last line (after continuations and heredoc bodies)
}

// Instruction is one Dockerfile instruction. Use a type switch for the details;
// the interface only carries what every instruction has.
type Instruction interface {
	// Keyword is the instruction name in upper case ("COPY").
	Keyword() string
	// Location is the file and line range of the instruction.
	Location() Location
	// Source is the instruction's text as written, continuations joined.
	Source() string
}

type base struct {
	keyword string
	loc     Location
	source  string
}

func (b *base) Keyword() string    { return b.keyword }
func (b *base) Location() Location { return b.loc }
func (b *base) Source() string     { return b.source }

// From starts a build stage: FROM [--platform=P] IMAGE [AS NAME].
type From struct {
	base
	Image    string // unexpanded; expanded by the interpreter with the global ARGs
	Name     string // stage name, lower-cased as BuildKit does; "" when absent
	Platform string // unexpanded --platform value
}

// Heredoc is a here-document attached to an instruction (COPY <<EOF ...).
type Heredoc struct {
	Name    string // the delimiter word, which also names the file COPY creates
	Content string // the body, each line ending in a newline; <<- tab stripping applied
	Expand  bool   // the delimiter was unquoted, so the body is subject to expansion
}

// Copy is COPY or ADD. Paths and flag values are unexpanded.
type Copy struct {
	base
	Add      bool     // ADD rather than COPY
	Sources  []string // as written; a heredoc source is "<<NAME"
	Dest     string
	Heredocs []Heredoc // bodies for the heredoc sources, in order
	From     string    // --from
	Chown    string    // --chown
	Chmod    string    // --chmod
	Link     bool      // --link
	Parents  bool      // --parents (COPY only)
	Exclude  []string  // --exclude, repeatable
	Checksum string    // --checksum (ADD only)
	Unpack   string    // --unpack (ADD only): "", "true" or "false"
	KeepGit  bool      // --keep-git-dir (ADD only)
}

// Command is CMD or ENTRYPOINT.
type Command struct {
	base
	Args      []string // exec form: the JSON array; shell form: one string
	ShellForm bool     // the shell form, to be prefixed with the stage's SHELL
}

// Run is RUN. dfbuild parses it only to refuse it at its line.
type Run struct {
	base
}

// KeyValue is one KEY=VALUE word of ENV, LABEL or ARG, unexpanded: quotes and
// variables are left for the interpreter, which expands each with the environment
// as it was before the instruction.
type KeyValue struct {
	Key      string
	Value    string
	HasValue bool // ARG only: "ARG name" has no value, "ARG name=" an empty one
}

// Env is ENV k=v ... or the legacy ENV k v.
type Env struct {
	base
	Pairs  []KeyValue
	Legacy bool // the legacy "ENV k v" form: one pair, the value the rest of the line
}

// Arg is ARG name[=default] .... Before the first FROM it declares a global ARG.
type Arg struct {
	base
	Args []KeyValue
}

// Label is LABEL k=v ... or the legacy LABEL k v.
type Label struct {
	base
	Pairs  []KeyValue
	Legacy bool // the legacy "LABEL k v" form: one pair, the value the rest of the line
}

// Workdir is WORKDIR path (unexpanded).
type Workdir struct {
	base
	Path string
}

// User is USER user[:group] (unexpanded).
type User struct {
	base
	User string
}

// Expose is EXPOSE port[/proto] ...: the words as written (unexpanded), sorted as
// BuildKit sorts them before expansion.
type Expose struct {
	base
	Ports []string
}

// Volume is VOLUME in JSON or whitespace form: the paths, unexpanded, each trimmed
// of surrounding white space as BuildKit trims it.
type Volume struct {
	base
	Paths []string
}

// StopSignal is STOPSIGNAL signal (unexpanded).
type StopSignal struct {
	base
	Signal string
}

// Shell is SHELL ["executable", "parameters"...]; only the JSON form exists.
type Shell struct {
	base
	Shell []string
}

// Healthcheck is HEALTHCHECK NONE or HEALTHCHECK [flags] CMD ...; never expanded.
type Healthcheck struct {
	base
	// Test is ["NONE"], ["CMD", args...] (exec form) or ["CMD-SHELL", "text"].
	Test []string
	// The durations as parsed; zero when absent (zero values are not written).
	Interval, Timeout, StartPeriod, StartInterval time.Duration
	Retries                                       int
	// IgnoredFlags are flags given to HEALTHCHECK NONE, which has no use for them.
	IgnoredFlags []string
}

// Onbuild is ONBUILD <instruction>: the trigger, stored in the image config as
// written (unexpanded, heredoc bodies appended) and run by images built FROM it.
type Onbuild struct {
	base
	// Expression is the trigger text as BuildKit stores it in Config.OnBuild.
	Expression string
	// Trigger is Expression parsed as ParseTrigger parses it when the trigger fires,
	// located at the ONBUILD line. BuildKit checks a trigger only when it fires;
	// dfbuild checks it here too, so an image never carries a trigger that cannot run.
	Trigger Instruction
}

// Maintainer is the deprecated MAINTAINER name; it sets the image's author.
type Maintainer struct {
	base
	Name string
}

// Stage is one FROM and the instructions up to the next FROM.
type Stage struct {
	From         *From
	Instructions []Instruction
}

// File is a parsed Dockerfile.
type File struct {
	Name     string // the name used in error messages
	Escape   rune   // the escape character (the "# escape=" directive)
	MetaArgs []*Arg // ARG instructions before the first FROM
	Stages   []*Stage
	Warnings []string // parser warnings, each "FILE:LINE: message"
}

// keywords lists every instruction Docker knows, in order, for suggestions: the
// keys of converters.
var keywords []string

// suggest returns the known keyword closest to word, or "" when none is close.
// "Close" is what BuildKit's suggest package uses: an edit distance below 3,
// ignoring case.
func suggest(word string) string {
	w := strings.ToUpper(word)
	best, bestDist := "", 3
	for _, k := range keywords {
		if d := EditDistance(w, k); d < bestDist {
			best, bestDist = k, d
		}
	}
	return best
}

// EditDistance is the optimal-string-alignment distance between a and b: insertions,
// deletions, substitutions and swaps of two adjacent bytes each cost 1, so the
// common typo "chwon" is one edit from "chown". dfbuild's "did you mean"
// suggestions all use it.
func EditDistance(a, b string) int {
	prev2 := make([]int, len(b)+1) // row i-2
	prev := make([]int, len(b)+1)  // row i-1
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
