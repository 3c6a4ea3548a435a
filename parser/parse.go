package parser

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	bkparser "github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Parse reads a Dockerfile from r. name is used in error messages and locations
// ("Dockerfile", "build/Dockerfile.web", "-" for standard input).
func Parse(r io.Reader, name string) (*File, error) {
	res, err := bkparser.Parse(r)
	if err != nil {
		return nil, fromBuildKit(name, err)
	}
	f := &File{Name: name, Escape: res.EscapeToken}
	for _, w := range res.Warnings {
		line := 0
		if w.Location != nil {
			line = w.Location.Start.Line
		}
		f.Warnings = append(f.Warnings, fmt.Sprintf("%s:%d: %s", name, line, w.Short))
	}
	var cur *Stage
	for _, node := range res.AST.Children {
		in, err := convert(name, node)
		if err != nil {
			return nil, err
		}
		switch in := in.(type) {
		case *From:
			cur = &Stage{From: in}
			f.Stages = append(f.Stages, cur)
		default:
			if cur == nil {
				if a, ok := in.(*Arg); ok {
					f.MetaArgs = append(f.MetaArgs, a)
					continue
				}
				return nil, Errorf(name, in.Location().Line, "%s before the first FROM: only ARG may come before FROM", in.Keyword())
			}
			cur.Instructions = append(cur.Instructions, in)
		}
	}
	if len(f.Stages) == 0 {
		return nil, Errorf(name, 0, "no FROM instruction: a Dockerfile must start a stage with FROM")
	}
	return f, nil
}

// fromBuildKit converts a BuildKit parse error, which carries lines in a
// LocationError, into an *Error.
func fromBuildKit(name string, err error) error {
	var le *bkparser.LocationError
	line := 0
	if errors.As(err, &le) && len(le.Locations) > 0 && len(le.Locations[0]) > 0 {
		line = le.Locations[0][0].Start.Line
	}
	msg := err.Error()
	if le != nil {
		msg = le.Unwrap().Error()
	}
	switch {
	case strings.HasPrefix(msg, "invalid escape token"),
		strings.HasPrefix(msg, "only one ") && strings.HasSuffix(msg, " parser directive can be used"),
		strings.HasPrefix(msg, "dockerfile line greater than"):
		// BuildKit locates directive errors and over-long lines with the number of
		// lines read before the offending one, which is one less than its line.
		line++
	case msg == "file with no instructions":
		// A whole-file error: BuildKit gives the last line, which is not the place.
		line = 0
	}
	return &Error{File: name, Line: line, Err: errors.New(lowerFirst(msg))}
}

// lowerFirst lower-cases the first letter of a BuildKit message unless it starts an
// acronym or an instruction name, so wrapped errors read as one sentence.
func lowerFirst(s string) string {
	if len(s) < 2 || s[0] < 'A' || s[0] > 'Z' || (s[1] >= 'A' && s[1] <= 'Z') {
		return s
	}
	return string(s[0]+'a'-'A') + s[1:]
}

// line is one instruction as BuildKit's parser leaves it, with what every
// converter needs.
type line struct {
	b    base
	node *bkparser.Node
	args []string // the words after the keyword
	json bool     // written in exec (JSON) form
}

// fail is an error at the instruction's line.
func (l *line) fail(format string, args ...any) error {
	return Errorf(l.b.loc.File, l.b.loc.Line, format, args...)
}

// at is err at the instruction's line, keeping err's chain for errors.Is and
// errors.As.
func (l *line) at(err error) error {
	return &Error{File: l.b.loc.File, Line: l.b.loc.Line, Err: err}
}

// noFlags refuses any flag, for an instruction that takes none.
func (l *line) noFlags() error {
	return newFlags(l.b.keyword, l.node.Flags).parse()
}

// converters holds one function per instruction, as BuildKit's instructions
// package has one parse function per keyword. It is filled in init because ONBUILD's
// converter parses its trigger through convert, which reads this table.
var converters map[string]func(*line) (Instruction, error)

