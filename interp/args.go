package interp

import (
	"fmt"
	"runtime"
	"slices"
	"sort"
	"strings"

	"github.com/containerd/platforms"

	"github.com/dfbuild/dfbuild/parser"
)

// Platform is an image platform: os/arch[/variant], as in "linux/arm64".
type Platform struct {
	OS, Arch, Variant string
}

// String formats p as BuildKit's TARGETPLATFORM does.
func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// HostPlatform is the platform dfbuild builds for unless told otherwise: Linux on the
// machine's architecture, which is what docker build on this machine produces.
func HostPlatform() Platform {
	p := Platform{OS: "linux", Arch: runtime.GOARCH}
	if p.Arch == "arm" {
		p.Variant = "v7"
	}
	return p
}

// ParsePlatform reads os/arch[/variant] with the usual aliases (x86_64, aarch64,
// armhf...). The OS must be given; only Linux images can be built from a Dockerfile
// without Windows-specific instructions, so only "linux" is accepted.
func ParsePlatform(s string) (Platform, error) {
	parts := strings.Split(strings.ToLower(strings.TrimSpace(s)), "/")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || parts[1] == "" {
		return Platform{}, fmt.Errorf("platform %q: expected os/arch[/variant], such as linux/amd64", s)
	}
	if parts[0] != "linux" {
		return Platform{}, fmt.Errorf("platform %q: dfbuild builds Linux images only", s)
	}
	if parts[1] == "i686" {
		parts[1] = "386" // dfbuild's own alias, beside containerd's i386
	}
	// containerd's platforms package, which BuildKit uses, names the architecture
	// (x86_64 is amd64, aarch64 arm64, armhf arm/v7, ...) and normalises the variant:
	// arm64's v8 and amd64's v1 are left out, 32-bit arm without one is v7.
	spec, err := platforms.Parse(strings.Join(parts, "/"))
	if err != nil {
		return Platform{}, fmt.Errorf("platform %q: %w", s, err)
	}
	spec = platforms.Normalize(spec)
	p := Platform{OS: spec.OS, Arch: spec.Architecture, Variant: spec.Variant}
	known := []string{"386", "amd64", "arm", "arm64", "loong64", "mips", "mips64", "mips64le", "mipsle", "ppc64", "ppc64le", "riscv64", "s390x"}
	if !slices.Contains(known, p.Arch) {
		return Platform{}, fmt.Errorf("platform %q: unknown architecture %q", s, p.Arch)
	}
	return p, nil
}

// platformArgs are BuildKit's automatic ARGs, in the global scope: usable in FROM
// lines, and inside a stage after "ARG NAME". dfbuild runs nothing, so the build
// platform is the machine's.
func platformArgs(build, target Platform, targetStage string) [][2]string {
	if targetStage == "" {
		targetStage = "default"
	}
	return [][2]string{
		{"BUILDPLATFORM", build.String()},
		{"BUILDOS", build.OS},
		{"BUILDOSVERSION", ""},
		{"BUILDARCH", build.Arch},
		{"BUILDVARIANT", build.Variant},
		{"TARGETPLATFORM", target.String()},
		{"TARGETOS", target.OS},
		{"TARGETOSVERSION", ""},
		{"TARGETARCH", target.Arch},
		{"TARGETVARIANT", target.Variant},
		{"TARGETSTAGE", targetStage},
	}
}

// proxyArgs may be given with --build-arg without a matching ARG. They only ever
// reach RUN, which dfbuild does not run, so they are accepted and unused.
var proxyArgs = []string{"HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy",
	"FTP_PROXY", "ftp_proxy", "NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"}

// envList is an ordered KEY=VALUE list where setting a key replaces it in place, as
// BuildKit's env lists (and Config.Env) behave.
type envList []string

func (l envList) get(key string) (string, bool) {
	for _, kv := range l {
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return v, true
		}
	}
	return "", false
}

func (l envList) remove(key string) envList {
	return slices.DeleteFunc(slices.Clone(l), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return k == key
	})
}

// globalArgs computes the global scope: the automatic platform ARGs, then each ARG
// before the first FROM in order, its default expanded with what came before, a
// --build-arg winning over the default.
func (b *builder) globalArgs(targetStage string) (envList, error) {
	var env []string
	var idx keyIndex
	for _, kv := range platformArgs(b.buildPlatform, b.platform, targetStage) {
		v := kv[1]
		if ov, ok := b.opts.BuildArgs[kv[0]]; ok {
			v = ov
			b.usedArgs[kv[0]] = true
		}
		idx.set(&env, kv[0], v)
	}
	for _, a := range b.file.MetaArgs {
		for _, kv := range a.Args {
			value, has, err := b.argValue(kv, indexedVars{&env, &idx}, nil)
			if err != nil {
				return nil, parser.At(a, err)
			}
			if has {
				idx.set(&env, kv.Key, value)
			}
		}
	}
	return env, nil
}

