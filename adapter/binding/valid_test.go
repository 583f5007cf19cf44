package binding

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

var validCases = []string{
	`{}`, `[]`, ` {"a" : [1, -0.5e+3, "x\"\\\/\b\f\n\r\t\u00e9", true, false, null, {}] } `,
	`"\ud83d\ude00"`, `0`, `-0`, `1E9`, `"\xff"`,
	``, ` `, `{`, `}`, `[1,]`, `{"a":1,}`, `{"a"}`, `{"a":}`, `{1:2}`, `01`, `1.`, `.5`, `-`, `1e`, `1e+`,
	`"\x01"`, `"\u12"`, `"\q"`, `tru`, `nul`, `[1 2]`, `{"a":1 "b":2}`, `1 2`, `[}`, `{]`, `"abc`,
	strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat("[", 65) + strings.Repeat("]", 65),
	strings.Repeat("[", 100) + strings.Repeat("]", 99),
}

func TestValidJSON(t *testing.T) {
	for _, c := range append(validCases, string(testutil.SampleRecord(t))) {
		if got, want := validJSON([]byte(c)), json.Valid([]byte(c)); got != want {
			t.Errorf("validJSON(%q) = %v, json.Valid says %v", c, got, want)
		}
	}
}

func FuzzValidJSON(f *testing.F) {
	for _, c := range validCases {
		f.Add([]byte(c))
	}
	f.Add(testutil.SampleRecord(f))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", b, got, want)
		}
	})
}

func BenchmarkValidJSON(b *testing.B) {
	data := testutil.Event1KiB(b).DataEncoded
	b.Run("validJSON", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if !validJSON(data) {
				b.Fatal("invalid")
			}
		}
	})
	b.Run("json.Valid", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			if !json.Valid(data) {
				b.Fatal("invalid")
			}
		}
	})
}
