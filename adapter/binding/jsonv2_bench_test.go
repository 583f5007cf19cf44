//go:build goexperiment.jsonv2

package binding

import (
	"encoding/json/jsontext"
	jsonv2 "encoding/json/v2"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// v2Event is the structured form as a struct for encoding/json/v2, the
// alternative to appendStructuredV1 that issue 10 asked to measure:
// GOEXPERIMENT=jsonv2 go test -run '^$' -bench Structured -benchmem ./adapter/binding/
type v2Event struct {
	SpecVersion     string         `json:"specversion"`
	ID              string         `json:"id"`
	Source          string         `json:"source"`
	Type            string         `json:"type"`
	Subject         string         `json:"subject,omitempty"`
	DataContentType string         `json:"datacontenttype,omitempty"`
	Time            string         `json:"time,omitempty"`
	Data            jsontext.Value `json:"data,omitempty"`
	Extensions      map[string]any `json:",inline"`
}

func BenchmarkStructuredJSONv2(b *testing.B) {
	ev := testutil.Event1KiB(b)
	c := ev.Context.(*event.EventContextV1)
	b.ReportAllocs()
	for b.Loop() {
		e := v2Event{
			SpecVersion: event.CloudEventsVersionV1, ID: c.ID, Source: c.Source.String(), Type: c.Type,
			Subject: *c.Subject, DataContentType: *c.DataContentType, Time: c.Time.String(),
			Data: ev.DataEncoded, Extensions: c.Extensions,
		}
		if _, err := jsonv2.Marshal(&e, jsonv2.Deterministic(true)); err != nil {
			b.Fatal(err)
		}
	}
}
