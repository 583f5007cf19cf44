package binding

import (
	"encoding/json"

	"github.com/rgw-nats/rgw-nats/internal/jsonstr"
)

// validJSON reports whether b is exactly one JSON value, as json.Valid does
// (the same grammar; bytes that are not UTF-8 are accepted in strings, as
// there). It is a single loop over the bytes without a state function per
// byte, several times cheaper than json.Valid on an event's data; beyond
// maxValidDepth levels of nesting it asks json.Valid, whose limit is the
// one that counts.
func validJSON(b []byte) bool {
	var stack [maxValidDepth]byte // '{' or '[' of each open container
	depth := 0
	i := jsonstr.Space(b, 0)
	for {
		// A value starts at b[i].
		if i >= len(b) {
			return false
		}
		switch c := b[i]; {
		case c == '{' || c == '[':
			if depth == len(stack) {
				return json.Valid(b)
			}
			stack[depth] = c
			depth++
			i = jsonstr.Space(b, i+1)
			if i < len(b) && b[i] == c+2 { // '}' is '{'+2, ']' is '['+2
				depth--
				i++
				break
			}
			if c == '{' {
				if i = member(b, i); i < 0 {
					return false
				}
			}
			continue
		case c == '"':
			if i = jsonstr.Valid(b, i); i < 0 {
				return false
			}
		case c == 't':
			if i = word(b, i, "true"); i < 0 {
				return false
			}
		case c == 'f':
			if i = word(b, i, "false"); i < 0 {
				return false
			}
		case c == 'n':
			if i = word(b, i, "null"); i < 0 {
				return false
			}
		case c == '-' || (c >= '0' && c <= '9'):
			if i = validNumber(b, i); i < 0 {
				return false
			}
		default:
			return false
		}
		// After a value: close containers, or go on to the next element.
		for {
			i = jsonstr.Space(b, i)
			if depth == 0 {
				return i == len(b)
			}
			if i >= len(b) {
				return false
			}
			open := stack[depth-1]
			if b[i] == open+2 {
				depth--
				i++
				continue
			}
			if b[i] != ',' {
				return false
			}
			i = jsonstr.Space(b, i+1)
			if open == '{' {
				if i = member(b, i); i < 0 {
					return false
				}
			}
			break
		}
	}
}

const maxValidDepth = 64

// member reads `"name" :` and the space after it; -1 when it is not there.
func member(b []byte, i int) int {
	if i >= len(b) || b[i] != '"' {
		return -1
	}
	if i = jsonstr.Valid(b, i); i < 0 {
		return -1
	}
	i = jsonstr.Space(b, i)
	if i >= len(b) || b[i] != ':' {
		return -1
	}
	return jsonstr.Space(b, i+1)
}

func word(b []byte, i int, w string) int {
	if len(b)-i < len(w) || string(b[i:i+len(w)]) != w {
		return -1
	}
	return i + len(w)
}

// validNumber checks -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? at b[i].
func validNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && b[i] >= '1' && b[i] <= '9':
		i = digits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		j := digits(b, i+1)
		if j == i+1 {
			return -1
		}
		i = j
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		j := digits(b, i)
		if j == i {
			return -1
		}
		i = j
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && b[i] >= '0' && b[i] <= '9' {
		i++
	}
	return i
}
