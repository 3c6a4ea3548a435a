package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	ctx, sig, stop := notifyContext()
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	// An interrupted build has unwound by now, its temporary files removed on the
	// way; it exits as a shell reports a process the signal ended: 128 plus the
	// signal's number, 130 for SIGINT and 143 for SIGTERM.
	if s := sig(); s != 0 {
		fmt.Fprintf(os.Stderr, "dfbuild: interrupted by %s\n", signalName(s))
		os.Exit(128 + int(s))
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "dfbuild: "+err.Error())
		os.Exit(exitCode(err))
	}
}

// stuckGrace is how long an interrupted build may take to unwind before the process
// ends without it.
const stuckGrace = 2 * time.Second

// notifyContext is signal.NotifyContext for SIGINT and SIGTERM that also tells which
// signal came (sig returns 0 for none).
func notifyContext() (ctx context.Context, sig func() syscall.Signal, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	// Stored before the cancel, so whatever saw the cancel sees the signal too.
	var got atomic.Int32
	done := make(chan struct{})
	go func() {
		select {
		case s := <-ch:
			got.Store(int32(s.(syscall.Signal)))
			cancel()
		case <-done:
			return
		}
		// Every phase watches ctx and unwinds within a second, removing its
		// temporary files. One stuck in the kernel (an -f FIFO nobody writes to)
		// cannot, so the process ends anyway after stuckGrace, or at once on a
		// second signal.
		select {
		case s := <-ch:
			os.Exit(128 + int(s.(syscall.Signal)))
		case <-time.After(stuckGrace):
			fmt.Fprintf(os.Stderr, "dfbuild: interrupted by %s; still stuck after %s, exiting\n", signalName(syscall.Signal(got.Load())), stuckGrace)
			os.Exit(128 + int(got.Load()))
		case <-done:
		}
	}()
	sig = func() syscall.Signal { return syscall.Signal(got.Load()) }
	stop = func() {
		signal.Stop(ch)
		close(done)
		cancel()
	}
	return ctx, sig, stop
}

func signalName(s syscall.Signal) string {
	switch s {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGTERM:
		return "SIGTERM"
	}
	return s.String()
}

// Exit codes: 1 for a failed build, 2 for a command line dfbuild cannot use.
const (
	exitBuild = 1
	exitUsage = 2
)

// usageError marks errors in how dfbuild was called.
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

func exitCode(err error) int {
	var u usageError
	if errors.As(err, &u) {
		return exitUsage
	}
	return exitBuild
}
