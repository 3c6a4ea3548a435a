package interp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/dfbuild/dfbuild/parser"
)

// buildString builds a Dockerfile given as text on an empty context.
func buildString(t *testing.T, dockerfile string) *Result {
	t.Helper()
	f, err := parser.Parse(strings.NewReader(dockerfile), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1700000000, 0)
	res, err := Build(context.Background(), f, Options{ContextDir: t.TempDir(), SourceDateEpoch: &epoch})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { res.Close() })
	return res
}

// The txtar cases record configs and layers; what each step reports, and the
// warnings, are checked here.
func TestConfigSteps(t *testing.T) {
	res := buildString(t, `FROM scratch
ENV A=1
LABEL a=b
USER 1000
WORKDIR /app
WORKDIR /
EXPOSE 80
VOLUME /v
STOPSIGNAL KILL
SHELL ["/bin/sh", "-c"]
HEALTHCHECK NONE
ONBUILD RUN x
MAINTAINER me
`)
	want := []struct {
		config string
		layer  bool
	}{
		{"", false}, // FROM
		{"Env", false},
		{"Labels", false},
		{"User", false},
		{"WorkingDir", true},
		{"WorkingDir", false},
		{"ExposedPorts", false},
		{"Volumes", false},
		{"StopSignal", false},
		{"Shell", false},
		{"Healthcheck", false},
		{"OnBuild", false},
		{"author", false},
	}
	if len(res.Steps) != len(want) {
		t.Fatalf("%d steps, want %d", len(res.Steps), len(want))
	}
	for i, w := range want {
		s := res.Steps[i]
		if got := strings.Join(s.Config, ","); got != w.config {
			t.Errorf("step %d (%s): config %q, want %q", i+1, s.Instruction, got, w.config)
		}
		if (s.Layer != nil) != w.layer {
			t.Errorf("step %d (%s): layer %v, want %v", i+1, s.Instruction, s.Layer != nil, w.layer)
		}
	}
	// ONBUILD has no history entry: 11 instructions after FROM, ONBUILD left out.
	if n := len(res.Image.Config.History); n != 11 {
		t.Errorf("%d history entries, want 11", n)
	}
	if len(res.Warnings) != 0 {
		t.Errorf("warnings: %q", res.Warnings)
	}
}

// A WORKDIR that creates a directory for a USER name the image cannot resolve fails
// at its line; one that creates nothing looks nothing up.
func TestWorkdirUnknownUser(t *testing.T) {
	f, err := parser.Parse(strings.NewReader("FROM scratch\nUSER ghost\nWORKDIR /a\n"), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(context.Background(), f, Options{ContextDir: t.TempDir()})
	if err == nil || !strings.HasPrefix(err.Error(), "Dockerfile:3: WORKDIR: ") || !strings.Contains(err.Error(), `user "ghost"`) {
		t.Errorf("error %v, want one at line 3 naming the user", err)
	}
	res := buildString(t, "FROM scratch\nWORKDIR /a\nUSER ghost\nWORKDIR /a\nWORKDIR /\n")
	if len(res.Warnings) != 0 {
		t.Errorf("warnings %q for a WORKDIR that created nothing", res.Warnings)
	}
}

// Numbers and root need no lookup, so they warn about nothing even without
// /etc/passwd.
func TestWorkdirNumericNoWarning(t *testing.T) {
	res := buildString(t, "FROM scratch\nUSER 1:2\nWORKDIR /a\nUSER root\nWORKDIR /b\n")
	if len(res.Warnings) != 0 {
		t.Errorf("numeric USER warned: %q", res.Warnings)
	}
}

func TestNormalizeWorkdir(t *testing.T) {
	for _, tt := range []struct{ cur, p, want string }{
		{"", "test", "/test"},
		{"", "/abs", "/abs"},
		{"/", "/app/", "/app/"},
		{"/test", "sub", "/test/sub"},
		{"/test", "../sub", "/sub"},
		{"/test", "", "/test"},
		{"", "", "/"},
		{"relative", "", "/relative"},
		{"relative", "more", "/relative/more"},
		{"/a/", "./b/", "/a/b"},
		{"/", "/x/../y", "/x/../y"},
	} {
		if got := normalizeWorkdir(tt.cur, tt.p); got != tt.want {
			t.Errorf("normalizeWorkdir(%q, %q) = %q, want %q", tt.cur, tt.p, got, tt.want)
		}
	}
}

func TestCheckSignal(t *testing.T) {
	for _, s := range []string{"SIGKILL", "KILL", "kill", "sigterm", "9", "+9", "-1", "64", "100", "SIGRTMIN", "SIGRTMIN+3", "RTMIN+15", "SIGRTMAX-14", "SIGRTMAX", "SIGCLD", "SIGIOT", "SIGPOLL"} {
		if err := checkSignal(s); err != nil {
			t.Errorf("checkSignal(%q): %v", s, err)
		}
	}
	for _, s := range []string{"", "0", "SIG", "SIGFOO", "SIGRTMIN+16", "SIGRTMAX-15", "SIGRTMAX+1", "SIGRTMIN+0", "RTMIN+03", "SIGKILL ", "99999999999999999999", "SIGSIGKILL"} {
		if err := checkSignal(s); err == nil {
			t.Errorf("checkSignal(%q) accepted it", s)
		}
	}
}

func TestParsePort(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string // ports joined by spaces, or "ERR"
	}{
		{"80", "80/tcp"},
		{"80/UDP", "80/udp"},
		{"80/Sctp", "80/sctp"},
		{"0", "0/tcp"},
		{"65535", "65535/tcp"},
		{"7000-7002", "7000/tcp 7001/tcp 7002/tcp"},
		{"7000-7000/udp", "7000/udp"},
		{"127.0.0.1:5000:5001", "5001/tcp"},
		{"5000:5001/udp", "5001/udp"},
		{"[::1]:53:53/udp", "53/udp"},
		{"::1:53:53", "53/tcp"},
		{"8000-8002:8080", "8080/tcp"},
		{"8000-8001:9000-9001", "9000/tcp 9001/tcp"},
		{"80/foo", "ERR"},
		{"/tcp", "ERR"},
		{"", "ERR"},
		{"65536", "ERR"},
		{"-1", "ERR"},
		{"5-3", "ERR"},
		{"5-", "ERR"},
		{"abc", "ERR"},
		{"1.2.3:80:80", "ERR"},
		{"8000-8001:9000-9002", "ERR"},
		{"x:80", "ERR"},
	} {
		got, err := parsePort(tt.in)
		if tt.want == "ERR" {
			if err == nil {
				t.Errorf("parsePort(%q) = %q, want an error", tt.in, got)
			}
			continue
		}
		if err != nil || strings.Join(got, " ") != tt.want {
			t.Errorf("parsePort(%q) = %q, %v; want %s", tt.in, got, err, tt.want)
		}
	}
}
