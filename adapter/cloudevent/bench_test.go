package cloudevent

import (
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/rgw"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// benchBody is a real 1 KiB notification (one record, Reef).
func benchBody(*testing.B) []byte { return events.Read("reef-put-capture.json") }

func BenchmarkFromRecord(b *testing.B) {
	recs, err := rgw.Decode(benchBody(b))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := FromRecord(&recs[0], Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeAndMap(b *testing.B) {
	body := benchBody(b)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		recs, err := rgw.Decode(body)
		if err != nil {
			b.Fatal(err)
		}
		for i := range recs {
			if _, err := FromRecord(&recs[i], Options{}); err != nil {
				b.Fatal(err)
			}
		}
	}
}
