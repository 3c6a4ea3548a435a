package interp

import (
	"net/http"
	"net/url"
	"testing"
)

// A download may follow redirects, but not from https down to plain http.
func TestFetchRedirects(t *testing.T) {
	req := func(u string) *http.Request {
		p, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		return &http.Request{URL: p}
	}
	cases := []struct {
		from, to string
		ok       bool
	}{
		{"https://a.invalid/x", "https://b.invalid/y", true},
		{"http://a.invalid/x", "https://b.invalid/y", true},
		{"http://a.invalid/x", "http://b.invalid/y", true},
		{"https://a.invalid/x", "http://b.invalid/y", false},
	}
	for _, c := range cases {
		err := fetchClient.CheckRedirect(req(c.to), []*http.Request{req(c.from)})
		if (err == nil) != c.ok {
			t.Errorf("%s -> %s: %v, want allowed=%v", c.from, c.to, err, c.ok)
		}
	}
	via := make([]*http.Request, 10)
	for i := range via {
		via[i] = req("http://a.invalid/")
	}
	if err := fetchClient.CheckRedirect(req("http://a.invalid/"), via); err == nil {
		t.Error("an 11th redirect was followed")
	}
}
