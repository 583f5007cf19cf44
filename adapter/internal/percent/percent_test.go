package percent

import (
	"errors"
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	for in, want := range map[string]string{
		"": "", "plain": "plain", "a%20b": "a b", "%2e%2E": "..", "caf%C3%A9": "café", "100%25": "100%",
	} {
		if got, err := Decode(in); err != nil || got != want {
			t.Errorf("Decode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"%", "%4", "a%zz", "%g0"} {
		if _, err := Decode(in); err == nil {
			t.Errorf("Decode(%q) succeeded", in)
		}
	}
	if _, err := Decode("ab%4"); !errors.Is(err, ErrTruncated) {
		t.Errorf("truncated: %v", err)
	}
}

// FuzzDecode: never panics; a decoded string is never longer than its input
// and has one byte per escape.
func FuzzDecode(f *testing.F) {
	for _, s := range []string{"a%20b", "%", "%%41", "caf%C3%A9"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := Decode(s)
		if err != nil {
			return
		}
		if len(out) != len(s)-2*strings.Count(s, "%") {
			t.Fatalf("Decode(%q) = %q", s, out)
		}
	})
}
