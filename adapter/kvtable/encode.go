package kvtable

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// A value is stored as a type tag, a colon and its text, so that a script
// reads back the Lua type it wrote and `nats kv get` shows something a person
// can read:
//
//	s:<the string as is>   i:<integer>   f:<float, shortest exact form>   b:true | b:false
//
// Numbers are one type in Lua 5.1 (doubles); integral ones are written as
// integers. A value without a known tag (put by hand with `nats kv put`)
// reads as the string it is.
func encodeValue(v any) []byte {
	switch v := v.(type) {
	case string:
		return append([]byte("s:"), v...)
	case bool:
		if v {
			return []byte("b:true")
		}
		return []byte("b:false")
	case float64:
		if v == math.Trunc(v) && math.Abs(v) < 1<<63 && !(v == 0 && math.Signbit(v)) {
			return strconv.AppendInt([]byte("i:"), int64(v), 10)
		}
		return strconv.AppendFloat([]byte("f:"), v, 'g', -1, 64)
	}
	// CheckTableSet lets nothing else through.
	panic(fmt.Sprintf("kvtable: cannot encode a %T", v))
}

// decodeValue reads what encodeValue wrote; anything else is a string.
func decodeValue(b []byte) any {
	if len(b) < 2 || b[1] != ':' {
		return string(b)
	}
	text := string(b[2:])
	switch b[0] {
	case 's':
		return text
	case 'b':
		switch text {
		case "true":
			return true
		case "false":
			return false
		}
	case 'i':
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return float64(n)
		}
	case 'f':
		if f, err := strconv.ParseFloat(text, 64); err == nil {
			return f
		}
	}
	return string(b)
}

// Keys of the RGW table are any strings; a KV key is letters, digits and
// -/_=. (the dots between non-empty tokens). A key that is a valid KV key
// without '=' is stored as it is written, so that `nats kv get <bucket>
// count/nb-main` finds what a script wrote as "count/nb-main". Any other
// byte, '=', and a dot that would start, end or double a token, is written
// as '=' and two hex digits: "a b" is "a=20b". The empty key is "=" alone,
// which no escaping produces. Keys written escaped by earlier versions
// ("uploads=2Ephotos") read back the same.
func encodeKey(k string) string {
	if k == "" {
		return "="
	}
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '.' && (i == 0 || i == len(k)-1 || k[i-1] == '.'):
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_', c == '/', c == '.':
			b.WriteByte(c)
			continue
		}
		const hex = "0123456789ABCDEF"
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// decodeKey reverses encodeKey. A key that encodeKey cannot have written
// (put by hand: '=' not followed by two hex digits) is taken as it is.
func decodeKey(s string) string {
	if s == "=" {
		return ""
	}
	if !strings.Contains(s, "=") {
		return s
	}
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b = append(b, s[i])
			continue
		}
		if i+2 >= len(s) {
			return s
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return s
		}
		b = append(b, byte(hi<<4|lo))
		i += 2
	}
	return string(b)
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
