package imagetest

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/rogpeppe/go-internal/txtar"
)

// Golden checks a txtar test case's results. got maps section names ("want/...") to
// what the test produced; the archive ar, read from file, holds the expected ones. A
// missing, differing or unexpected section fails tb. With update set, Golden rewrites
// file instead: its other sections as they were, then got in name order.
func Golden(tb testing.TB, file string, ar *txtar.Archive, got map[string]string, update bool) {
	tb.Helper()
	if update {
		var files []txtar.File
		for _, f := range ar.Files {
			if !strings.HasPrefix(f.Name, "want/") {
				files = append(files, f)
			}
		}
		names := make([]string, 0, len(got))
		for n := range got {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			files = append(files, txtar.File{Name: n, Data: []byte(got[n])})
		}
		ar.Files = files
		if err := os.WriteFile(file, txtar.Format(ar), 0o644); err != nil {
			tb.Fatal(err)
		}
		return
	}
	want := map[string]string{}
	for _, f := range ar.Files {
		if strings.HasPrefix(f.Name, "want/") {
			want[f.Name] = string(f.Data)
		}
	}
	for name, g := range got {
		w, ok := want[name]
		switch {
		case !ok:
			tb.Errorf("%s: no %s section; got:\n%s\n(go test -update records it)", file, name, g)
		case g != w:
			tb.Errorf("%s: %s differs at %s (go test -update rewrites it)\n--- got\n%s--- want\n%s", file, name, firstDiff(g, w), g, w)
		}
	}
	for name := range want {
		if _, ok := got[name]; !ok {
			tb.Errorf("%s: expected %s, but the test produced no such result", file, name)
		}
	}
}

// firstDiff names the first line where a and b differ.
func firstDiff(a, b string) string {
	al, bl := strings.Split(a, "\n"), strings.Split(b, "\n")
	for i := range min(len(al), len(bl)) {
		if al[i] != bl[i] {
			return "line " + strconv.Itoa(i+1)
		}
	}
	return "the end"
}
