//go:build linux

package main

// The end-to-end test of -o type=dir, with the helpers of e2e_util_test.go.

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dfbuild/dfbuild/layerfs/imagetest"
)

// TestE2EDirOutput builds testdata/hello's Dockerfile with -o type=dir, packs the
// directory as the classic recipe does (tar -cf hello.tar -C DIR .), loads that into
// Docker and runs it. The image is the one the archive output of the same build
// holds, and --iidfile names it.
func TestE2EDirOutput(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	dir := t.TempDir()
	ctxDir := e2eHelloContext(t, dir)
	tag := e2eName("hello:dir")

	// The archive of the same build, for the image ID to expect.
	want := e2eDFBuild(t, buildOptions{contextDir: ctxDir, tags: []string{tag}, output: filepath.Join(dir, "hello.tar")})

	// e2eDFBuild validates its output as an archive file, so the directory is built
	// directly, the way e2eDFBuild calls runBuild.
	out, iid := filepath.Join(dir, "hello"), filepath.Join(dir, "hello.iid")
	var stdout, stderr bytes.Buffer
	o := buildOptions{contextDir: ctxDir, tags: []string{tag}, output: "type=dir,dest=" + out, iidFile: iid}
	if err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr, o); err != nil {
		t.Fatalf("dfbuild -o %s: %v\nstderr:\n%s", o.output, err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "Load it with: tar -cf image.tar -C "+out+" . && docker load -i image.tar\n") {
		t.Errorf("dfbuild does not say how to load the directory:\n%s", stdout.String())
	}
	if got, err := os.ReadFile(iid); err != nil || string(got) != want {
		t.Errorf("--iidfile holds %q (%v), want %q", got, err, want)
	}

	packed := filepath.Join(dir, "packed.tar")
	e2eMust(t, nil, "tar", "-cf", packed, "-C", out, ".")
	imagetest.Validate(t, packed)
	e2eDockerLoad(t, packed, tag)
	if got := e2eImageInspect(t, tag).ID; got != want {
		t.Errorf("docker's image ID is %s, the archive's %s", got, want)
	}
	if got := e2eDockerRun(t, tag); got != "hello world\n" {
		t.Errorf("docker run %s printed %q, want %q", tag, got, "hello world\n")
	}
}
