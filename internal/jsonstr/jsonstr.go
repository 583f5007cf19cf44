// Package jsonstr owns the JSON scanning helpers that the project's
// hand-written JSON readers share (adapter/rgw's scanner and record spans,
// adapter/binding's validator, adapter/lua's codec): the end of a run of
// string bytes that need no attention (Stop, the one loop every JSON
// decoder and writer of the project spends most of its time in), white
// space (Space), the end of a string literal, lenient (Skip) or checked
// (Valid), and the end of any value, lenient (SkipValue). It must not import
// anything of the project, so that every package can use it (RGW decoding
// included).
package jsonstr

import "math/bits"

// Stop returns the index of the first byte at or after i that ends a plain
// run of a JSON string: a quote, a backslash, a control character or a
// byte outside ASCII; len(s) if there is none. It reads eight bytes at a
// time.
func Stop[T ~string | ~[]byte](s T, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(s); i += 8 {
		x := word(s[i : i+8])
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

// word reads eight bytes, little-endian: one load. (Indexing s itself at
// i to i+7 costs eight bounds checks in the generic code: the compiler
// cannot prove them, it can for a slice of eight.)
func word[T ~string | ~[]byte](w T) uint64 {
	return uint64(w[0]) | uint64(w[1])<<8 | uint64(w[2])<<16 | uint64(w[3])<<24 |
		uint64(w[4])<<32 | uint64(w[5])<<40 | uint64(w[6])<<48 | uint64(w[7])<<56
}

// Space returns the index of the first byte at or after i that is not JSON
// white space; len(s) if there is none.
func Space[T ~string | ~[]byte](s T, i int) int {
	for i < len(s) {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// Quote returns the index of the first quote or backslash at or after i;
// i when i >= len(s), len(s) if there is none. It is Stop for text known
// to be valid JSON, where only those two bytes matter: eight bytes at a
// time, with half the tests.
func Quote[T ~string | ~[]byte](s T, i int) int {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for ; i+8 <= len(s); i += 8 {
		x := word(s[i : i+8])
		q, b := x^(ones*'"'), x^(ones*'\\')
		if m := ((q-ones)&^q | (b-ones)&^b) & highs; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for ; i < len(s); i++ {
		if c := s[i]; c == '"' || c == '\\' {
			return i
		}
	}
	return i
}

// Skip returns the index after the string literal whose quote is at s[i],
// without checking it; len(s) when it does not end.
func Skip[T ~string | ~[]byte](s T, i int) int {
	for i++; ; i += 2 { // past a backslash and the byte it escapes
		if i = Quote(s, i); i >= len(s) {
			return len(s)
		}
		if s[i] == '"' {
			return i + 1
		}
	}
}

// Valid returns the index after the string literal whose quote is at s[i]
// when it is valid JSON (no control character, only JSON's escapes; the
// bytes outside ASCII are not checked here), or -1.
func Valid[T ~string | ~[]byte](s T, i int) int {
	for i++; i < len(s); i++ {
		if i = Stop(s, i); i == len(s) {
			break
		}
		switch c := s[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(s) {
				return -1
			}
			switch s[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(s) {
					return -1
				}
				for k := i + 1; k < i+5; k++ {
					if !isHex(s[k]) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// SkipValue returns the index after the value that starts at b[i], without
// checking it: a string, an object or array (to its matching bracket,
// strings skipped), or a literal or number (to the next delimiter); len(b)
// when it does not end.
func SkipValue[T ~string | ~[]byte](b T, i int) int {
	switch b[i] {
	case '"':
		return Skip(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = Skip(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return len(b)
	}
	for i < len(b) {
		switch b[i] {
		case ',', '}', ']', ' ', '\t', '\n', '\r':
			return i
		}
		i++
	}
	return i
}
