package interp

import (
	"fmt"
	"strconv"
	"strings"
)

// linuxSignals is moby/sys/signal's SignalMap for Linux (all architectures but MIPS,
// whose numbers differ; only the names matter here): the names STOPSIGNAL accepts,
// without their "SIG" prefix, and the numbers they stand for on x86 and ARM.
//
// It is kept here rather than taken from moby/sys/signal because that package's
// SignalMap is the host's: built on macOS it lacks the real-time names (no
// SIGRTMIN+3), and on Windows it differs again, while a Linux image takes Linux
// names wherever dfbuild runs.
var linuxSignals = func() map[string]int {
	m := map[string]int{
		"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "TRAP": 5, "ABRT": 6, "IOT": 6, "BUS": 7,
		"FPE": 8, "KILL": 9, "USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14,
		"TERM": 15, "STKFLT": 16, "CHLD": 17, "CLD": 17, "CONT": 18, "STOP": 19, "TSTP": 20,
		"TTIN": 21, "TTOU": 22, "URG": 23, "XCPU": 24, "XFSZ": 25, "VTALRM": 26, "PROF": 27,
		"WINCH": 28, "IO": 29, "POLL": 29, "PWR": 30, "SYS": 31,
	}
	// The real-time signals go by RTMIN+n up to n=15 and RTMAX-n down from there,
	// and by no other spelling (no "RTMIN+16", no "RTMAX+0").
	const rtmin, rtmax = 34, 64
	m["RTMIN"], m["RTMAX"] = rtmin, rtmax
	for n := 1; n <= 15; n++ {
		m["RTMIN+"+strconv.Itoa(n)] = rtmin + n
	}
	for n := 1; n <= 14; n++ {
		m["RTMAX-"+strconv.Itoa(n)] = rtmax - n
	}
	return m
}()

// checkSignal validates a STOPSIGNAL value as moby/sys/signal.ParseSignal does, which
// BuildKit calls: a decimal number other than 0 (strconv.Atoi's syntax, so a sign is
// accepted and nothing checks the range), or a signal name in any case, with or
// without its "SIG" prefix.
func checkSignal(s string) error {
	if n, err := strconv.Atoi(s); err == nil {
		if n == 0 {
			return fmt.Errorf("invalid signal %q: 0 is not a signal", s)
		}
		return nil
	}
	if _, ok := linuxSignals[strings.TrimPrefix(strings.ToUpper(s), "SIG")]; !ok {
		return fmt.Errorf("invalid signal %q: want a signal name such as SIGTERM, KILL or SIGRTMIN+3, or a number", s)
	}
	return nil
}
