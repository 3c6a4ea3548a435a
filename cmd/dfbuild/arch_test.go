package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const modulePath = "github.com/dfbuild/dfbuild"

// archRules are the import rules of the data flow parser -> interp -> layerfs ->
// output: a package under From (or From itself) may not depend on a package under
// any of Never, directly or through other packages, in its code or its tests.
var archRules = []struct {
	From  string
	Never []string
}{
	{"parser", []string{"interp", "layerfs", "cmd"}},
	{"layerfs", []string{"interp", "parser", "cmd"}},
	{"interp", []string{"cmd"}},
}

// onlyImportedBy names modules that only the given packages (and those under them)
// may import directly: BuildKit's Dockerfile parser is parser's business alone.
var onlyImportedBy = map[string][]string{
	"github.com/moby/buildkit": {"parser"},
}

type listedPackage struct {
	ImportPath   string
	Imports      []string
	Deps         []string
	TestImports  []string
	XTestImports []string
}

// under reports whether import path p is dir or a package below it; dir is either
// a path inside this module ("layerfs") or a full module path.
func under(p, dir string) bool {
	if !strings.Contains(dir, ".") {
		dir = modulePath + "/" + dir
	}
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func listModule(t *testing.T) map[string]listedPackage {
	t.Helper()
	goCmd, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("finding the go command: %v", err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(goCmd, "list", "-json", modulePath+"/...")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	pkgs := map[string]listedPackage{}
	dec := json.NewDecoder(&stdout)
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("reading go list output: %v", err)
		}
		pkgs[p.ImportPath] = p
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no package")
	}
	return pkgs
}

// TestArchitecture holds the import rules the package docs promise (see archRules
// and onlyImportedBy), for code and tests alike.
func TestArchitecture(t *testing.T) {
	t.Parallel()
	pkgs := listModule(t)
	// deps is everything a package's code and tests pull in: its code's transitive
	// dependencies, plus each test import and that import's own dependencies.
	deps := func(p listedPackage) []string {
		out := slices.Clone(p.Deps)
		for _, imp := range slices.Concat(p.TestImports, p.XTestImports) {
			out = append(out, imp)
			if q, ok := pkgs[imp]; ok {
				out = append(out, q.Deps...)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	for _, rule := range archRules {
		found := false
		for path, p := range pkgs {
			if !under(path, rule.From) {
				continue
			}
			found = true
			for _, d := range deps(p) {
				if d == path {
					continue // an external test package imports the package it tests
				}
				for _, never := range rule.Never {
					if under(d, never) {
						t.Errorf("%s depends on %s: %s must not depend on %s", path, d, rule.From, never)
					}
				}
			}
		}
		if !found {
			t.Errorf("rule for %q matches no package", rule.From)
		}
	}
	for mod, allowed := range onlyImportedBy {
		for path, p := range pkgs {
			if slices.ContainsFunc(allowed, func(a string) bool { return under(path, a) }) {
				continue
			}
			for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
				if under(imp, mod) {
					t.Errorf("%s imports %s: only %s may import %s", path, imp, strings.Join(allowed, ", "), mod)
				}
			}
		}
	}
}
