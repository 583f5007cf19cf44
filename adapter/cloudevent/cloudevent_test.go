package cloudevent

import (
	"bytes"
	"encoding/json"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/rgw"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// recordBytes cuts the single record out of an envelope as it is in the file.
func recordBytes(tb testing.TB, body []byte) []byte {
	tb.Helper()
	open, end := bytes.IndexByte(body, '['), bytes.LastIndexByte(body, ']')
	if open < 0 || end < open {
		tb.Fatalf("not an envelope: %.60s", body)
	}
	return bytes.TrimSpace(body[open+1 : end])
}

type mapped struct {
	id, source, typ, subject string
	time                     string // RFC 3339
	opaque, config           string // "" = extension absent
}

const etag = "8dd5067d1c62a18c414da9ef1f1dbde6"

var fixtureEvents = map[string]mapped{
	"docs-example-lenient.json": {
		id:     "", // eventId is empty: derived, checked apart
		source: "ceph:s3.zonegroup1.mybucket1", typ: "com.amazonaws.ObjectCreated:Put",
		subject: "myimage1.jpg", time: "2019-11-22T13:47:35.124724Z",
		opaque: "me@example.com", config: "mynotif1",
	},
	"downstream-xraylab-put-capture.json": {
		id:     "1613700188.340170.819c1e1c1b4c7b9853301ba2e6c300f1.xray-images",
		source: "ceph:s3..xraylab-0001", typ: "com.amazonaws.ObjectCreated:Put", // s3: removed
		subject: "demo_Micheal Phillips_6580_1947-05-22_2017-04-27.jpeg", time: "2021-02-19T02:03:08.330496Z",
		config: "xray-images",
	},
	"octopus-put-capture.json": {
		id:     "1587215509.687476.2dd16b058f745ade156d77437962d4e4.manasnot",
		source: "ceph:s3..manasbucket", typ: "com.amazonaws.ObjectCreated:Put",
		subject: "p.py", time: "2020-04-18T13:11:48.559808Z",
		opaque: "manasgupta1109@gmail.com", config: "manasnot",
	},
	"reef-put-capture.json": {
		id:     "1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification",
		source: "ceph:s3.default.jayanth", typ: "com.amazonaws.ObjectCreated:Put",
		subject: "notification.json", time: "2024-04-21T10:03:18.419013Z",
		config: "HTTPNotification",
	},
	"pacific-16.2.15/copy.json": {
		id:     "1795554870.225204." + etag + ".main-created",
		source: "ceph:s3..nb-main", typ: "com.amazonaws.ObjectCreated:Copy",
		subject: "copies/report-copy.txt", time: "2026-11-24T21:14:30.22226Z",
		opaque: "np-opaque", config: "main-created",
	},
	"pacific-16.2.15/delete.json": {
		id:     "1795554874.704922." + etag + ".main-removed",
		source: "ceph:s3..nb-main", typ: "com.amazonaws.ObjectRemoved:Delete",
		subject: "plain.bin", time: "2026-11-24T21:14:34.704916Z",
		opaque: "np-opaque", config: "main-removed",
	},
	"pacific-16.2.15/multipart-upload.json": {
		id:     "1795554860.053227.88fc978485924ccd87ceb19c90195b35-2.main-created",
		source: "ceph:s3..nb-main", typ: "com.amazonaws.ObjectCreated:CompleteMultipartUpload",
		subject: "big/multipart.bin", time: "2026-11-24T21:14:20.053221Z",
		opaque: "np-opaque", config: "main-created",
	},
	"pacific-16.2.15/persistent-put.json": {
		id:     "1795554915.746584." + etag + ".persist-all",
		source: "ceph:s3..nb-persist", typ: "com.amazonaws.ObjectCreated:Put",
		subject: "p/one.txt", time: "2026-11-24T21:15:15.744685Z",
		opaque: "p-opaque", config: "persist-all",
	},
	"pacific-16.2.15/post-object-form.json": {
		id:     "1795554880.853600." + etag + ".post-created",
		source: "ceph:s3..nb-post", typ: "com.amazonaws.ObjectCreated:Post",
		subject: "uploads/form.txt", time: "2026-11-24T21:14:40.853595Z",
		opaque: "np-opaque", config: "post-created",
	},
	"pacific-16.2.15/put-special-key.json": {
		id:     "1795554853.062868." + etag + ".main-created",
		source: "ceph:s3..nb-main", typ: "com.amazonaws.ObjectCreated:Put",
		subject: "odd dir/ünïcode +plus&amp=%41.txt", time: "2026-11-24T21:14:13.061263Z",
		opaque: "np-opaque", config: "main-created",
	},
	"pacific-16.2.15/put-with-meta.json": {
		id:     "1795554846.485564." + etag + ".main-created",
		source: "ceph:s3..nb-main", typ: "com.amazonaws.ObjectCreated:Put",
		subject: "docs/report.txt", time: "2026-11-24T21:14:06.482503Z",
		opaque: "np-opaque", config: "main-created",
	},
	"pacific-16.2.15/versioned-delete-marker.json": {
		id:     "1795554885.113763." + etag + ".ver-all",
		source: "ceph:s3..nb-ver", typ: "com.amazonaws.ObjectRemoved:DeleteMarkerCreated",
		subject: "v.txt", time: "2026-11-24T21:14:45.113758Z",
		opaque: "np-opaque", config: "ver-all",
	},
	"tentacle-20.2.4/cloudevents-put.json": {
		id:     "1796160338.161069." + etag + ".ce-created",
		source: "ceph:s3.default.nb-ce", typ: "com.amazonaws.ObjectCreated:Put",
		subject: "ce.txt", time: "2026-12-01T21:25:38.159631Z", config: "ce-created",
	},
	"tentacle-20.2.4/multipart-upload.json": {
		id:     "1796160257.433362.88fc978485924ccd87ceb19c90195b35-2.main-created",
		source: "ceph:s3.default.nb-main", typ: "com.amazonaws.ObjectCreated:CompleteMultipartUpload",
		subject: "big/multipart.bin", time: "2026-12-01T21:24:17.427058Z",
		opaque: "np-opaque", config: "main-created",
	},
	// eventTime "0.000000": the time is the eventId's (seconds.microseconds).
	"tentacle-20.2.4/post-object-form.json": {
		id:     "1796160285.477840." + etag + ".post-created",
		source: "ceph:s3.default.nb-post", typ: "com.amazonaws.ObjectCreated:Post",
		subject: "uploads/form.txt", time: "2026-12-01T21:24:45.477840Z",
		opaque: "np-opaque", config: "post-created",
	},
	"tentacle-20.2.4/versioned-delete-marker.json": {
		id:     "1796160290.637397." + etag + ".ver-all",
		source: "ceph:s3.default.nb-ver", typ: "com.amazonaws.ObjectRemoved:DeleteMarkerCreated",
		subject: "v.txt", time: "2026-12-01T21:24:50.63739Z",
		opaque: "np-opaque", config: "ver-all",
	},
	// Two records of one DeleteObjects: RGW's Ce-Id is the same for both,
	// ours differ (eventId + configuration).
	"tentacle-20.2.4/ce-persistent-delete-multi-1.json": {
		id:     "1796161343.464019.7b48666b13c02ffd7122df4275adc002.cep-all",
		source: "ceph:s3.default.tx-cep", typ: "com.amazonaws.ObjectRemoved:Delete",
		subject: "cep/m1.txt", time: "2026-12-01T21:42:23.464014Z", config: "cep-all",
	},
	"tentacle-20.2.4/ce-persistent-delete-multi-2.json": {
		id:     "1796161343.464716.7b48666b13c02ffd7122df4275adc002.cep-all",
		source: "ceph:s3.default.tx-cep", typ: "com.amazonaws.ObjectRemoved:Delete",
		subject: "cep/m2.txt", time: "2026-12-01T21:42:23.464713Z", config: "cep-all",
	},
}

func decodeOne(t *testing.T, body []byte) rgw.Record {
	t.Helper()
	recs, err := rgw.Decode(body)
	if err != nil {
		t.Fatalf("rgw.Decode: %v", err)
	}
	if len(recs) != 1 {
		t.Fatalf("%d records", len(recs))
	}
	return recs[0]
}

func TestFromRecordFixtures(t *testing.T) {
	files := events.All()
	for name := range fixtureEvents {
		if _, ok := files[name]; !ok {
			t.Errorf("fixture %s is described here but missing", name)
		}
	}
	for name, body := range files {
		t.Run(name, func(t *testing.T) {
			want, ok := fixtureEvents[name]
			if !ok {
				t.Fatalf("fixture %s has no expected event: add it to fixtureEvents", name)
			}
			rec := decodeOne(t, body)
			ev, err := FromRecord(&rec, Options{})
			if err != nil {
				t.Fatalf("FromRecord: %v", err)
			}
			if err := ev.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			if want.id == "" {
				want.id = derivedID(t, body)
			}
			raw := recordBytes(t, body)
			checkEvent(t, &ev, want, &rec)
			if !bytes.Equal(ev.Data(), raw) {
				t.Errorf("data is not the record as sent:\n got %s\nwant %s", ev.Data(), raw)
			}
			roundTrip(t, &ev, raw)

			env, err := FromRecord(&rec, Options{Envelope: true})
			if err != nil {
				t.Fatalf("FromRecord(envelope): %v", err)
			}
			if err := env.Validate(); err != nil {
				t.Fatalf("Validate(envelope): %v", err)
			}
			checkEvent(t, &env, want, &rec)
			wantData := `{"Records":[` + string(raw) + `]}`
			if string(env.Data()) != wantData {
				t.Errorf("envelope data:\n got %s\nwant %s", env.Data(), wantData)
			}
			if again := decodeOne(t, env.Data()); !bytes.Equal(again.Raw, raw) || again.EventID != rec.EventID {
				t.Errorf("envelope data does not decode to the same record: %s", again.Raw)
			}
			roundTrip(t, &env, []byte(wantData))
		})
	}
}

// derivedID checks the id of a record without eventId: stable for the same
// bytes, different for other bytes; it returns it.
func derivedID(t *testing.T, body []byte) string {
	t.Helper()
	// Two decodes of two copies: nothing but the bytes may matter.
	a := decodeOne(t, bytes.Clone(body))
	b := decodeOne(t, bytes.Clone(body))
	id := ID(&a)
	if id != ID(&b) {
		t.Fatalf("same bytes, different ids: %s %s", id, ID(&b))
	}
	if !strings.HasPrefix(id, "rgw-") || len(id) != len("rgw-")+32 {
		t.Errorf("derived id %q is not rgw-<32 hex>", id)
	}
	other := decodeOne(t, bytes.Replace(body, []byte("myimage1.jpg"), []byte("myimage2.jpg"), 1))
	if ID(&other) == id {
		t.Errorf("different records, same id %s", id)
	}
	return id
}

func checkEvent(t *testing.T, ev *event.Event, want mapped, rec *rgw.Record) {
	t.Helper()
	for _, c := range []struct{ attr, got, want string }{
		{"specversion", ev.SpecVersion(), "1.0"},
		{"id", ev.ID(), want.id},
		{"source", ev.Source(), want.source},
		{"type", ev.Type(), want.typ},
		{"subject", ev.Subject(), want.subject},
		{"datacontenttype", ev.DataContentType(), "application/json"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %q, want %q", c.attr, c.got, c.want)
		}
	}
	wantTime, err := time.Parse(time.RFC3339Nano, want.time)
	if err != nil {
		t.Fatal(err)
	}
	name, bucket := rec.Name(), rec.S3.Bucket.Name
	if !ev.Time().Equal(wantTime) {
		t.Errorf("time = %v, want %v", ev.Time(), wantTime)
	}
	if _, err := url.Parse(ev.Source()); err != nil {
		t.Errorf("source %q is not a URI-reference: %v", ev.Source(), err)
	}
	wantExt := map[string]any{
		ExtBucket:    bucket,
		ExtObjectKey: want.subject,
		ExtEventName: name,
	}
	if want.opaque != "" {
		wantExt[ExtOpaqueData] = want.opaque
	}
	if want.config != "" {
		wantExt[ExtConfigurationID] = want.config
	}
	if !reflect.DeepEqual(ev.Extensions(), wantExt) {
		t.Errorf("extensions = %v, want %v", ev.Extensions(), wantExt)
	}
	if strings.HasPrefix(name, "s3:") || !strings.HasSuffix(ev.Type(), "."+name) {
		t.Errorf("eventname %q does not match type %q", name, ev.Type())
	}
}

// roundTrip sends an event through the structured JSON format with sdk-go and
// checks it comes back the same, with data as JSON, not base64.
func roundTrip(t *testing.T, ev *event.Event, data []byte) {
	t.Helper()
	// sdk-go's own encoder writes data byte for byte.
	own, err := ev.MarshalJSON()
	if err != nil {
		t.Fatalf("MarshalJSON: %v", err)
	}
	if !bytes.Contains(own, append([]byte(`"data":`), data...)) {
		t.Errorf("structured event does not carry the data bytes as sent:\n%s", own)
	}
	// Through encoding/json, as a caller would (it compacts and escapes
	// HTML characters, so compare data as JSON values).
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatalf("json.Marshal: %v", err)
	}
	var members map[string]json.RawMessage
	if err := json.Unmarshal(b, &members); err != nil {
		t.Fatalf("structured event is not a JSON object: %v", err)
	}
	if _, ok := members["data_base64"]; ok {
		t.Errorf("data went to data_base64: %s", b)
	}
	if d := members["data"]; len(d) == 0 || d[0] != '{' {
		t.Errorf("data is not a JSON object: %s", d)
	}
	var back event.Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("sdk-go cannot read the structured event: %v", err)
	}
	if err := back.Validate(); err != nil {
		t.Errorf("round-tripped event is invalid: %v", err)
	}
	if back.ID() != ev.ID() || back.Source() != ev.Source() || back.Type() != ev.Type() ||
		back.Subject() != ev.Subject() || !back.Time().Equal(ev.Time()) ||
		back.DataContentType() != ev.DataContentType() || !reflect.DeepEqual(back.Extensions(), ev.Extensions()) {
		t.Errorf("round trip changed the attributes:\n%s\n%s", ev.Context, back.Context)
	}
	if !jsonEqual(t, back.Data(), data) {
		t.Errorf("round trip changed data:\n got %s\nwant %s", back.Data(), data)
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("not JSON: %v: %s", err, a)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return reflect.DeepEqual(va, vb)
}
