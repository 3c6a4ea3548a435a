package interp

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/dfbuild/dfbuild/layerfs"
	"github.com/dfbuild/dfbuild/layerfs/image"
	"github.com/dfbuild/dfbuild/parser"
)

// The instructions that change only the config (and WORKDIR), one function each as
// in BuildKit's dispatch.go (dispatchEnv, dispatchLabel, ...). Every word is
// expanded with the environment as it was before the instruction, and the history
// text is BuildKit's.
//
// The stage owns its config's maps and slices (cloneConfig gave it copies), so ENV
// and LABEL change them in place: copying them for every instruction would make a
// Dockerfile of many such lines cost the square of its length.

// word expands one word of an instruction with the stage's environment. The lexer's
// errors quote the word already.
func (b *builder) word(st *stage, what, w string) (string, error) {
	x, err := b.ex.WordVars(w, st.env())
	if err != nil {
		return "", fmt.Errorf("expanding %s: %w", what, err)
	}
	return x, nil
}

func (b *builder) dispatchEnv(st *stage, in *parser.Env, step *Step) error {
	pairs, err := b.expandPairs(st, in.Pairs)
	if err != nil {
		return err
	}
	cfg := &st.config.Config
	var msg strings.Builder
	msg.WriteString("ENV")
	for _, kv := range pairs {
		st.envIdx.set(&cfg.Env, kv.Key, kv.Value)
		// The ENV takes the key back from an ARG of that name: from now on
		// expansion sees the ENV value, as in BuildKit, where the later
		// instruction wins.
		st.argIdx.remove((*[]string)(&st.args), kv.Key)
		msg.WriteString(" " + kv.Key + "=" + kv.Value)
	}
	step.Config = []string{"Env"}
	st.configOnly(msg.String())
	return nil
}

func (b *builder) dispatchLabel(st *stage, in *parser.Label, step *Step) error {
	pairs, err := b.expandPairs(st, in.Pairs)
	if err != nil {
		return err
	}
	cfg := &st.config.Config
	if cfg.Labels == nil {
		cfg.Labels = map[string]string{}
	}
	var msg strings.Builder
	msg.WriteString("LABEL")
	for _, kv := range pairs {
		cfg.Labels[kv.Key] = kv.Value
		msg.WriteString(" " + kv.Key + "=" + kv.Value)
	}
	step.Config = []string{"Labels"}
	st.configOnly(msg.String())
	return nil
}

func (b *builder) dispatchUser(st *stage, in *parser.User, step *Step) error {
	// Not checked against /etc/passwd: a container resolves it when it starts.
	u, err := b.word(st, "the user", in.User)
	if err != nil {
		return err
	}
	st.config.Config.User = u
	step.Config = []string{"User"}
	st.configOnly("USER " + u)
	return nil
}

func (b *builder) dispatchExpose(st *stage, in *parser.Expose, step *Step) error {
	var words []string
	for _, p := range in.Ports {
		ws, err := b.ex.WordsVars(p, st.env())
		if err != nil {
			return fmt.Errorf("expanding the ports: %w", err)
		}
		words = append(words, ws...)
	}
	var ports []string
	for _, w := range words {
		ps, err := parsePort(w)
		if err != nil {
			return err
		}
		ports = append(ports, ps...)
	}
	cfg := &st.config.Config
	exposed := maps.Clone(cfg.ExposedPorts)
	if exposed == nil {
		exposed = map[string]struct{}{}
	}
	for _, p := range ports {
		exposed[p] = struct{}{}
	}
	cfg.ExposedPorts = exposed
	step.Config = []string{"ExposedPorts"}
	st.configOnly(fmt.Sprintf("EXPOSE %v", ports))
	return nil
}

func (b *builder) dispatchVolume(st *stage, in *parser.Volume, step *Step) error {
	vols := make([]string, len(in.Paths))
	for i, p := range in.Paths {
		v, err := b.word(st, "the path", p)
		if err != nil {
			return err
		}
		if v == "" {
			return fmt.Errorf("VOLUME specified can not be an empty string: %q expands to nothing", p)
		}
		vols[i] = v
	}
	cfg := &st.config.Config
	volumes := maps.Clone(cfg.Volumes)
	if volumes == nil {
		volumes = map[string]struct{}{}
	}
	// Stored as written, uncleaned, as BuildKit stores them.
	for _, v := range vols {
		volumes[v] = struct{}{}
	}
	cfg.Volumes = volumes
	step.Config = []string{"Volumes"}
	st.configOnly(fmt.Sprintf("VOLUME %v", vols))
	return nil
}

func (b *builder) dispatchStopSignal(st *stage, in *parser.StopSignal, step *Step) error {
	s, err := b.word(st, "the signal", in.Signal)
	if err != nil {
		return err
	}
	if err := checkSignal(s); err != nil {
		return err
	}
	st.config.Config.StopSignal = s
	step.Config = []string{"StopSignal"}
	st.configOnly("STOPSIGNAL " + s)
	return nil
}

