package kvtable

import (
	"math"
	"regexp"
	"testing"
)

func TestValueEncoding(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{"text", "s:text"},
		{"", "s:"},
		{"s:looks tagged", "s:s:looks tagged"},
		{float64(42), "i:42"},
		{float64(-7), "i:-7"},
		{float64(1 << 60), "i:1152921504606846976"},
		{1.5, "f:1.5"},
		{0.1, "f:0.1"},
		{math.Copysign(0, -1), "f:-0"},
		{math.Inf(1), "f:+Inf"},
		{1e300, "f:1e+300"},
		{true, "b:true"},
		{false, "b:false"},
	} {
		got := encodeValue(tc.v)
		if string(got) != tc.want {
			t.Errorf("encode %#v = %q, want %q", tc.v, got, tc.want)
		}
		back := decodeValue(got)
		if f, ok := tc.v.(float64); ok {
			if g, ok := back.(float64); !ok || math.Float64bits(g) != math.Float64bits(f) {
				t.Errorf("decode %q = %#v, want %#v", got, back, f)
			}
			continue
		}
		if back != tc.v {
			t.Errorf("decode %q = %#v, want %#v", got, back, tc.v)
		}
	}
	// Values put by hand read as the strings they are.
	for _, raw := range []string{"plain", "", "x", "i:not a number", "b:maybe", "q:unknown tag"} {
		if got := decodeValue([]byte(raw)); got != raw {
			t.Errorf("decode %q = %#v", raw, got)
		}
	}
}

// kvKey is what NATS takes as a KV key: letters, digits and -/_=. with no
// empty token.
var kvKey = regexp.MustCompile(`^[-/_=a-zA-Z0-9]+(\.[-/_=a-zA-Z0-9]+)*$`)

// TestKeyEncoding: a key NATS allows as it is is stored as written (issue
// 18: "count/nb-main" was "count=2Fnb-main", and `nats kv get rgwtable
// count/nb-main` said "key not found"); the rest is escaped as =XX.
func TestKeyEncoding(t *testing.T) {
	for k, want := range map[string]string{
		"uploads":            "uploads",
		"a-b_c":              "a-b_c",
		"a/b":                "a/b",
		"count/nb-main":      "count/nb-main",
		"uploads.photos":     "uploads.photos",
		"":                   "=",
		"=":                  "=3D",
		"a=b":                "a=3Db",
		".a":                 "=2Ea",
		"a.":                 "a=2E",
		"a..b":               "a.=2Eb",
		".":                  "=2E",
		"a b*>":              "a=20b=2A=3E",
		"ü":                  "=C3=BC",
		"first:photos/k.jpg": "first=3Aphotos/k.jpg",
	} {
		if got := encodeKey(k); got != want {
			t.Errorf("encodeKey(%q) = %q, want %q", k, got, want)
		}
		if back := decodeKey(want); back != k {
			t.Errorf("decodeKey(%q) = %q, want %q", want, back, k)
		}
	}
	// Keys put by hand ('=' not followed by hex) stay as they are; keys
	// escaped by earlier versions read back the same.
	for _, raw := range []string{"a.b", "a/b", "x=", "x=4", "x=zz"} {
		if got := decodeKey(raw); got != raw {
			t.Errorf("decodeKey(%q) = %q", raw, got)
		}
	}
	for old, k := range map[string]string{"uploads=2Ephotos": "uploads.photos", "count=2Fnb-main": "count/nb-main"} {
		if got := decodeKey(old); got != k {
			t.Errorf("decodeKey(%q) = %q, want %q", old, got, k)
		}
	}
}

func FuzzKey(f *testing.F) {
	for _, s := range []string{"", "uploads.photos", "=", "a b", "ü", "=3D"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, k string) {
		enc := encodeKey(k)
		if !kvKey.MatchString(enc) {
			t.Fatalf("encodeKey(%q) = %q: not a valid KV key", k, enc)
		}
		if back := decodeKey(enc); back != k {
			t.Fatalf("round trip of %q: %q -> %q", k, enc, back)
		}
		_ = decodeKey(k) // never panics on what a person may have put
	})
}

func FuzzDecodeValue(f *testing.F) {
	for _, s := range []string{"s:x", "i:42", "f:1.5", "b:true", "", "i:", "f:NaN", "i:99999999999999999999"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		v := decodeValue(b)
		switch v := v.(type) {
		case string:
			tagged := len(b) >= 2 && b[0] == 's' && b[1] == ':'
			if tagged && v != string(b[2:]) || !tagged && v != string(b) {
				t.Fatalf("decode %q = %q", b, v)
			}
		case float64:
			// A number re-encodes to a number that decodes the same.
			again := decodeValue(encodeValue(v))
			if g := again.(float64); math.Float64bits(g) != math.Float64bits(v) && !(math.IsNaN(g) && math.IsNaN(v)) {
				t.Fatalf("%q: %v re-encoded reads %v", b, v, g)
			}
		case bool:
			if string(encodeValue(v)) != string(b) {
				t.Fatalf("%q decoded to %v", b, v)
			}
		default:
			t.Fatalf("decode %q = %#v", b, v)
		}
	})
}
