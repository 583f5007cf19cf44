package cloudevent

import (
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

// baseRecord is a compact record in the current (Reef) form; tests edit it.
const baseRecord = `{"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"default",` +
	`"eventTime":"2024-04-21T10:03:18.419013Z","eventName":"ObjectCreated:Put",` +
	`"userIdentity":{"principalId":"user"},"requestParameters":{"sourceIPAddress":""},` +
	`"responseElements":{"x-amz-request-id":"req-1","x-amz-id-2":"3821-default-default"},` +
	`"s3":{"s3SchemaVersion":"1.0","configurationId":"cfg","bucket":{"name":"photos",` +
	`"ownerIdentity":{"principalId":"user"},"arn":"arn:aws:s3:default::photos","id":"b-1"},` +
	`"object":{"key":"a/b.jpg","size":177,"eTag":"e1","versionId":"","sequencer":"66E42466712CA919",` +
	`"metadata":[],"tags":[]}},"eventId":"1713693798.430517.e1","opaqueData":""}`

// record decodes baseRecord after replacing each old by new (pairs).
func record(t *testing.T, pairs ...string) rgw.Record {
	t.Helper()
	s := baseRecord
	for i := 0; i+1 < len(pairs); i += 2 {
		if strings.Count(s, pairs[i]) != 1 {
			t.Fatalf("%q is not in the record exactly once", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	recs, err := rgw.DecodeAny([]byte(s))
	if err != nil || len(recs) != 1 {
		t.Fatalf("DecodeAny: %d records, %v", len(recs), err)
	}
	return recs[0]
}

func mustMap(t *testing.T, rec *rgw.Record, opts Options) event.Event {
	t.Helper()
	ev, err := FromRecord(rec, opts)
	if err != nil {
		t.Fatalf("FromRecord: %v", err)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("mapped event is invalid: %v", err)
	}
	return ev
}

func TestID(t *testing.T) {
	const eid = `"eventId":"1713693798.430517.e1"`
	tests := []struct {
		name  string
		edits []string
		want  string // "" = derived (rgw-<hex>)
	}{
		{"eventId and configurationId", nil, "1713693798.430517.e1.cfg"},
		{"eventId without configurationId", []string{`"configurationId":"cfg"`, `"configurationId":""`}, "1713693798.430517.e1"},
		{"empty eventId", []string{eid, `"eventId":""`}, ""},
		{"missing eventId", []string{`,` + eid, ``}, ""},
		{"blank eventId", []string{eid, `"eventId":"  "`}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := record(t, tt.edits...)
			ev := mustMap(t, &rec, Options{})
			if ev.ID() != ID(&rec) {
				t.Errorf("event id %q != ID() %q", ev.ID(), ID(&rec))
			}
			if tt.want != "" {
				if ev.ID() != tt.want {
					t.Errorf("id = %q, want %q", ev.ID(), tt.want)
				}
				return
			}
			if !strings.HasPrefix(ev.ID(), "rgw-") || len(ev.ID()) != 36 {
				t.Errorf("derived id = %q, want rgw-<32 hex>", ev.ID())
			}
			again := record(t, tt.edits...)
			if ID(&again) != ev.ID() {
				t.Errorf("same bytes, ids %q and %q", ID(&again), ev.ID())
			}
		})
	}

	// One S3 request that matches two notification configurations: same
	// eventId, two records that must not de-duplicate each other.
	a, b := record(t), record(t, `"configurationId":"cfg"`, `"configurationId":"other"`)
	if ID(&a) == ID(&b) {
		t.Errorf("two configurations, one id %q", ID(&a))
	}
	// Without eventId, every byte counts, the configuration included.
	a = record(t, eid, `"eventId":""`)
	b = record(t, eid, `"eventId":""`, `"configurationId":"cfg"`, `"configurationId":"other"`)
	c := record(t, eid, `"eventId":""`, `"size":177`, `"size":178`)
	if ID(&a) == ID(&b) || ID(&a) == ID(&c) || ID(&b) == ID(&c) {
		t.Errorf("different records share a derived id: %s %s %s", ID(&a), ID(&b), ID(&c))
	}
}

func TestFromRecordAttributes(t *testing.T) {
	tests := []struct {
		name    string
		edits   []string
		source  string
		typ     string
		subject string
		key     string // objectkey extension
		time    string // "" = no time attribute
	}{
		{"current form", nil, "ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", "2024-04-21T10:03:18.419013Z"},
		{"s3: prefix", []string{`"ObjectCreated:Put"`, `"s3:ObjectCreated:Put"`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", "2024-04-21T10:03:18.419013Z"},
		{"unknown event name", []string{`"ObjectCreated:Put"`, `"ObjectLifecycle:Transition:Current"`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectLifecycle:Transition:Current", "a/b.jpg", "a/b.jpg", "2024-04-21T10:03:18.419013Z"},
		{"empty region", []string{`"awsRegion":"default"`, `"awsRegion":""`},
			"ceph:s3..photos", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", "2024-04-21T10:03:18.419013Z"},
		{"bucket with dots", []string{`"name":"photos"`, `"name":"my.photos.2024"`},
			"ceph:s3.default.my.photos.2024", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", "2024-04-21T10:03:18.419013Z"},
		{"key with spaces kept whole", []string{`"key":"a/b.jpg"`, `"key":" two  spaces .txt "`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", " two  spaces .txt ", " two  spaces .txt ", "2024-04-21T10:03:18.419013Z"},
		{"unicode key", []string{`"key":"a/b.jpg"`, `"key":"odd dir/\u00fcn\u00efcode +plus&amp=%41.txt"`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "odd dir/ünïcode +plus&amp=%41.txt", "odd dir/ünïcode +plus&amp=%41.txt", "2024-04-21T10:03:18.419013Z"},
		{"blank key: no subject", []string{`"key":"a/b.jpg"`, `"key":"   "`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "", "   ", "2024-04-21T10:03:18.419013Z"},
		{"empty key: no subject", []string{`"key":"a/b.jpg"`, `"key":""`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "", "", "2024-04-21T10:03:18.419013Z"},
		{"time with a space", []string{`2024-04-21T`, `2024-04-21 `},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", "2024-04-21T10:03:18.419013Z"},
		{"unreadable time: the eventId's time", []string{`"2024-04-21T10:03:18.419013Z"`, `"yesterday"`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", "2024-04-21T10:03:18.430517Z"},
		{"Tentacle POST form time 0.000000: the eventId's time", []string{`"2024-04-21T10:03:18.419013Z"`, `"0.000000"`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", "2024-04-21T10:03:18.430517Z"},
		{"epoch time: the eventId's time", []string{`"2024-04-21T10:03:18.419013Z"`, `"1970-01-01T00:00:00.000000Z"`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", "2024-04-21T10:03:18.430517Z"},
		{"no time, no eventId: no time attribute", []string{`"2024-04-21T10:03:18.419013Z"`, `"0.000000"`, `"1713693798.430517.e1"`, `""`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", ""},
		{"no time, eventId without a time: no time attribute", []string{`"2024-04-21T10:03:18.419013Z"`, `"0.000000"`, `"1713693798.430517.e1"`, `"abc"`},
			"ceph:s3.default.photos", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", ""},
		{"bucket and region no URI can hold raw", []string{`"name":"photos"`, `"name":"a b#%zz?\u0001/é"`, `"awsRegion":"default"`, `"awsRegion":"z g"`},
			"ceph:s3.z%20g.a%20b%23%25zz%3F%01%2F%C3%A9", "com.amazonaws.ObjectCreated:Put", "a/b.jpg", "a/b.jpg", "2024-04-21T10:03:18.419013Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := record(t, tt.edits...)
			ev := mustMap(t, &rec, Options{})
			if ev.Source() != tt.source || Source(&rec) != tt.source {
				t.Errorf("source = %q (Source() %q), want %q", ev.Source(), Source(&rec), tt.source)
			}
			if u, err := url.Parse(ev.Source()); err != nil || u.String() != ev.Source() {
				t.Errorf("source %q is not a stable URI-reference: %v", ev.Source(), err)
			}
			if ev.Type() != tt.typ {
				t.Errorf("type = %q, want %q", ev.Type(), tt.typ)
			}
			if ev.Subject() != tt.subject {
				t.Errorf("subject = %q, want %q", ev.Subject(), tt.subject)
			}
			if got := ev.Extensions()[ExtObjectKey]; got != tt.key {
				t.Errorf("objectkey = %q, want %q", got, tt.key)
			}
			if got := ev.Extensions()[ExtEventName]; got != strings.TrimPrefix(tt.typ, TypePrefix) {
				t.Errorf("eventname = %q, want the type's suffix", got)
			}
			if tt.time == "" {
				if !ev.Time().IsZero() || ev.Context.AsV1().Time != nil {
					t.Errorf("time = %v, want none", ev.Time())
				}
			} else if got := ev.Time().UTC().Format("2006-01-02T15:04:05.999999999Z"); got != tt.time {
				t.Errorf("time = %s, want %s", got, tt.time)
			}
			roundTrip(t, &ev, rec.Raw)
		})
	}
}

// TestTimeOfEventID: only <10 digits>.<6 digits>[.anything] is a time.
func TestTimeOfEventID(t *testing.T) {
	tests := []struct {
		id   string
		want string // "" = not a time
	}{
		{"1796160285.477840.8dd5067d1c62a18c414da9ef1f1dbde6", "2026-12-01T21:24:45.47784Z"},
		{"1796160285.477840", "2026-12-01T21:24:45.47784Z"},
		{"1796160285.000001.x.y", "2026-12-01T21:24:45.000001Z"},
		{"", ""},
		{"0000000000.000000.e", ""},
		{"179616028.477840.e", ""},
		{"17961602850.477840.e", ""},
		{"1796160285.47784.e", ""},
		{"1796160285.4778400.e", ""},
		{"+796160285.477840.e", ""},
		{"1796160285.-77840.e", ""},
		{"1796160285x477840.e", ""},
		{"rgw-0123456789abcdef", ""},
	}
	for _, tt := range tests {
		got, ok := timeOfEventID(tt.id)
		if tt.want == "" {
			if ok {
				t.Errorf("timeOfEventID(%q) = %v, want no time", tt.id, got)
			}
			continue
		}
		if s := got.Format("2006-01-02T15:04:05.999999999Z"); !ok || s != tt.want {
			t.Errorf("timeOfEventID(%q) = %s, %v; want %s", tt.id, s, ok, tt.want)
		}
	}
}

func TestFromRecordExtensions(t *testing.T) {
	rec := record(t, `"opaqueData":""`, `"opaqueData":"me@example.com"`)
	ev := mustMap(t, &rec, Options{})
	want := map[string]any{
		"bucket": "photos", "objectkey": "a/b.jpg", "eventname": "ObjectCreated:Put",
		"opaquedata": "me@example.com", "configurationid": "cfg",
	}
	if !reflect.DeepEqual(ev.Extensions(), want) {
		t.Errorf("extensions = %v, want %v", ev.Extensions(), want)
	}
	for name := range ev.Extensions() {
		if !event.IsExtensionNameValid(name) || len(name) > 20 || strings.ToLower(name) != name {
			t.Errorf("extension name %q breaks the CloudEvents naming rule", name)
		}
	}

	// Empty opaqueData and configurationId are left out.
	rec = record(t, `"configurationId":"cfg"`, `"configurationId":""`)
	ev = mustMap(t, &rec, Options{})
	for _, name := range []string{ExtOpaqueData, ExtConfigurationID} {
		if _, ok := ev.Extensions()[name]; ok {
			t.Errorf("empty %s is set", name)
		}
	}
}

func TestParseOverrides(t *testing.T) {
	valid := []struct {
		in   string
		want map[string]any
	}{
		{``, nil},
		{"  \n", nil},
		{`{}`, nil},
		{`{"extensions":{}}`, nil},
		{`{"extensions":{"sinkname":"rgw","team":"storage"}}`, map[string]any{"sinkname": "rgw", "team": "storage"}},
		{`{"extensions":{"Team":"storage"}}`, map[string]any{"team": "storage"}},
		{`{"extensions":{"replay":true,"shard":7,"neg":-2}}`, map[string]any{"replay": true, "shard": int32(7), "neg": int32(-2)}},
		{`{"extensions":{"gone":null,"kept":"x"}}`, map[string]any{"kept": "x"}},
		{`{"extensions":{"bucket":"override"}}`, map[string]any{"bucket": "override"}},
		{`{"extensions":{"a":"b"},"future":{"x":1}}`, map[string]any{"a": "b"}},
	}
	for _, tt := range valid {
		got, err := ParseOverrides(tt.in)
		if err != nil {
			t.Errorf("ParseOverrides(%q): %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) || (len(got) > 0 && !reflect.DeepEqual(got, tt.want)) {
			t.Errorf("ParseOverrides(%q) = %#v, want %#v", tt.in, got, tt.want)
		}
	}

	invalid := []struct {
		in      string
		mention string
	}{
		{`not json`, "invalid JSON"},
		{`{"extensions":`, "invalid JSON"},
		{`[]`, "got JSON array"},
		{`"x"`, "got JSON string"},
		{`{"extensions":[]}`, "extensions is JSON array"},
		{`{"extensions":"team=x"}`, "extensions is JSON string"},
		{`{"extensions":{"bad-name":"x"}}`, `"bad-name"`},
		{`{"extensions":{"under_score":"x"}}`, `"under_score"`},
		{`{"extensions":{"":"x"}}`, `""`},
		{`{"extensions":{"id":"x"}}`, `"id"`},
		{`{"extensions":{"type":"x"}}`, `"type"`},
		{`{"extensions":{"data":"x"}}`, `"data"`},
		{`{"extensions":{"half":1.5}}`, `"half"`},
		{`{"extensions":{"big":1e12}}`, `"big"`},
		{`{"extensions":{"obj":{"a":1}}}`, `"obj"`},
		{`{"extensions":{"list":["a"]}}`, `"list"`},
	}
	for _, tt := range invalid {
		got, err := ParseOverrides(tt.in)
		if err == nil {
			t.Errorf("ParseOverrides(%q) = %v, want an error", tt.in, got)
			continue
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "K_CE_OVERRIDES: ") || !strings.Contains(msg, tt.mention) ||
			strings.ContainsAny(msg, "\r\n") || strings.Contains(msg, "Go value") || strings.Contains(msg, "interface {}") {
			t.Errorf("ParseOverrides(%q): unhelpful error %q (want it to mention %s)", tt.in, msg, tt.mention)
		}
	}
}

func TestFromRecordOverrides(t *testing.T) {
	overrides, err := ParseOverrides(`{"extensions":{"sinkname":"rgw-nats","bucket":"renamed","shard":3}}`)
	if err != nil {
		t.Fatal(err)
	}
	rec := record(t)
	ev := mustMap(t, &rec, Options{Extensions: overrides})
	want := map[string]any{
		"bucket": "renamed", "objectkey": "a/b.jpg", "eventname": "ObjectCreated:Put",
		"configurationid": "cfg", "sinkname": "rgw-nats", "shard": int32(3),
	}
	if !reflect.DeepEqual(ev.Extensions(), want) {
		t.Errorf("extensions = %#v, want %#v", ev.Extensions(), want)
	}
	roundTrip(t, &ev, rec.Raw)
	// The caller's map is not changed, and the next event gets the same.
	if len(overrides) != 3 {
		t.Errorf("overrides changed: %v", overrides)
	}
	if ev2 := mustMap(t, &rec, Options{Extensions: overrides}); !reflect.DeepEqual(ev2.Extensions(), want) {
		t.Errorf("second event extensions = %v", ev2.Extensions())
	}

	// Options filled by hand get the same checks and conversions.
	ev = mustMap(t, &rec, Options{Extensions: map[string]any{"Count": 5}})
	if got := ev.Extensions()["count"]; got != int32(5) {
		t.Errorf("count = %#v, want int32(5)", got)
	}
	for _, bad := range []map[string]any{{"bad-name": "x"}, {"source": "x"}, {"v": struct{}{}}} {
		_, err := FromRecord(&rec, Options{Extensions: bad})
		if err == nil {
			t.Errorf("FromRecord accepted extensions %v", bad)
		} else if strings.ContainsAny(err.Error(), "\r\n") || !strings.Contains(err.Error(), rec.EventID) {
			t.Errorf("error %q is not one line naming the event", err)
		}
	}
}

func TestFromRecordErrors(t *testing.T) {
	blankName := record(t)
	blankName.EventName = " "
	prefixOnly := record(t)
	prefixOnly.EventName = "s3:"
	tests := []struct {
		name    string
		rec     rgw.Record
		mention string
	}{
		{"record not from package rgw", rgw.Record{EventName: "ObjectCreated:Put", EventID: "1"}, "raw"},
		{"blank event name", blankName, "event name"},
		{"s3: and nothing else", prefixOnly, "event name"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := FromRecord(&tt.rec, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if msg := err.Error(); !strings.Contains(msg, tt.mention) || strings.ContainsAny(msg, "\r\n") {
				t.Errorf("unhelpful error %q", msg)
			}
		})
	}
}

// The event's data is the record's bytes: FromRecord must not copy them in
// record mode, and must not let the envelope share them.
func TestFromRecordData(t *testing.T) {
	rec := record(t)
	ev := mustMap(t, &rec, Options{})
	if &ev.DataEncoded[0] != &rec.Raw[0] {
		t.Error("record mode copied the data")
	}
	env := mustMap(t, &rec, Options{Envelope: true})
	env.DataEncoded[len(`{"Records":[`)] = 'X'
	if rec.Raw[0] != '{' {
		t.Error("envelope data shares the record's bytes")
	}
	if ev.DataBase64 || env.DataBase64 {
		t.Error("data marked base64")
	}
}
