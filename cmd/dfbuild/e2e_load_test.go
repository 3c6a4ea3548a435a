//go:build linux

package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestE2ELoad builds testdata/hello's image with --load into the real engine, and
// again with -o - piped into docker load: the same image, which runs.
func TestE2ELoad(t *testing.T) {
	requireDocker(t)
	e2eParallel(t)
	dir := t.TempDir()
	ctxDir := e2eHelloContext(t, dir)
	tagLoad, tagPipe := e2eName("load:1"), e2eName("pipe:1")
	// Registered before the builds, so a failing build still leaves nothing behind.
	e2eRemoveImagesAfter(t, tagLoad, tagPipe)

	var stdout, stderr bytes.Buffer
	o := buildOptions{contextDir: ctxDir, tags: []string{tagLoad}, out: outputOptions{load: true}}
	if err := runBuild(context.Background(), strings.NewReader(""), &stdout, &stderr, o); err != nil {
		t.Fatalf("dfbuild --load: %v\nstderr:\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "Loaded image: "+tagLoad+"\n") {
		t.Errorf("dfbuild --load printed no \"Loaded image: %s\":\n%s", tagLoad, stdout.String())
	}
	id := strings.TrimPrefix(strings.SplitN(stdout.String(), "\n", 2)[0], "Image ")
	if got := e2eImageInspect(t, tagLoad).ID; got != id {
		t.Errorf("docker's image ID is %s, dfbuild printed %s", got, id)
	}
	if got := e2eDockerRun(t, tagLoad); got != "hello world\n" {
		t.Errorf("docker run %s printed %q", tagLoad, got)
	}
	if left, _ := filepath.Glob(filepath.Join(ctxDir, "*.tar")); len(left) > 0 {
		t.Errorf("--load wrote an archive: %v", left)
	}

	// dfbuild -o - | docker load, with dfbuild run as the test binary itself.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	build := exec.CommandContext(ctx, self, "-t", tagPipe, "-o", "-", ctxDir)
	build.Args[0] = "dfbuild" // testscript.Main runs main when argv[0] is "dfbuild"
	load := exec.CommandContext(ctx, "docker", "load")
	pr, pw := io.Pipe()
	build.Stdout, load.Stdin = pw, pr
	var buildErr, loadOut, loadErr bytes.Buffer
	build.Stderr, load.Stdout, load.Stderr = &buildErr, &loadOut, &loadErr
	if err := load.Start(); err != nil {
		t.Fatal(err)
	}
	err = build.Run()
	pw.CloseWithError(err)
	if err != nil {
		t.Fatalf("dfbuild -o -: %v\nstderr:\n%s", err, buildErr.String())
	}
	if err := load.Wait(); err != nil {
		t.Fatalf("docker load: %v\n%s", err, loadErr.String())
	}
	if !strings.Contains(loadOut.String(), "Loaded image: "+tagPipe+"\n") {
		t.Errorf("docker load printed:\n%s", loadOut.String())
	}
	if !strings.Contains(buildErr.String(), "Image "+id) {
		t.Errorf("dfbuild -o - did not report the image on stderr:\n%s", buildErr.String())
	}
	if got := e2eImageInspect(t, tagPipe).ID; got != id {
		t.Errorf("docker's image ID for %s is %s, dfbuild built %s", tagPipe, got, id)
	}
}
