package main

import (
	"archive/tar"
	"errors"
	"flag"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/dfbuild/dfbuild/layerfs/imagetest"
	"github.com/dfbuild/dfbuild/layerfs/inspect"
)

func TestMain(m *testing.M) {
	testscript.Main(m, map[string]func(){"dfbuild": main})
}

// TestScript runs the CLI scenarios in testdata/script/*.txtar. Besides testscript's
// own commands they can use:
//
//	validate FILE           check an archive with dfbuild's and go-containerregistry's readers
//	exits N CMD [ARGS...]   run CMD and require exit status N (stdout/stderr kept)
//	tags FILE               print each image's tags in an archive, one image per line
//	mktar OUT ENTRY...      write a tar; ENTRY is NAME=CONTENT, NAME/ (a directory)
//	                        or NAME->TARGET (a symlink); names are written verbatim
//
// go test ./cmd/dfbuild -update rewrites the scripts' expected output files.
func TestScript(t *testing.T) {
	// In parallel with the end-to-end tests: the scripts want the CPU while those
	// wait for the Docker engine. Each script's environment is its own.
	t.Parallel()
	testscript.Run(t, testscript.Params{
		Dir:                 "testdata/script",
		UpdateScripts:       updateScripts(),
		RequireExplicitExec: true,
		Setup: func(env *testscript.Env) error {
			// Scripts must not depend on the caller's epoch.
			env.Setenv("SOURCE_DATE_EPOCH", "")
			// Registry pulls cache under the script's own directory, and read no
			// configuration or credentials of the caller's.
			env.Setenv("XDG_CACHE_HOME", env.WorkDir+"/.cache")
			env.Setenv("XDG_CONFIG_HOME", env.WorkDir+"/.config")
			env.Setenv("DOCKER_CONFIG", env.WorkDir+"/.docker")
			return nil
		},
		Cmds: map[string]func(ts *testscript.TestScript, neg bool, args []string){
			"validate": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: validate FILE")
				}
				errs := imagetest.Check(ts.MkAbs(args[0]))
				if neg {
					if len(errs) == 0 {
						ts.Fatalf("%s is valid, expected problems", args[0])
					}
					return
				}
				for _, err := range errs {
					ts.Logf("%v", err)
				}
				if len(errs) > 0 {
					ts.Fatalf("%s: %d problems", args[0], len(errs))
				}
			},
			"exits": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 2 {
					ts.Fatalf("usage: exits N CMD [ARGS...]")
				}
				want, err := strconv.Atoi(args[0])
				ts.Check(err)
				err = ts.Exec(args[1], args[2:]...)
				got := 0
				var ee *exec.ExitError
				if errors.As(err, &ee) {
					got = ee.ExitCode()
				} else if err != nil {
					ts.Fatalf("running %s: %v", args[1], err)
				}
				if got != want {
					ts.Fatalf("%s exited %d, want %d", args[1], got, want)
				}
			},
			"mktar": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) < 1 {
					ts.Fatalf("usage: mktar OUT ENTRY...")
				}
				ts.Check(writeTar(ts.MkAbs(args[0]), args[1:]))
			},
			"json": scriptJSON, // in inspect_test.go
			"tags": func(ts *testscript.TestScript, neg bool, args []string) {
				if len(args) != 1 {
					ts.Fatalf("usage: tags FILE")
				}
				entries, closeArchive, err := inspect.ReadEntries(ts.MkAbs(args[0]))
				ts.Check(err)
				defer closeArchive()
				for _, e := range entries {
					var names []string
					for _, t := range e.Tags {
						names = append(names, t.Familiar)
					}
					ts.Stdout().Write([]byte(strings.Join(names, " ") + "\n"))
				}
			},
		},
	})
}

func writeTar(out string, entries []string) error {
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, e := range entries {
		h := &tar.Header{Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(1600000000, 0)}
		var body string
		switch {
		case strings.Contains(e, "->"):
			h.Name, h.Linkname, _ = strings.Cut(e, "->")
			h.Typeflag, h.Mode = tar.TypeSymlink, 0o777
		case strings.HasSuffix(e, "/"):
			h.Name, h.Typeflag, h.Mode = e, tar.TypeDir, 0o755
		default:
			h.Name, body, _ = strings.Cut(e, "=")
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return err
		}
		if _, err := tw.Write([]byte(body)); err != nil {
			return err
		}
	}
	return tw.Close()
}

// update is read from os.Args by updateScripts, because testscript.Params is built
// before the testing package has parsed flags in some paths; the flag is still
// declared so that go test accepts it.
var update = flag.Bool("update", false, "rewrite the scripts' expected output files")

func updateScripts() bool {
	if *update {
		return true
	}
	for _, a := range os.Args {
		if a == "-update" || a == "--update" || a == "-update=true" {
			return true
		}
	}
	return false
}
