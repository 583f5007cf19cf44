package kvtable

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/rgw-nats/rgw-nats/adapter/subject"
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

// Keys of the RGW table are any strings; KV keys are subjects made of
// letters, digits and -/_=. . A key is stored escaped as a subject token
// (adapter/subject), with '=' for its '%', so that it stays one readable
// token: "uploads.photos" is "uploads=2Ephotos". The empty key is "=" alone,
// which no escaping produces.
func encodeKey(k string) string {
	if k == "" {
		return "="
	}
	return strings.ReplaceAll(subject.Token(k), "%", "=")
}

// decodeKey reverses encodeKey. A key that encodeKey cannot have written
// (put by hand) is taken as it is.
func decodeKey(s string) string {
	if s == "=" {
		return ""
	}
	if !strings.Contains(s, "=") {
		return s
	}
	k, err := subject.Unescape(strings.ReplaceAll(s, "=", "%"))
	if err != nil {
		return s
	}
	return k
}
