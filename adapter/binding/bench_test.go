package binding

import (
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

func BenchmarkEncode(b *testing.B) {
	ev := testutil.Event1KiB(b)
	for _, enc := range []Encoding{Structured, Binary} {
		b.Run(enc.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Encode(ev, "rgw.jayanth.ObjectCreated.Put", enc, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	ev := testutil.Event1KiB(b)
	for _, enc := range []Encoding{Structured, Binary} {
		m, err := Encode(ev, "rgw.jayanth.ObjectCreated.Put", enc, nil)
		if err != nil {
			b.Fatal(err)
		}
		msg := &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
		b.Run(enc.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Decode(msg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
