package cloudevent

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/rgw"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// FuzzFromRecord decodes anything package rgw accepts and maps it: mapping
// must never panic, and every event it returns must be valid and survive the
// structured JSON format.
func FuzzFromRecord(f *testing.F) {
	for _, body := range events.All() {
		f.Add(body)
		f.Add(recordBytes(f, body))
	}
	f.Add([]byte(baseRecord))
	f.Add([]byte(strings.Replace(baseRecord, `"name":"photos"`, `"name":"a b#%zz?\u0001"`, 1)))
	f.Add([]byte(strings.Replace(baseRecord, `"key":"a/b.jpg"`, `"key":" \t"`, 1)))
	f.Add([]byte(strings.Replace(baseRecord, `"eventId":"1713693798.430517.e1"`, `"eventId":" "`, 1)))
	f.Add([]byte(strings.Replace(baseRecord, `"ObjectCreated:Put"`, `"s3:"`, 1)))
	overrides, err := ParseOverrides(`{"extensions":{"sinkname":"fuzz","shard":1}}`)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := rgw.DecodeAny(data)
		if err != nil {
			return
		}
		for i := range recs {
			rec := &recs[i]
			for _, opts := range []Options{{}, {Envelope: true, Extensions: overrides}} {
				ev, err := FromRecord(rec, opts)
				if err != nil {
					if strings.ContainsAny(err.Error(), "\r\n") {
						t.Fatalf("error is not one line: %q", err)
					}
					if strings.TrimSpace(rec.Name()) != "" {
						t.Fatalf("a decoded record with an event name did not map: %v", err)
					}
					continue
				}
				checkFuzzed(t, rec, &ev, opts)
			}
		}
	})
}

func checkFuzzed(t *testing.T, rec *rgw.Record, ev *event.Event, opts Options) {
	t.Helper()
	if err := ev.Validate(); err != nil {
		t.Fatalf("mapped event is invalid: %v\n%s", err, ev)
	}
	if ev.ID() != ID(rec) || ev.Source() != Source(rec) || ev.Type() != TypePrefix+rec.Name() {
		t.Fatalf("attributes differ from ID/Source/Type: %s", ev.Context)
	}
	if strings.TrimSpace(rec.S3.Object.Key) != "" && ev.Subject() != rec.S3.Object.Key {
		t.Fatalf("subject %q, key %q", ev.Subject(), rec.S3.Object.Key)
	}
	data := rec.Raw
	if opts.Envelope {
		data = []byte(`{"Records":[` + string(rec.Raw) + `]}`)
	}
	if !bytes.Equal(ev.Data(), data) {
		t.Fatalf("data is not the record:\n%s\n%s", ev.Data(), data)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	var back event.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("sdk-go cannot read the structured event: %v\n%s", err, b)
	}
	if err := back.Validate(); err != nil {
		t.Fatalf("round-tripped event is invalid: %v", err)
	}
	if back.ID() != ev.ID() || back.Source() != ev.Source() || back.Type() != ev.Type() ||
		back.Subject() != ev.Subject() || !back.Time().Equal(ev.Time()) {
		t.Fatalf("round trip changed attributes:\n%s\n%s", ev.Context, back.Context)
	}
	if d := back.Data(); len(d) == 0 || d[0] != '{' || !json.Valid(d) {
		t.Fatalf("round trip lost the JSON data: %s", b)
	}
}