func (b *builder) dispatchShell(st *stage, in *parser.Shell, step *Step) error {
	// BuildKit never expands SHELL.
	st.config.Config.Shell = slices.Clone(in.Shell)
	step.Config = []string{"Shell"}
	st.configOnly(fmt.Sprintf("SHELL %v", in.Shell))
	return nil
}

func (b *builder) dispatchHealthcheck(st *stage, in *parser.Healthcheck, step *Step) error {
	if len(in.IgnoredFlags) > 0 {
		loc := in.Location()
		b.res.Warnings = append(b.res.Warnings, fmt.Sprintf("%s:%d: HEALTHCHECK NONE ignores its flags (%s), as docker build does",
			loc.File, loc.Line, strings.Join(in.IgnoredFlags, " ")))
	}
	// Never expanded, and a shell form is CMD-SHELL whatever SHELL says: the
	// container's runtime picks the shell.
	hc := &image.HealthConfig{
		Test:          slices.Clone(in.Test),
		Interval:      in.Interval,
		Timeout:       in.Timeout,
		StartPeriod:   in.StartPeriod,
		StartInterval: in.StartInterval,
		Retries:       in.Retries,
	}
	st.config.Config.Healthcheck = hc
	step.Config = []string{"Healthcheck"}
	// HealthConfig has the fields of BuildKit's HealthcheckConfig in the same
	// order, so %+v prints what BuildKit prints.
	st.configOnly(fmt.Sprintf("HEALTHCHECK %+v", *hc))
	return nil
}

func (b *builder) dispatchOnbuild(st *stage, in *parser.Onbuild, step *Step) error {
	// BuildKit writes no history entry for ONBUILD.
	st.config.Config.OnBuild = append(slices.Clone(st.config.Config.OnBuild), in.Expression)
	step.Config = []string{"OnBuild"}
	return nil
}

func (b *builder) dispatchMaintainer(st *stage, in *parser.Maintainer, step *Step) error {
	// BuildKit never expands MAINTAINER.
	st.config.Author = in.Name
	step.Config = []string{"author"}
	st.configOnly("MAINTAINER " + in.Name)
	return nil
}

// expandPairs expands the keys and values of ENV or LABEL, all with the environment
// before the instruction: "ENV A=1 B=$A" gives B the old value of A.
func (b *builder) expandPairs(st *stage, pairs []parser.KeyValue) ([]parser.KeyValue, error) {
	out := make([]parser.KeyValue, len(pairs))
	for i, kv := range pairs {
		k, err := b.word(st, "the name", kv.Key)
		if err != nil {
			return nil, err
		}
		v, err := b.word(st, fmt.Sprintf("the value of %q", k), kv.Value)
		if err != nil {
			return nil, err
		}
		out[i] = parser.KeyValue{Key: k, Value: v}
	}
	return out, nil
}

// dispatchWorkdir sets the working directory, relative to the previous one, and
// creates it as BuildKit's dispatchWorkdir does: missing directories get mode 0755
// and the current USER as owner, and every WORKDIR but "/" makes a layer, an empty
// one when the directory was there already.
func (b *builder) dispatchWorkdir(st *stage, in *parser.Workdir, step *Step) error {
	p, err := b.word(st, "the path", in.Path)
	if err != nil {
		return err
	}
	wd := normalizeWorkdir(st.config.Config.WorkingDir, p)
	st.config.Config.WorkingDir = wd
	step.Config = []string{"WorkingDir"}
	if wd == "/" {
		st.configOnly("WORKDIR /")
		return nil
	}
	dir := layerfs.Node{Type: layerfs.TypeDir, Mode: 0o755, Stamped: true}
	// The owner matters only for directories that do not exist yet; looking it up
	// otherwise would only risk a needless warning.
	if n, _, err := st.fs.Stat(wd); err != nil || !n.IsDir() {
		uid, gid, err := workdirOwner(st.fs, st.config.Config.User)
		if err != nil {
			return err
		}
		dir.UID, dir.GID = uid, gid
	}
	if _, err := st.fs.MkdirAll(wd, dir); err != nil {
		return fmt.Errorf("creating %q: %w", wd, err)
	}
	step.Layer = st.commit("WORKDIR " + wd)
	return nil
}

// normalizeWorkdir is BuildKit's system.NormalizeWorkdir for Linux: a relative path
// is joined to the current directory (and so cleaned), an empty one stays where it
// is, and an absolute one is kept exactly as written, trailing slash and all.
func normalizeWorkdir(current, p string) string {
	if current == "" {
		current = "/"
	}
	if !path.IsAbs(current) {
		current = path.Join("/", current)
	}
	if p == "" {
		return current
	}
	if !path.IsAbs(p) {
		return path.Join(current, p)
	}
	return p
}

