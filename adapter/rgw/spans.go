package rgw

import (
	"bytes"
	"encoding/json"
)

// recordSpans appends to dst the elements of the top-level "Records" array
// of body, byte for byte, as encoding/json finds that member (its name
// compared case-insensitively after unescaping). body must be JSON that
// encoding/json has accepted: this scan does not validate, it only skips
// strings and counts brackets. ok is false when body does not have exactly
// one such member.
func recordSpans(body []byte, dst [][]byte) (spans [][]byte, ok bool) {
	i := skipSpace(body, 0)
	if i >= len(body) || body[i] != '{' {
		return dst, false
	}
	found := 0
	for i++; i < len(body); {
		i = skipSpace(body, i)
		if i >= len(body) || body[i] == '}' {
			break
		}
		if body[i] == ',' {
			i++
			continue
		}
		keyStart := i
		i = skipString(body, i)
		key := body[keyStart:i]
		i = skipSpace(body, i)
		if i >= len(body) || body[i] != ':' {
			return dst, false
		}
		i = skipSpace(body, i+1)
		if i >= len(body) {
			return dst, false
		}
		if !isRecordsKey(key) {
			i = skipValue(body, i)
			continue
		}
		found++
		if body[i] != '[' {
			i = skipValue(body, i) // null
			continue
		}
		for i++; i < len(body); {
			i = skipSpace(body, i)
			if i >= len(body) {
				return dst, false
			}
			if body[i] == ']' {
				i++
				break
			}
			if body[i] == ',' {
				i++
				continue
			}
			start := i
			i = skipValue(body, i)
			dst = append(dst, body[start:i])
		}
	}
	return dst, found == 1
}

var recordsName = []byte("Records")

// isRecordsKey reports whether a member name (a JSON string literal) selects
// the Records field the way encoding/json matches names.
func isRecordsKey(lit []byte) bool {
	if len(lit) < 2 {
		return false
	}
	name := lit[1 : len(lit)-1]
	if bytes.IndexByte(name, '\\') >= 0 {
		var s string
		if json.Unmarshal(lit, &s) != nil {
			return false
		}
		name = []byte(s)
	}
	return bytes.EqualFold(name, recordsName)
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// skipString returns the index after the string literal starting at b[i].
func skipString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++
		case '"':
			return i + 1
		}
	}
	return len(b)
}

// skipValue returns the index after the value starting at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = skipString(b, i)
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
