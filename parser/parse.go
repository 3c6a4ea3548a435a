package parser

import (
	"errors"
	"fmt"
	"io"
	"strings"

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

func convert(file string, node *bkparser.Node) (Instruction, error) {
	kw := strings.ToUpper(node.Value)
	b := base{
		keyword: kw,
		loc:     Location{File: file, Line: node.StartLine, EndLine: node.EndLine},
		source:  strings.TrimSpace(node.Original),
	}
	fail := func(format string, args ...any) error {
		return Errorf(file, node.StartLine, format, args...)
	}
	var args []string
	for n := node.Next; n != nil; n = n.Next {
		args = append(args, n.Value)
	}
	json := node.Attributes["json"]

	switch kw {
	case "FROM":
		fl := newFlags(kw, node.Flags)
		platform := fl.str("platform")
		if err := fl.parse(); err != nil {
			return nil, fail("%v", err)
		}
		in := &From{base: b, Platform: *platform}
		switch {
		case len(args) == 1:
		case len(args) == 3 && strings.EqualFold(args[1], "as"):
			in.Name = strings.ToLower(args[2])
			if !validStageName(in.Name) {
				return nil, fail("invalid name for build stage: %q, name can't start with a number or contain symbols", args[2])
			}
		default:
			return nil, fail("FROM requires either one or three arguments")
		}
		in.Image = args[0]
		return in, nil

	case "COPY", "ADD":
		fl := newFlags(kw, node.Flags)
		in := &Copy{base: b, Add: kw == "ADD"}
		chown, chmod := fl.str("chown"), fl.str("chmod")
		link := fl.boolean("link")
		exclude := fl.strs("exclude")
		var from, checksum, unpack *string
		var parents, keepGit *bool
		if in.Add {
			checksum, unpack = fl.str("checksum"), fl.str("unpack")
			keepGit = fl.boolean("keep-git-dir")
		} else {
			from = fl.str("from")
			parents = fl.boolean("parents")
		}
		if err := fl.parse(); err != nil {
			return nil, fail("%v", err)
		}
		if len(args) < 2 {
			return nil, fail("%s requires at least two arguments, but only one was provided. Destination could not be determined", kw)
		}
		in.Chown, in.Chmod, in.Link, in.Exclude = *chown, *chmod, *link, *exclude
		if in.Add {
			in.Checksum, in.Unpack, in.KeepGit = *checksum, *unpack, *keepGit
			if in.Unpack != "" && in.Unpack != "true" && in.Unpack != "false" {
				return nil, fail("invalid value %q for --unpack: expected true or false", in.Unpack)
			}
		} else {
			in.From, in.Parents = *from, *parents
		}
		in.Sources, in.Dest = args[:len(args)-1], args[len(args)-1]
		if h, _ := bkparser.ParseHeredoc(in.Dest); h != nil && !json {
			return nil, fail("%s cannot accept a heredoc as a destination", kw)
		}
		bodies := map[string]bkparser.Heredoc{}
		for _, h := range node.Heredocs {
			bodies[h.Name] = h
		}
		if !json {
			for _, src := range in.Sources {
				h, _ := bkparser.ParseHeredoc(src)
				if h == nil {
					continue
				}
				body := bodies[h.Name]
				content := body.Content
				if h.Chomp {
					content = bkparser.ChompHeredocContent(content)
				}
				in.Heredocs = append(in.Heredocs, Heredoc{Name: h.Name, Content: content, Expand: h.Expand})
			}
		}
		return in, nil

	case "CMD", "ENTRYPOINT":
		fl := newFlags(kw, node.Flags)
		if err := fl.parse(); err != nil {
			return nil, fail("%v", err)
		}
		in := &Command{base: b, ShellForm: !json}
		switch {
		case json:
			in.Args = args
		case len(args) > 0:
			in.Args = []string{strings.Join(args, " ")}
		}
		return in, nil

	case "RUN":
		return &Run{base: b}, nil

	case "ARG":
		if err := newFlags(kw, node.Flags).parse(); err != nil {
			return nil, fail("%v", err)
		}
		if len(args) == 0 {
			return nil, fail("ARG requires at least one argument")
		}
		in := &Arg{base: b}
		for _, a := range args {
			k, v, has := strings.Cut(a, "=")
			if k == "" {
				return nil, fail("ARG names can not be blank")
			}
			in.Args = append(in.Args, KeyValue{Key: k, Value: v, HasValue: has})
		}
		return in, nil
	}

	if _, known := keywordSet[kw]; known {
		fl := newFlags(kw, node.Flags)
		if kw != "HEALTHCHECK" {
			if err := fl.parse(); err != nil {
				return nil, fail("%v", err)
			}
		}
		return &Raw{base: b, Args: args}, nil
	}
	if s := suggest(kw); s != "" {
		return nil, fail("unknown instruction: %s (did you mean %s?)", node.Value, s)
	}
	return nil, fail("unknown instruction: %s", node.Value)
}

var keywordSet = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, k := range keywords {
		m[k] = struct{}{}
	}
	return m
}()

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