// argValue resolves one declared ARG: the --build-arg if given, else the default
// expanded with env, else the value in fallback (the global scope, for an ARG in a
// stage). has is false for an ARG that gets no value at all.
func (b *builder) argValue(kv parser.KeyValue, env parser.Vars, fallback envList) (value string, has bool, err error) {
	b.usedArgs[kv.Key] = true
	if v, ok := b.opts.BuildArgs[kv.Key]; ok {
		return v, true, nil
	}
	if kv.HasValue {
		x, err := b.ex.WordVars(kv.Value, env)
		if err != nil {
			return "", false, fmt.Errorf("expanding the default of %q: %w", kv.Key, err)
		}
		return x, true, nil
	}
	value, has = fallback.get(kv.Key)
	return value, has, nil
}

// dispatchArg declares build arguments in a stage (BuildKit's dispatchArg): the value
// is the --build-arg if given, else the default expanded with the stage's
// environment, else the global ARG of that name. A declared value joins the
// environment later instructions expand with, overriding an ENV of the same name
// until the next ENV sets it, but it never enters the image's Env.
func (b *builder) dispatchArg(st *stage, in *parser.Arg) error {
	words := make([]string, 0, len(in.Args))
	type decl struct {
		key, value string
		has        bool
	}
	// Every default is expanded with the environment before the instruction, as
	// BuildKit does it: "ARG A=1 B=$A" gives B the old value of A.
	decls := make([]decl, 0, len(in.Args))
	env := st.env()
	for _, kv := range in.Args {
		value, has, err := b.argValue(kv, env, b.global)
		if err != nil {
			return err
		}
		decls = append(decls, decl{kv.Key, value, has})
	}
	for _, d := range decls {
		w := d.key
		if d.has {
			st.argIdx.set((*[]string)(&st.args), d.key, d.value)
			w += "=" + d.value
		}
		words = append(words, w)
	}
	st.configOnly("ARG " + strings.Join(words, " "))
	return nil
}

// unusedArgWarnings names the --build-arg values no ARG declared, as docker build
// warns about them.
func (b *builder) unusedArgWarnings() []string {
	var unused []string
	for k := range b.opts.BuildArgs {
		if !b.usedArgs[k] && !slices.Contains(proxyArgs, k) {
			unused = append(unused, k)
		}
	}
	if len(unused) == 0 {
		return nil
	}
	sort.Strings(unused)
	return []string{fmt.Sprintf("%s: build arguments %s were not consumed: no stage that was built declares them with ARG",
		b.file.Name, strings.Join(unused, ", "))}
}

// stageVars are the variables that expand the words of a stage's next instruction:
// its ARG values over the config's Env. Lookups go through indexes the stage keeps
// from one instruction to the next, so a Dockerfile of many ENV or ARG lines costs
// time in proportion to its length, not its square.
type stageVars struct{ st *stage }

// indexedVars looks variables up in a list through its index.
type indexedVars struct {
	l *[]string
	x *keyIndex
}

func (v indexedVars) Get(key string) (string, bool) {
	if i, ok := v.x.of(*v.l)[key]; ok {
		_, val, _ := strings.Cut((*v.l)[i], "=")
		return val, true
	}
	return "", false
}

func (v stageVars) Get(key string) (string, bool) {
	if i, ok := v.st.argIndex()[key]; ok {
		_, val, _ := strings.Cut(v.st.args[i], "=")
		return val, true
	}
	if i, ok := v.st.envIndex()[key]; ok {
		_, val, _ := strings.Cut(v.st.config.Config.Env[i], "=")
		return val, true
	}
	return "", false
}

// keyIndex maps each key of a KEY=VALUE list to its position. An index is kept with
// the length of the list it was made for: from.go appends the PATH to a new stage's
// Env, and a list that changed length behind the index's back gets a new one.
type keyIndex struct {
	pos map[string]int
	n   int
}

func (x *keyIndex) of(l []string) map[string]int {
	if x.pos == nil || x.n != len(l) {
		x.pos = make(map[string]int, len(l))
		for i, kv := range l {
			k, _, _ := strings.Cut(kv, "=")
			if _, ok := x.pos[k]; !ok {
				x.pos[k] = i // get finds the first
			}
		}
		x.n = len(l)
	}
	return x.pos
}

// set sets key on a list this stage owns (cloneConfig gave it its own), replacing
// it in place as envList does: it changes the list in place and keeps the index.
func (x *keyIndex) set(l *[]string, key, value string) {
	pos := x.of(*l)
	if i, ok := pos[key]; ok {
		(*l)[i] = key + "=" + value
		return
	}
	pos[key] = len(*l)
	*l = append(*l, key+"="+value)
	x.n = len(*l)
}

// remove deletes key from the list, keeping the index.
func (x *keyIndex) remove(l *[]string, key string) {
	if _, ok := x.of(*l)[key]; !ok {
		return
	}
	*l = envList(*l).remove(key)
	x.pos = nil
}

func (st *stage) envIndex() map[string]int { return st.envIdx.of(st.config.Config.Env) }
func (st *stage) argIndex() map[string]int { return st.argIdx.of(st.args) }