func init() {
	converters = map[string]func(*line) (Instruction, error){
		"FROM":        convertFrom,
		"COPY":        convertCopy,
		"ADD":         convertCopy,
		"CMD":         convertCommand,
		"ENTRYPOINT":  convertCommand,
		"RUN":         func(l *line) (Instruction, error) { return &Run{base: l.b}, nil },
		"ARG":         convertArg,
		"ENV":         convertKeyValues,
		"LABEL":       convertKeyValues,
		"WORKDIR":     oneWord(func(b base, w string) Instruction { return &Workdir{base: b, Path: w} }),
		"USER":        oneWord(func(b base, w string) Instruction { return &User{base: b, User: w} }),
		"STOPSIGNAL":  oneWord(func(b base, w string) Instruction { return &StopSignal{base: b, Signal: w} }),
		"MAINTAINER":  oneWord(func(b base, w string) Instruction { return &Maintainer{base: b, Name: w} }),
		"EXPOSE":      convertExpose,
		"VOLUME":      convertVolume,
		"SHELL":       convertShell,
		"HEALTHCHECK": convertHealthcheck,
		"ONBUILD":     convertOnbuild,
	}
	keywords = slices.Sorted(maps.Keys(converters))
}

// convert turns one node of BuildKit's syntax tree into a typed instruction.
func convert(file string, node *bkparser.Node) (Instruction, error) {
	kw := strings.ToUpper(node.Value)
	l := &line{
		b: base{
			keyword: kw,
			loc:     Location{File: file, Line: node.StartLine, EndLine: node.EndLine},
			source:  strings.TrimSpace(node.Original),
		},
		node: node,
		json: node.Attributes["json"],
	}
	for n := node.Next; n != nil; n = n.Next {
		l.args = append(l.args, n.Value)
	}
	// No path, name or value can hold a NUL byte: tar headers and the config could
	// not carry it. (Here-document bodies are file contents and may.)
	for _, w := range append(append([]string{node.Value}, node.Flags...), l.args...) {
		if strings.ContainsRune(w, 0) {
			return nil, l.fail("%s: %q contains a NUL byte", kw, w)
		}
	}
	if c, ok := converters[kw]; ok {
		return c(l)
	}
	if s := suggest(kw); s != "" {
		return nil, l.fail("unknown instruction: %s (did you mean %s?)", node.Value, s)
	}
	return nil, l.fail("unknown instruction: %s", node.Value)
}

func convertFrom(l *line) (Instruction, error) {
	fl := newFlags(l.b.keyword, l.node.Flags)
	platform := fl.str("platform")
	if err := fl.parse(); err != nil {
		return nil, l.fail("%v", err)
	}
	in := &From{base: l.b, Platform: *platform}
	switch args := l.args; {
	case len(args) == 1:
	case len(args) == 3 && strings.EqualFold(args[1], "as"):
		in.Name = strings.ToLower(args[2])
		if !validStageName(in.Name) {
			return nil, l.fail("invalid name for build stage: %q, name can't start with a number or contain symbols", args[2])
		}
	default:
		return nil, l.fail("FROM requires either one or three arguments")
	}
	in.Image = l.args[0]
	return in, nil
}

// convertCopy converts COPY and ADD, which share their syntax but for a few flags.
func convertCopy(l *line) (Instruction, error) {
	kw, args := l.b.keyword, l.args
	fl := newFlags(kw, l.node.Flags)
	in := &Copy{base: l.b, Add: kw == "ADD"}
	chown, chmod := fl.str("chown"), fl.str("chmod")
	link := fl.boolean("link")
	exclude := fl.strs("exclude")
	var from, checksum *string
	var parents, keepGit, unpack *bool
	if in.Add {
		// --unpack is a boolean as BuildKit declares it ("--unpack" alone is true),
		// but unset differs from false: the default depends on the source.
		checksum, unpack = fl.str("checksum"), fl.boolean("unpack")
		keepGit = fl.boolean("keep-git-dir")
	} else {
		from = fl.str("from")
		parents = fl.boolean("parents")
	}
	if err := fl.parse(); err != nil {
		return nil, l.fail("%v", err)
	}
	if len(args) < 2 {
		return nil, l.fail("%s requires at least two arguments, but only one was provided. Destination could not be determined", kw)
	}
	in.Chown, in.Chmod, in.Link, in.Exclude = *chown, *chmod, *link, *exclude
	if in.Add {
		in.Checksum, in.KeepGit = *checksum, *keepGit
		for _, w := range l.node.Flags {
			if w == "--unpack" || strings.HasPrefix(w, "--unpack=") {
				in.Unpack = strconv.FormatBool(*unpack)
			}
		}
	} else {
		in.From, in.Parents = *from, *parents
	}
	in.Sources, in.Dest = args[:len(args)-1], args[len(args)-1]
	if h, _ := bkparser.ParseHeredoc(in.Dest); h != nil && !l.json {
		return nil, l.fail("%s cannot accept a heredoc as a destination", kw)
	}
	if l.json {
		return in, nil
	}
	bodies := map[string]bkparser.Heredoc{}
	for _, h := range l.node.Heredocs {
		bodies[h.Name] = h
	}
	for _, src := range in.Sources {
		h, _ := bkparser.ParseHeredoc(src)
		if h == nil {
			continue
		}
		content := bodies[h.Name].Content
		if h.Chomp {
			content = bkparser.ChompHeredocContent(content)
		}
		in.Heredocs = append(in.Heredocs, Heredoc{Name: h.Name, Content: content, Expand: h.Expand})
	}
	return in, nil
}

