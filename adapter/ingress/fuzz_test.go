package ingress_test

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// FuzzDecode feeds the ingress decoder every header mode with arbitrary
// bodies: it must never panic, and whatever it accepts must be valid
// CloudEvents.
func FuzzDecode(f *testing.F) {
	for name, body := range events.All() {
		_ = name
		for mode := range 5 {
			f.Add(uint8(mode), body)
		}
	}
	f.Add(uint8(2), []byte(`{"specversion":"1.0","id":"1","type":"t","source":"/s","data":{"Records":[]}}`))
	f.Add(uint8(3), []byte(`[{"specversion":"1.0","id":"1","type":"t","source":"/s","data_base64":"e30="}]`))
	headers := []ingress.Header{
		{"Content-Type": {"application/json"}},
		{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Type": {"t"}, "Ce-Source": {"/s"}},
		{"Content-Type": {"application/cloudevents+json"}},
		{"Content-Type": {"application/cloudevents-batch+json"}},
		// RGW's own binary mode, a raw key in Ce-Subject that does not decode.
		{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Type": {"t"}, "Ce-Source": {"ceph:s3.default.b"},
			"Ce-Subject": {"100%.txt"}, "Content-Type": {"application/json"}},
	}
	f.Fuzz(func(t *testing.T, mode uint8, body []byte) {
		h := headers[int(mode)%len(headers)]
		req, err := ingress.Decode(h, body, cloudevent.Options{Envelope: mode&4 != 0})
		if err != nil {
			if !errors.Is(err, ingress.ErrInvalid) && !errors.Is(err, ingress.ErrUnsupported) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		evs := req.Events
		if len(evs) == 0 {
			t.Fatal("accepted a request with no events")
		}
		for _, ev := range evs {
			if err := ev.Validate(); err != nil {
				t.Fatalf("accepted an invalid event: %v", err)
			}
			// The pipeline encodes what Decode returns without checking it
			// again (binding.EncodeChecked).
			if err := binding.Check(&ev); err != nil {
				t.Fatalf("accepted an event that binding.Check refuses: %v", err)
			}
			if !utf8.ValidString(ev.Subject()) || !utf8.ValidString(ev.ID()) {
				t.Fatalf("accepted attributes that are not UTF-8: %q %q", ev.ID(), ev.Subject())
			}
		}
	})
}
