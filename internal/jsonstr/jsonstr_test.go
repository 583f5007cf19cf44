package jsonstr

import (
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

func BenchmarkStop(b *testing.B) {
	s := strings.Repeat("arn:aws:s3:::bucket-name/some/key.txt", 30) + `"`
	for b.Loop() {
		if Stop(s, 0) != len(s)-1 {
			b.Fatal("wrong stop")
		}
	}
}
