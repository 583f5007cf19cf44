// Package percent decodes %XX escapes, the one form both the subject
// tokens (adapter/subject) and the CloudEvents binary-mode headers
// (adapter/binding) use. It imports nothing of this module.
package percent

import (
	"errors"
	"fmt"
	"strings"
)

// ErrTruncated is wrapped when s ends inside an escape.
var ErrTruncated = errors.New("truncated percent-encoding")

// Decode replaces every %XX (upper- or lower-case hex) by its byte.
func Decode(s string) (string, error) {
	if strings.IndexByte(s, '%') < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '%' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", ErrTruncated
		}
		hi, ok1 := unhex(s[i+1])
		lo, ok2 := unhex(s[i+2])
		if !ok1 || !ok2 {
			return "", fmt.Errorf("bad percent-encoding %q", s[i:i+3])
		}
		b.WriteByte(hi<<4 | lo)
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}
