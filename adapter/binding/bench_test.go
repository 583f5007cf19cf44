package binding

import (
	"bytes"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
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

// BenchmarkStructured compares the structured-mode writers on the same
// 1 KiB event, payload only: the hand-written one, sdk-go's WriteJson, and
// (with GOEXPERIMENT=jsonv2) encoding/json/v2 in jsonv2_bench_test.go.
func BenchmarkStructured(b *testing.B) {
	ev := testutil.Event1KiB(b)
	c := ev.Context.(*event.EventContextV1)
	b.Run("hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := appendStructuredV1(ev, c); !ok {
				b.Fatal("not written")
			}
		}
	})
	b.Run("sdk-go", func(b *testing.B) {
		b.ReportAllocs()
		var buf bytes.Buffer
		for b.Loop() {
			buf.Reset()
			if err := event.WriteJson(ev, &buf); err != nil {
				b.Fatal(err)
			}
			_ = bytes.Clone(buf.Bytes())
		}
	})
}
