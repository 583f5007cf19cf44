package jsonstr

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestStop: the eight-bytes-at-a-time search finds exactly the byte a
// byte-by-byte search finds, for every byte value at every position of a
// word and from every start, in strings and in byte slices.
func TestStop(t *testing.T) {
	stops := func(c byte) bool { return c == '"' || c == '\\' || c < 0x20 || c >= 0x80 }
	for c := range 256 {
		for pos := range 20 {
			s := strings.Repeat("a", pos) + string([]byte{byte(c)}) + strings.Repeat("b", 19-pos)
			for start := 0; start <= len(s); start++ {
				want := start
				for want < len(s) && !stops(s[want]) {
					want++
				}
				if got := Stop(s, start); got != want {
					t.Fatalf("string: byte %#x at %d, from %d: %d, want %d", c, pos, start, got, want)
				}
				if got := Stop([]byte(s), start); got != want {
					t.Fatalf("bytes: byte %#x at %d, from %d: %d, want %d", c, pos, start, got, want)
				}
			}
		}
	}
}

// TestQuote: the same for the search of quotes and backslashes alone.
func TestQuote(t *testing.T) {
	for c := range 256 {
		for pos := range 20 {
			s := strings.Repeat("a", pos) + string([]byte{byte(c)}) + strings.Repeat("b", 19-pos)
			for start := 0; start <= len(s)+1; start++ {
				want := start
				for want < len(s) && s[want] != '"' && s[want] != '\\' {
					want++
				}
				if got := Quote(s, start); got != want {
					t.Fatalf("string: byte %#x at %d, from %d: %d, want %d", c, pos, start, got, want)
				}
				if got := Quote([]byte(s), start); got != want {
					t.Fatalf("bytes: byte %#x at %d, from %d: %d, want %d", c, pos, start, got, want)
				}
			}
		}
	}
}

func BenchmarkStop(b *testing.B) {
	s := strings.Repeat("arn:aws:s3:::bucket-name/some/key.txt", 30) + `"`
	for b.Loop() {
		if Stop(s, 0) != len(s)-1 {
			b.Fatal("wrong stop")
		}
	}
}

// TestScan: white space, lenient and checked string ends and value ends,
// in strings and in byte slices alike.
func TestScan(t *testing.T) {
	for _, c := range []struct {
		in                     string
		space, skip, valid, sv int
	}{
		{`"abc" ,`, 0, 5, 5, 5},
		{` 	` + "\r\n" + `"a"`, 4, 7, 7, 7},
		{`"a\"b"x`, 0, 6, 6, 6},
		{`"a\u00e9"`, 0, 9, 9, 9},
		{`"a\u00g9"`, 0, 9, -1, 9},
		{`"a\x"`, 0, 5, -1, 5},
		{"\"a\x01\"", 0, 4, -1, 4},
		{`"unterminated`, 0, 13, -1, 13},
		{`"ends in \`, 0, 10, -1, 10},
		{`"a\\\"b\\" x`, 0, 10, 10, 10},
		{`"\"`, 0, 3, -1, 3},
		{`"long enough for a word at a time \" and \\ too"x`, 0, 48, 48, 48},
		{`{"a":[1,"]}"],"b":{}} tail`, 0, 1, -1, 21},
		{`[1,[2,[3]]],`, 0, 1, -1, 11},
		{`true,`, 0, 1, -1, 4},
		{`-1.5e3}`, 0, 1, -1, 6},
	} {
		for _, b := range []bool{false, true} {
			var space, skip, valid, sv int
			if b {
				in := []byte(c.in)
				space, skip, valid, sv = Space(in, 0), Skip(in, Space(in, 0)), Valid(in, Space(in, 0)), SkipValue(in, Space(in, 0))
			} else {
				in := c.in
				space, skip, valid, sv = Space(in, 0), Skip(in, Space(in, 0)), Valid(in, Space(in, 0)), SkipValue(in, Space(in, 0))
			}
			// Skip and Valid read a string literal: only their string cases count.
			if c.in[space] != '"' {
				skip, valid = c.skip, c.valid
			}
			if space != c.space || skip != c.skip || valid != c.valid || sv != c.sv {
				t.Errorf("%q (bytes %v): Space %d Skip %d Valid %d SkipValue %d, want %d %d %d %d",
					c.in, b, space, skip, valid, sv, c.space, c.skip, c.valid, c.sv)
			}
		}
	}
}

// FuzzValid: a string literal of ASCII is Valid exactly when encoding/json
// says it is valid JSON.
func FuzzValid(f *testing.F) {
	for _, s := range []string{`"a"`, `"a\u00e9"`, `"\x"`, `"\"`, "\"\x01\"", `"\/\b\f\n\r\t"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if len(s) == 0 || s[0] != '"' {
			return
		}
		for i := range len(s) {
			if s[i] >= 0x80 {
				return
			}
		}
		// One literal, with nothing after it (encoding/json allows space).
		want := json.Valid([]byte(s)) && Space(s, len(s)-1) == len(s)-1
		if got := Valid(s, 0) == len(s); got != want {
			t.Errorf("%q: Valid %v, encoding/json %v", s, got, want)
		}
	})
}
