//go:build unix

package main

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Issue 11, fault 6: SIGINT and SIGTERM stop a build that is waiting on a server
// that never answers, remove its temporary files and exit 130 and 143. The child is
// this test binary run as dfbuild (TestE2EHelperProcess).
func TestSignalStopsBuild(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		sig  syscall.Signal
		code int
	}{{syscall.SIGINT, 130}, {syscall.SIGTERM, 143}} {
		t.Run(signalName(c.sig), func(t *testing.T) {
			t.Parallel()
			asked := make(chan struct{}, 1)
			release := make(chan struct{})
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				asked <- struct{}{}
				select {
				case <-r.Context().Done():
				case <-release:
				}
			}))
			defer srv.Close()
			defer close(release)
			dir := t.TempDir()
			ctxDir, tmp, out := filepath.Join(dir, "ctx"), filepath.Join(dir, "tmp"), filepath.Join(dir, "out")
			for _, d := range []string{ctxDir, tmp, out} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			df := "FROM scratch\nCOPY . /\nADD " + srv.URL + "/never /x\n"
			if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o644); err != nil {
				t.Fatal(err)
			}
			argv, _ := json.Marshal([]string{"--progress=plain", "-o", filepath.Join(out, "image.tar"), ctxDir})
			cmd := exec.Command(self, "-test.run=^TestE2EHelperProcess$")
			cmd.Env = append(os.Environ(), e2eHelperEnv+"="+string(argv), "TMPDIR="+tmp)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan error, 1)
			go func() { exited <- cmd.Wait() }()
			select {
			case <-asked:
			case err := <-exited:
				t.Fatalf("dfbuild exited before the download: %v\n%s", err, stderr.String())
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatal("the build never reached the download")
			}
			if err := cmd.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			select {
			case err = <-exited:
			case <-time.After(10 * time.Second): // a hang, not a timing check
				cmd.Process.Kill()
				t.Fatalf("dfbuild did not stop on %s\n%s", c.sig, stderr.String())
			}
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != c.code {
				t.Fatalf("exit: %v, want status %d\n%s", err, c.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), "interrupted by "+signalName(c.sig)) {
				t.Errorf("stderr does not say it was interrupted:\n%s", stderr.String())
			}
			for _, d := range []string{tmp, out} {
				left, _ := os.ReadDir(d)
				for _, e := range left {
					// The test binary's own harness (testscript.Main) keeps a directory there.
					if !strings.HasPrefix(e.Name(), "testscript-") {
						t.Errorf("%s holds %s after the interrupt", d, e.Name())
					}
				}
			}
		})
	}
}

// A build stuck where no context reaches, reading a Dockerfile FIFO that nobody
// writes to, still ends after an interrupt, with 130.
func TestSignalStopsStuckBuild(t *testing.T) {
	t.Parallel()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	fifo := filepath.Join(dir, "Dockerfile")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	argv, _ := json.Marshal([]string{"-f", fifo, "-o", filepath.Join(dir, "image.tar"), dir})
	cmd := exec.Command(self, "-test.run=^TestE2EHelperProcess$")
	cmd.Env = append(os.Environ(), e2eHelperEnv+"="+string(argv))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	// Once dfbuild has the FIFO open to read, a writer can open it without
	// waiting; holding it open and writing nothing keeps dfbuild reading.
	var w *os.File
	for w == nil {
		w, err = os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil && !errors.Is(err, syscall.ENXIO) {
			t.Fatal(err)
		}
		select {
		case err := <-exited:
			t.Fatalf("dfbuild exited before reading the Dockerfile: %v\n%s", err, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	defer w.Close()
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err = <-exited:
	case <-time.After(30 * time.Second): // a hang, not a timing check
		cmd.Process.Kill()
		t.Fatal("dfbuild did not end")
	}
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 130 {
		t.Fatalf("exit: %v, want status 130\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "still stuck") {
		t.Errorf("stderr does not say why it exited:\n%s", stderr.String())
	}
}
