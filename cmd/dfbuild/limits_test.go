package main

import "testing"

func TestByteSize(t *testing.T) {
	for in, want := range map[string]int64{
		"1": 1, "4GiB": 4 << 30, "500MB": 500e6, "2k": 2048, "10 MiB": 10 << 20, "7b": 7,
	} {
		var b byteSize
		if err := b.Set(in); err != nil || int64(b) != want {
			t.Errorf("Set(%q) = %d, %v; want %d", in, int64(b), err, want)
		}
	}
	for _, in := range []string{"", "0", "-1", "1.5GiB", "GiB", "99999999999TiB"} {
		var b byteSize
		if err := b.Set(in); err == nil {
			t.Errorf("Set(%q) = %d, want an error", in, int64(b))
		}
	}
	b := byteSize(4 << 30)
	if b.String() != "4GiB" {
		t.Errorf("String() = %q", b.String())
	}
}