// convertCommand converts CMD and ENTRYPOINT.
func convertCommand(l *line) (Instruction, error) {
	if err := l.noFlags(); err != nil {
		return nil, l.fail("%v", err)
	}
	in := &Command{base: l.b, ShellForm: !l.json}
	switch {
	case l.json:
		in.Args = l.args
	case len(l.args) > 0:
		in.Args = []string{strings.Join(l.args, " ")}
	}
	return in, nil
}

func convertArg(l *line) (Instruction, error) {
	if err := l.noFlags(); err != nil {
		return nil, l.fail("%v", err)
	}
	if len(l.args) == 0 {
		return nil, l.fail("ARG requires at least one argument")
	}
	in := &Arg{base: l.b}
	for _, a := range l.args {
		k, v, has := strings.Cut(a, "=")
		if k == "" {
			return nil, l.fail("ARG names can not be blank")
		}
		in.Args = append(in.Args, KeyValue{Key: k, Value: v, HasValue: has})
	}
	return in, nil
}

// convertKeyValues converts ENV and LABEL.
func convertKeyValues(l *line) (Instruction, error) {
	if err := l.noFlags(); err != nil {
		return nil, l.at(err)
	}
	pairs, legacy, err := keyValues(l.b.keyword, l.args)
	if err != nil {
		return nil, l.at(err)
	}
	if l.b.keyword == "ENV" {
		return &Env{base: l.b, Pairs: pairs, Legacy: legacy}, nil
	}
	return &Label{base: l.b, Pairs: pairs, Legacy: legacy}, nil
}

// oneWord converts an instruction of exactly one argument: BuildKit's parser keeps
// the rest of the line as one word for WORKDIR, USER, STOPSIGNAL and MAINTAINER.
func oneWord(build func(b base, word string) Instruction) func(*line) (Instruction, error) {
	return func(l *line) (Instruction, error) {
		if len(l.args) != 1 {
			return nil, l.fail("%s requires exactly one argument", l.b.keyword)
		}
		if err := l.noFlags(); err != nil {
			return nil, l.at(err)
		}
		return build(l.b, l.args[0]), nil
	}
}

func convertExpose(l *line) (Instruction, error) {
	if len(l.args) == 0 {
		return nil, l.fail("EXPOSE requires at least one argument")
	}
	if err := l.noFlags(); err != nil {
		return nil, l.at(err)
	}
	// BuildKit sorts the words as written, before expansion, and the history shows
	// the ports in that order.
	slices.Sort(l.args)
	return &Expose{base: l.b, Ports: l.args}, nil
}

func convertVolume(l *line) (Instruction, error) {
	if len(l.args) == 0 {
		return nil, l.fail("VOLUME requires at least one argument")
	}
	if err := l.noFlags(); err != nil {
		return nil, l.at(err)
	}
	in := &Volume{base: l.b}
	for _, a := range l.args {
		a = strings.TrimSpace(a)
		if a == "" {
			return nil, l.fail("VOLUME specified can not be an empty string")
		}
		in.Paths = append(in.Paths, a)
	}
	return in, nil
}

func convertShell(l *line) (Instruction, error) {
	if err := l.noFlags(); err != nil {
		return nil, l.at(err)
	}
	switch {
	case len(l.args) == 0:
		return nil, l.fail("SHELL requires at least one argument")
	case !l.json:
		return nil, l.fail("SHELL requires the arguments to be in JSON form")
	}
	return &Shell{base: l.b, Shell: l.args}, nil
}

