package rgw

import (
	"bytes"
	"encoding/json"

	"github.com/rgw-nats/rgw-nats/internal/jsonstr"
)

// recordSpans appends to dst the elements of the top-level "Records" array
// of body, byte for byte, as encoding/json finds that member (its name
// compared case-insensitively after unescaping). body must be JSON that
// encoding/json has accepted: this scan does not validate, it only skips
// strings and counts brackets. ok is false when body does not have exactly
// one such member.
func recordSpans(body []byte, dst [][]byte) (spans [][]byte, ok bool) {
	i := jsonstr.Space(body, 0)
	if i >= len(body) || body[i] != '{' {
		return dst, false
	}
	found := 0
	for i++; i < len(body); {
		i = jsonstr.Space(body, i)
		if i >= len(body) || body[i] == '}' {
			break
		}
		if body[i] == ',' {
			i++
			continue
		}
		keyStart := i
		i = jsonstr.Skip(body, i)
		key := body[keyStart:i]
		i = jsonstr.Space(body, i)
		if i >= len(body) || body[i] != ':' {
			return dst, false
		}
		i = jsonstr.Space(body, i+1)
		if i >= len(body) {
			return dst, false
		}
		if !isRecordsKey(key) {
			i = jsonstr.SkipValue(body, i)
			continue
		}
		found++
		if body[i] != '[' {
			i = jsonstr.SkipValue(body, i) // null
			continue
		}
		for i++; i < len(body); {
			i = jsonstr.Space(body, i)
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
			i = jsonstr.SkipValue(body, i)
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