// workdirOwner resolves USER to the ids WORKDIR gives the directories it creates, as
// BuildKit's file operation resolves it: each part is a number ("root" is 0) or a
// name looked up in the image's /etc/passwd or /etc/group as they are now; a user
// alone, or with "name:", gets its own primary gid, a number alone the same number.
// A name the files do not list, or a missing file, is an error, as for COPY --chown
// (README, difference 6): BuildKit fails on a missing file but silently uses 0 for a
// name the file lacks, and a container started from the image would fail on it.
func workdirOwner(root *layerfs.FS, user string) (uid, gid int, err error) {
	if user == "" {
		return 0, 0, nil
	}
	u, g, _ := strings.Cut(user, ":")
	label := "creating the directory for USER " + user
	users := userDB{fs: root, file: passwdFile, kind: "user", label: label}
	uid, gid, err = users.lookup(u)
	if err != nil || g == "" {
		return uid, gid, err
	}
	groups := userDB{fs: root, file: groupFile, kind: "group", label: label}
	gid, _, err = groups.lookup(g)
	return uid, gid, err
}

// parsePort normalises one EXPOSE word, [ip:][hostport:]port[-end][/proto], to the
// "port/proto" entries it stands for, as BuildKit's parsePort does: the protocol is
// lower-cased and defaults to tcp, a range gives one entry per port, and an ip or host
// port is checked and then dropped.
func parsePort(raw string) ([]string, error) {
	parts := strings.Split(raw, ":")
	var ip, hostPort, containerPort string
	switch n := len(parts); n {
	case 1:
		containerPort = parts[0]
	case 2:
		hostPort, containerPort = parts[0], parts[1]
	default:
		ip, hostPort, containerPort = strings.Join(parts[:n-2], ":"), parts[n-2], parts[n-1]
	}
	port, proto, _ := strings.Cut(containerPort, "/")
	if port == "" {
		return nil, fmt.Errorf("invalid port %q: no port specified", raw)
	}
	proto = strings.ToLower(proto)
	switch proto {
	case "":
		proto = "tcp"
	case "tcp", "udp", "sctp":
	default:
		return nil, fmt.Errorf("invalid port %q: invalid protocol %q: want tcp, udp or sctp", raw, proto)
	}
	if strings.HasPrefix(ip, "[") {
		// An IPv6 address in brackets.
		h, _, err := net.SplitHostPort(ip + ":")
		if err != nil {
			return nil, fmt.Errorf("invalid port %q: invalid IP address %q: %w", raw, ip, err)
		}
		ip = h
	}
	if ip != "" && net.ParseIP(ip) == nil {
		return nil, fmt.Errorf("invalid port %q: invalid IP address %q", raw, ip)
	}
	start, end, err := portRange(port)
	if err != nil {
		return nil, fmt.Errorf("invalid port %q: invalid container port %q: %w", raw, port, err)
	}
	if hostPort != "" {
		hs, he, err := portRange(hostPort)
		if err != nil {
			return nil, fmt.Errorf("invalid port %q: invalid host port %q: %w", raw, hostPort, err)
		}
		// A host range is allowed against a single container port (Docker picks a port
		// from it); two ranges must be the same size.
		if end-start != he-hs && end != start {
			return nil, fmt.Errorf("invalid port %q: invalid ranges specified for container and host ports: %s and %s", raw, port, hostPort)
		}
	}
	ports := make([]string, 0, end-start+1)
	for p := start; p <= end; p++ {
		ports = append(ports, strconv.Itoa(p)+"/"+proto)
	}
	return ports, nil
}

// portRange parses "port" or "start-end", each from 0 to 65535, as BuildKit's
// parsePortRange does.
func portRange(s string) (start, end int, err error) {
	if s == "" {
		return 0, 0, errors.New("empty string specified for ports")
	}
	a, z, isRange := strings.Cut(s, "-")
	if start, err = portNumber(a); err != nil {
		return 0, 0, fmt.Errorf("invalid start port %q: %w", a, err)
	}
	if !isRange || a == z {
		return start, start, nil
	}
	if end, err = portNumber(z); err != nil {
		return 0, 0, fmt.Errorf("invalid end port %q: %w", z, err)
	}
	if end < start {
		return 0, 0, fmt.Errorf("the range ends before it starts")
	}
	return start, end, nil
}

func portNumber(s string) (int, error) {
	if s == "" {
		return 0, errors.New("value is empty")
	}
	n, err := strconv.ParseInt(s, 10, 0)
	if err != nil {
		var ne *strconv.NumError
		if errors.As(err, &ne) {
			err = ne.Err
		}
		return 0, err
	}
	if n < 0 || n > 65535 {
		return 0, errors.New("value out of range (0-65535)")
	}
	return int(n), nil
}