func convertHealthcheck(l *line) (Instruction, error) {
	in, err := healthcheck(l.b, l.node.Flags, l.args, l.json)
	if err != nil {
		return nil, l.at(err)
	}
	return in, nil
}

func convertOnbuild(l *line) (Instruction, error) {
	in, err := onbuild(l.b, l.node)
	if err != nil {
		return nil, l.at(err)
	}
	return in, nil
}

// validStageName mirrors BuildKit's ^[a-z][a-z0-9-_.]*$.
func validStageName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for _, c := range s {
		ok := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'
		if !ok {
			return false
		}
	}
	return true
}

// keyValues reads the words BuildKit's parser makes of ENV and LABEL: a key, a value
// and a separator for each pair, the separator empty for the legacy "KEY value" form.
func keyValues(kw string, args []string) (pairs []KeyValue, legacy bool, err error) {
	if len(args) == 0 {
		return nil, false, fmt.Errorf("%s requires at least one argument", kw)
	}
	if len(args)%3 != 0 {
		// BuildKit's parser always makes triples; this guards against a change in it.
		return nil, false, fmt.Errorf("bad input to %s, too many arguments", kw)
	}
	for i := 0; i < len(args); i += 3 {
		if args[i] == "" {
			return nil, false, fmt.Errorf("%s names can not be blank", kw)
		}
		pairs = append(pairs, KeyValue{Key: args[i], Value: args[i+1]})
		legacy = args[i+2] == ""
	}
	return pairs, legacy, nil
}

// healthcheck converts HEALTHCHECK as BuildKit's parseHealthcheck does. args[0] is
// the type (NONE or CMD), the rest the command in exec or shell form.
func healthcheck(b base, flagWords, args []string, json bool) (*Healthcheck, error) {
	if len(args) == 0 {
		return nil, errors.New("HEALTHCHECK requires at least one argument")
	}
	in := &Healthcheck{base: b}
	typ := strings.ToUpper(args[0])
	if typ == "NONE" {
		if len(args) > 1 {
			return nil, errors.New("HEALTHCHECK NONE takes no arguments")
		}
		// BuildKit never reads the flags of HEALTHCHECK NONE, so it accepts any; they
		// are kept so the interpreter can warn that they do nothing.
		in.IgnoredFlags = flagWords
		in.Test = []string{"NONE"}
		return in, nil
	}
	fl := newFlags("HEALTHCHECK", flagWords)
	interval, timeout := fl.str("interval"), fl.str("timeout")
	startPeriod, startInterval := fl.str("start-period"), fl.str("start-interval")
	retries := fl.str("retries")
	if err := fl.parse(); err != nil {
		return nil, err
	}
	if typ != "CMD" {
		return nil, fmt.Errorf("unknown type %q in HEALTHCHECK (try CMD)", args[0])
	}
	cmd := args[1:]
	if !json && len(cmd) > 0 {
		cmd = []string{strings.Join(cmd, " ")}
	}
	if len(cmd) == 0 {
		return nil, errors.New("missing command after HEALTHCHECK CMD")
	}
	if !json {
		typ = "CMD-SHELL"
	}
	in.Test = append([]string{typ}, cmd...)
	for _, d := range []struct {
		name  string
		value string
		dest  *time.Duration
	}{
		{"interval", *interval, &in.Interval},
		{"timeout", *timeout, &in.Timeout},
		{"start-period", *startPeriod, &in.StartPeriod},
		{"start-interval", *startInterval, &in.StartInterval},
	} {
		v, err := healthDuration(d.name, d.value)
		if err != nil {
			return nil, err
		}
		*d.dest = v
	}
	if *retries != "" {
		n, err := strconv.ParseInt(*retries, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("HEALTHCHECK --retries=%q: %w", *retries, err)
		}
		if n < 0 {
			return nil, fmt.Errorf("HEALTHCHECK --retries cannot be negative (%d)", n)
		}
		in.Retries = int(n)
	}
	return in, nil
}

// healthDuration parses a HEALTHCHECK duration flag as BuildKit's parseOptInterval
// does: empty or zero means unset, anything else must be at least a millisecond.
func healthDuration(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("HEALTHCHECK --%s=%q: %w", name, s, err)
	}
	if d != 0 && d < time.Millisecond {
		return 0, fmt.Errorf("HEALTHCHECK --%s=%q: a duration must be 0 or at least %s", name, s, time.Millisecond)
	}
	return d, nil
}
