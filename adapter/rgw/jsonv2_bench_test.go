//go:build goexperiment.jsonv2

package rgw

import (
	jsonv2 "encoding/json/v2"
	"testing"
)

// BenchmarkDecodeJSONv2 is encoding/json/v2 (GOEXPERIMENT=jsonv2) reading
// the same body into the same wire types, the alternative to scanEnvelope
// that issue 10 asked to measure:
// GOEXPERIMENT=jsonv2 go test -run '^$' -bench Decode -benchmem ./adapter/rgw/
func BenchmarkDecodeJSONv2(b *testing.B) {
	body := benchBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		var env struct {
			Records []recordWire `json:"Records"`
		}
		if err := jsonv2.Unmarshal(body, &env); err != nil || len(env.Records) != 1 {
			b.Fatal(err)
		}
		_ = env.Records[0].record(body)
	}
}
