package cloudevent

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

// benchBody is a real 1 KiB notification (one record, Reef).
func benchBody(b *testing.B) []byte {
	body, err := os.ReadFile(filepath.Join(fixtureDir, "reef-put-capture.json"))
	if err != nil {
		b.Fatal(err)
	}
	return body
}

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
