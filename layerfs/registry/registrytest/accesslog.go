package registrytest

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Request is one line of the registry's access log.
type Request struct {
	Method string
	Path   string // without the query
	Query  string // raw query, without "?"; "" when none
	Status int
	User   string // the authenticated user, "" for "-"
	Line   string // the whole log line
}

// Repo returns the repository a /v2/<repo>/{blobs,manifests,tags}/... path names, or
// "" for other paths (the /v2/ ping, the catalog).
func (q Request) Repo() string {
	rest, ok := strings.CutPrefix(q.Path, "/v2/")
	if !ok {
		return ""
	}
	// The last marker wins: a repository name may itself contain "blobs" as a
	// component, a digest or tag never contains a slash.
	end := -1
	for _, kind := range []string{"/blobs/", "/manifests/", "/tags/"} {
		end = max(end, strings.LastIndex(rest, kind))
	}
	if end <= 0 {
		return ""
	}
	return rest[:end]
}

// The Apache combined format gorilla/handlers writes (registry/registry.go
// NewRegistry wraps the app in CombinedLoggingHandler): host ident user [time]
// "method uri proto" status size "referer" "agent". Quotes inside the request line
// are backslash-escaped.
var combined = regexp.MustCompile(`^\S+ \S+ (\S+) \[[^\]]*\] "((?:[^"\\]|\\.)*)" (\d{3}) `)

func parseLine(line string) (Request, bool) {
	m := combined.FindStringSubmatch(line)
	if m == nil {
		return Request{}, false
	}
	fields := strings.Fields(m[2])
	if len(fields) < 2 {
		return Request{}, false
	}
	status, _ := strconv.Atoi(m[3])
	q := Request{Method: fields[0], Status: status, Line: line}
	q.Path, q.Query, _ = strings.Cut(fields[1], "?")
	if m[1] != "-" {
		q.User = m[1]
	}
	return q, true
}

// syncParam marks the barrier requests of flush; their lines are not reported.
const syncParam = "dfbuild-registrytest-sync"

// flush waits until the access log holds the lines of every request that completed
// before the call, and returns the log up to and including the barrier's line.
// gorilla/handlers writes a line only after the handler returned, and the line then
// crosses a pipe and exec's copier, so a client can have the whole response before
// its line is in r.stdout. flush sends its own request and waits for that line: the
// registry finished the earlier requests before this one arrived.
func (r *Registry) flush() ([]byte, error) {
	r.mu.Lock()
	r.syncSeq++
	marker := fmt.Sprintf("?%s=%d ", syncParam, r.syncSeq)
	r.mu.Unlock()
	resp, err := r.client.Get(r.URL + "/v2/" + marker[:len(marker)-1])
	if err != nil {
		return nil, fmt.Errorf("flushing the access log: %w", err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	deadline := time.Now().Add(readyTimeout)
	for {
		data := r.stdout.Bytes()
		if i := bytes.Index(data, []byte(marker)); i >= 0 {
			if nl := bytes.IndexByte(data[i:], '\n'); nl >= 0 {
				return data[:i+nl+1], nil
			}
		}
		if !r.Running() || time.Now().After(deadline) {
			return data, fmt.Errorf("flushing the access log: the line of %q did not come; stderr: %s",
				marker, bytes.TrimSpace(r.stderr.Bytes()))
		}
		time.Sleep(time.Millisecond)
	}
}

// Requests returns the requests the access log recorded since Start or the last
// ResetLog, in order. It first waits for the lines of every request that completed
// before the call (see flush); a failure there fails the test, and the lines logged
// so far are returned.
func (r *Registry) Requests() []Request {
	data, err := r.flush()
	if err != nil {
		r.tb.Error(err)
	}
	r.mu.Lock()
	from := r.logFrom
	r.mu.Unlock()
	if from > len(data) {
		from = len(data)
	}
	data = data[from:]
	if i := bytes.LastIndexByte(data, '\n'); i >= 0 {
		data = data[:i]
	} else {
		return nil
	}
	var out []Request
	for _, line := range strings.Split(string(data), "\n") {
		if q, ok := parseLine(line); ok && !hasParam(q.Query, syncParam) {
			out = append(out, q)
		}
	}
	return out
}

// ResetLog forgets the requests logged so far, so that counts start at zero. It waits
// for the lines of completed requests first, so that none of them is counted later.
func (r *Registry) ResetLog() {
	data, err := r.flush()
	if err != nil {
		r.tb.Error(err)
	}
	r.mu.Lock()
	r.logFrom = len(data)
	r.mu.Unlock()
}

// Count returns how many logged requests match.
func (r *Registry) Count(match func(Request) bool) int {
	n := 0
	for _, q := range r.Requests() {
		if match(q) {
			n++
		}
	}
	return n
}

func ok(status int) bool { return status >= 200 && status < 300 }

// isBlob reports whether q is for a blob of repo by digest (not an upload session).
func isBlob(q Request, repo string) bool {
	d, found := strings.CutPrefix(q.Path, "/v2/"+repo+"/blobs/")
	return found && !strings.HasPrefix(d, "uploads/") && d != "uploads"
}

// BlobGETs counts successful blob downloads (GET .../blobs/<digest>, 2xx) from repo.
func (r *Registry) BlobGETs(repo string) int {
	return r.Count(func(q Request) bool { return q.Method == "GET" && ok(q.Status) && isBlob(q, repo) })
}

// BlobHEADs counts existence checks (HEAD .../blobs/<digest>) in repo, whatever they
// answered.
func (r *Registry) BlobHEADs(repo string) int {
	return r.Count(func(q Request) bool { return q.Method == "HEAD" && isBlob(q, repo) })
}

// BlobUploads counts completed uploads to repo: PUT .../blobs/uploads/<id>?digest=...
// answered 201. A monolithic POST ?digest= upload (which ggcr does not send) is not
// counted.
func (r *Registry) BlobUploads(repo string) int {
	return r.Count(func(q Request) bool {
		return q.Method == "PUT" && q.Status == 201 && strings.HasPrefix(q.Path, "/v2/"+repo+"/blobs/uploads/")
	})
}

// Mounts counts cross-repository mounts into repo: POST .../blobs/uploads/?mount=&from=
// answered 201. A mount the registry refused (202, an ordinary upload starts) is not
// counted.
func (r *Registry) Mounts(repo string) int {
	return r.Count(func(q Request) bool {
		return q.Method == "POST" && q.Status == 201 && strings.HasPrefix(q.Path, "/v2/"+repo+"/blobs/uploads") &&
			hasParam(q.Query, "mount") && hasParam(q.Query, "from")
	})
}

// ManifestPUTs counts manifests stored in repo (PUT .../manifests/<ref> answered 201).
func (r *Registry) ManifestPUTs(repo string) int {
	return r.Count(func(q Request) bool {
		return q.Method == "PUT" && q.Status == 201 && strings.HasPrefix(q.Path, "/v2/"+repo+"/manifests/")
	})
}

func hasParam(query, name string) bool {
	for _, kv := range strings.Split(query, "&") {
		if k, _, _ := strings.Cut(kv, "="); k == name {
			return true
		}
	}
	return false
}

// syncBuffer is a bytes.Buffer that the process's output copier writes while tests
// read it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// Bytes returns a copy of what was written so far.
func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return bytes.Clone(b.buf.Bytes())
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }
