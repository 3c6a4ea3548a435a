package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/rogpeppe/go-internal/testscript"
)

// scriptJSON is the testscript command
//
//	json FILE CHECK...
//
// FILE is a file, or stdout for the last command's output. Each CHECK is one of
//
//	PATH=VALUE   the value at PATH is VALUE: a string as it is, anything else as
//	             compact JSON (3, true, null, ["a"])
//	PATH==PATH2  the two values are equal
//	PATH!        there is nothing at PATH
//	len(PATH)=N  the array or object at PATH has N elements
//
// PATH is dot-separated object keys and array indexes, as images.0.layers.1.diff_id.
func scriptJSON(ts *testscript.TestScript, neg bool, args []string) {
	if neg {
		ts.Fatalf("json does not support !; write the check that should hold")
	}
	if len(args) < 2 {
		ts.Fatalf("usage: json FILE CHECK...")
	}
	var doc any
	if err := json.Unmarshal([]byte(ts.ReadFile(args[0])), &doc); err != nil {
		ts.Fatalf("%s is not JSON: %v", args[0], err)
	}
	for _, check := range args[1:] {
		switch {
		case strings.Contains(check, "=="):
			a, b, _ := strings.Cut(check, "==")
			va, vb := jsonAt(ts, doc, a, true), jsonAt(ts, doc, b, true)
			if compactJSON(va) != compactJSON(vb) {
				ts.Fatalf("%s: %s is %s, %s is %s", check, a, compactJSON(va), b, compactJSON(vb))
			}
		case strings.HasSuffix(check, "!"):
			p := strings.TrimSuffix(check, "!")
			if v := jsonAt(ts, doc, p, false); v != nil {
				ts.Fatalf("%s: found %s", check, compactJSON(v))
			}
		case strings.Contains(check, "="):
			p, want, _ := strings.Cut(check, "=")
			var got string
			if inner, ok := strings.CutPrefix(p, "len("); ok && strings.HasSuffix(inner, ")") {
				switch v := jsonAt(ts, doc, strings.TrimSuffix(inner, ")"), true).(type) {
				case []any:
					got = strconv.Itoa(len(v))
				case map[string]any:
					got = strconv.Itoa(len(v))
				default:
					ts.Fatalf("%s: %s is neither an array nor an object", check, compactJSON(v))
				}
			} else if v, ok := jsonAt(ts, doc, p, true).(string); ok {
				got = v
			} else {
				got = compactJSON(jsonAt(ts, doc, p, true))
			}
			if got != want {
				ts.Fatalf("%s: got %s", check, got)
			}
		default:
			ts.Fatalf("%s: expected PATH=VALUE, PATH==PATH or PATH!", check)
		}
	}
}

func jsonAt(ts *testscript.TestScript, doc any, p string, mustExist bool) any {
	v := doc
	for _, k := range strings.Split(p, ".") {
		var next any
		found := false
		switch x := v.(type) {
		case map[string]any:
			next, found = x[k]
		case []any:
			if i, err := strconv.Atoi(k); err == nil && i >= 0 && i < len(x) {
				next, found = x[i], true
			}
		}
		if !found {
			if mustExist {
				ts.Fatalf("%s: no %q in %s", p, k, abbreviate(compactJSON(v)))
			}
			return nil
		}
		v = next
	}
	return v
}

func compactJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func abbreviate(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}
