package function_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/function"
)

// FuzzDecode feeds the ingress decoder every header mode with arbitrary
// bodies: it must never panic, and whatever it accepts must be valid
// CloudEvents.
func FuzzDecode(f *testing.F) {
	for _, name := range fixtures(f) {
		body := fixture(f, name)
		for mode := range 4 {
			f.Add(uint8(mode), body)
		}
	}
	f.Add(uint8(2), []byte(`{"specversion":"1.0","id":"1","type":"t","source":"/s","data":{"Records":[]}}`))
	f.Add(uint8(3), []byte(`[{"specversion":"1.0","id":"1","type":"t","source":"/s","data_base64":"e30="}]`))
	headers := []http.Header{
		{"Content-Type": {"application/json"}},
		{"Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Type": {"t"}, "Ce-Source": {"/s"}},
		{"Content-Type": {"application/cloudevents+json"}},
		{"Content-Type": {"application/cloudevents-batch+json"}},
	}
	f.Fuzz(func(t *testing.T, mode uint8, body []byte) {
		h := headers[int(mode)%len(headers)]
		_, evs, err := function.Decode(context.Background(), h, body, cloudevent.Options{Envelope: mode&4 != 0})
		if err != nil {
			return
		}
		if len(evs) == 0 {
			t.Fatal("accepted a request with no events")
		}
		for _, ev := range evs {
			if err := ev.Validate(); err != nil {
				t.Fatalf("accepted an invalid event: %v", err)
			}
		}
	})
}
