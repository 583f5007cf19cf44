// Package jsonstr finds, in JSON string literals, the end of a run of bytes
// that need no attention: the one loop every JSON decoder and writer of the
// project spends most of its time in. It must not import anything of the
// project, so that every package can use it (RGW decoding included).
package jsonstr

import "math/bits"

// Stop returns the index of the first byte at or after i that ends a plain
// run of a JSON string: a quote, a backslash, a control character or a
// byte outside ASCII; len(s) if there is none. It reads eight bytes at a
// time.
func Stop[T ~string | ~[]byte](s T, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(s); i += 8 {
		x := uint64(s[i]) | uint64(s[i+1])<<8 | uint64(s[i+2])<<16 | uint64(s[i+3])<<24 |
			uint64(s[i+4])<<32 | uint64(s[i+5])<<40 | uint64(s[i+6])<<48 | uint64(s[i+7])<<56
		// A byte's high bit is set in m where that byte is '"' or '\\'
		// (x^c has a zero byte), below 0x20, or has its own high bit. A
		// borrow can only mark bytes after a marked one, so the lowest mark
		// is exact.
		q, b := x^(ones*'"'), x^(ones*'\\')
		if m := ((q-ones)&^q | (b-ones)&^b | (x - ones*0x20) | x) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
			return i
		}
	}
	return i
}
