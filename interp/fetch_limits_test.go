package interp

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Issue 11, fault 8: downloads are bounded in size and time, and a timeout names the
// URL and says it timed out. The tests run one at a time: some shorten fetchWindow.
func TestFetchLimits(t *testing.T) {
	chunk := strings.Repeat("x", 32<<10)
	cases := []struct {
		name    string
		opts    Options
		window  time.Duration
		handler http.HandlerFunc
		want    string
	}{
		{"endless body", Options{AddMaxSize: 1 << 20}, 0, func(w http.ResponseWriter, r *http.Request) {
			for r.Context().Err() == nil {
				if _, err := w.Write([]byte(chunk)); err != nil {
					return
				}
			}
		}, "over the limit of 1048576 bytes (--add-max-size)"},
		{"announced size", Options{AddMaxSize: 1 << 20}, 0, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(2<<20))
			w.WriteHeader(200)
		}, "announces 2097152 bytes, over the limit of 1048576 (--add-max-size)"},
		{"short body", Options{}, 0, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "10")
			w.WriteHeader(200)
			w.Write([]byte("12345"))
		}, "unexpected EOF"},
		{"long body", Options{}, 0, func(w http.ResponseWriter, r *http.Request) {
			// The server declares 5 bytes and keeps sending: net/http would stop at 5
			// and drop the rest unnoticed.
			conn, buf, err := w.(http.Hijacker).Hijack()
			if err != nil {
				return
			}
			defer conn.Close()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
			for i := 0; i < 64 && buf.Flush() == nil; i++ {
				buf.WriteString(chunk)
			}
		}, "the server sent more than its Content-Length of 5 bytes"},
		{"trickle", Options{}, 300 * time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			for r.Context().Err() == nil {
				w.Write([]byte("x"))
				w.(http.Flusher).Flush()
				time.Sleep(20 * time.Millisecond)
			}
		}, "timed out: the server sent less than 16 KiB in 300ms"},
		{"no answer", Options{}, 300 * time.Millisecond, func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}, "timed out: the server did not answer in 300ms"},
		{"overall", Options{AddTimeout: 500 * time.Millisecond}, 0, func(w http.ResponseWriter, r *http.Request) {
			for r.Context().Err() == nil {
				w.Write([]byte(chunk))
				w.(http.Flusher).Flush()
				time.Sleep(20 * time.Millisecond)
			}
		}, "timed out: the download took longer than 500ms (--add-timeout)"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			srv := httptest.NewServer(c.handler)
			defer srv.Close()
			if c.window != 0 {
				defer func(w time.Duration) { fetchWindow = w }(fetchWindow)
				fetchWindow = c.window
			}
			tmp := t.TempDir()
			b := &builder{ctx: context.Background(), tmp: tmp, opts: c.opts}
			done := make(chan error, 1)
			go func() {
				_, err := b.fetch(srv.URL+"/f", "")
				done <- err
			}()
			var err error
			select {
			case err = <-done:
			case <-time.After(20 * time.Second): // a hang, not a timing check
				t.Fatal("the download hangs")
			}
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), srv.URL+"/f") {
				t.Fatalf("err = %v, want it to name the URL and say %q", err, c.want)
			}
			if left, _ := os.ReadDir(tmp); len(left) != 0 {
				t.Errorf("the failed download left %d files behind", len(left))
			}
		})
	}
}

// An interrupted build stops its download with the interrupt, not a timeout.
func TestFetchInterrupted(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	b := &builder{ctx: ctx, tmp: t.TempDir()}
	time.AfterFunc(50*time.Millisecond, cancel)
	_, err := b.fetch(srv.URL, "")
	if err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Fatalf("err = %v, want the interrupt", err)
	}
}
