package imagetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// The gating of the end-to-end tests: a missing tool skips a test, or fails it under
// CI=true, where nothing that is meant to run may be skipped; -short skips the slow
// ones outside CI.

// InCI reports whether missing tools must fail the tests instead of skipping them
// (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Require skips tb when err says that what (a tool, a daemon) is missing, or fails it
// under CI=true. A nil err lets the test go on.
func Require(tb testing.TB, what string, err error) {
	tb.Helper()
	if err == nil {
		return
	}
	if InCI() {
		tb.Fatalf("%s is required under CI=true but is not usable: %v", what, err)
	}
	tb.Skipf("skipping: %s is not usable: %v (set CI=true to make this a failure)", what, err)
}

// SkipShort skips a slow end-to-end test in -short mode, except under CI=true.
func SkipShort(tb testing.TB) {
	tb.Helper()
	if testing.Short() && !InCI() {
		tb.Skip("skipping the end-to-end test in -short mode")
	}
}

// A Probe runs its check once per test process and remembers the answer.
type Probe struct {
	once sync.Once
	err  error
}

// Check runs f the first time and returns its error, then and every later time.
func (p *Probe) Check(f func() error) error {
	p.once.Do(func() { p.err = f() })
	return p.err
}

// ProbeCmd runs a command briefly to see that a tool works: an error quotes its
// output.
func ProbeCmd(name string, args ...string) error {
	if _, err := exec.LookPath(name); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

var dockerProbe Probe

// RequireDocker skips tb unless a Docker daemon answers (docker info), or fails it
// under CI=true. It also skips in -short mode outside CI (see SkipShort).
func RequireDocker(tb testing.TB) {
	tb.Helper()
	SkipShort(tb)
	Require(tb, "the Docker daemon (docker info)", dockerProbe.Check(func() error {
		return ProbeCmd("docker", "info", "--format", "{{.ServerVersion}}")
	}))
}
