package rgw

import (
	"testing"

	"github.com/rgw-nats/rgw-nats/samples/events"
)

// benchBody is a real 1 KiB notification (one record, Reef).
func benchBody(*testing.B) []byte { return events.Read("reef-put-capture.json") }

func BenchmarkDecode(b *testing.B) {
	body := benchBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		recs, err := Decode(body)
		if err != nil || len(recs) != 1 {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAny(b *testing.B) {
	body := benchBody(b)
	raw := recordBytes(b, body)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		recs, err := DecodeAny(raw)
		if err != nil || len(recs) != 1 {
			b.Fatal(err)
		}
	}
}
