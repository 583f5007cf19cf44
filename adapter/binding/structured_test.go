package binding

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// sameJSON asserts that the hand-written encoder and sdk-go's
// event.WriteJson write the same JSON value for ev.
func sameJSON(t *testing.T, ev *event.Event) {
	t.Helper()
	c, ok := ev.Context.(*event.EventContextV1)
	if !ok {
		t.Fatal("not a 1.0 event")
	}
	mine, ok := appendStructuredV1(ev, c)
	if !ok {
		t.Fatalf("not written by the fast encoder: %v", ev)
	}
	var sdk bytes.Buffer
	if err := event.WriteJson(ev, &sdk); err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(mine, &a); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, mine)
	}
	if err := json.Unmarshal(sdk.Bytes(), &b); err != nil {
		t.Fatalf("sdk-go wrote no JSON: %v\n%s", err, sdk.Bytes())
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("encoders differ:\nmine %s\nsdk  %s", mine, sdk.Bytes())
	}
	// And the result reads back as the same event.
	var back event.Event
	if err := back.UnmarshalJSON(mine); err != nil {
		t.Fatalf("sdk-go cannot read it: %v\n%s", err, mine)
	}
}

func TestStructuredMatchesSDK(t *testing.T) {
	base := func() *event.Event { return testutil.RGWEvent(t, "1713693798.430517.abc.HTTPNotification") }
	cases := map[string]func(ev *event.Event){
		"rgw event": func(*event.Event) {},
		"escapes everywhere": func(ev *event.Event) {
			ev.SetID("id \"q\" \\ \n\t\x01 \u2028 €")
			ev.SetSubject("a\u2029b\x1fc</script>&")
			ev.SetExtension("opaquedata", "tab\there \"and\" \\ \x7f")
		},
		"no subject, no time, no data": func(ev *event.Event) {
			c := ev.Context.(*event.EventContextV1)
			c.Subject, c.Time = nil, nil
			ev.DataEncoded = nil
		},
		"text data": func(ev *event.Event) {
			ev.SetData("text/plain", []byte("hello \"world\"\n"))
		},
		"+json data is a string for sdk-go": func(ev *event.Event) {
			ev.SetData("application/vnd.x+json", []byte(`{"a":1}`))
		},
		"json with parameters": func(ev *event.Event) {
			ev.SetData("application/json; charset=utf-8", []byte(`{"a":[1,2]}`))
		},
		"base64 data": func(ev *event.Event) {
			ev.SetData("application/octet-stream", []byte{0, 1, 2, 0xff, 0xfe})
		},
		"no datacontenttype": func(ev *event.Event) {
			ev.Context.(*event.EventContextV1).DataContentType = nil
		},
		"dataschema and URL source": func(ev *event.Event) {
			ev.SetDataSchema("https://example.com/schemas/rgw.json?v=1#frag")
			ev.SetSource("https://user@host:8080/p/a%20th?q=1#f")
		},
		"opaque source with query": func(ev *event.Event) {
			ev.SetSource("ceph:s3.default.b?x=1")
		},
		"integer and boolean extensions": func(ev *event.Event) {
			ev.SetExtension("retries", 3)
			ev.SetExtension("negative", -7)
			ev.SetExtension("flag", true)
			ev.SetExtension("off", false)
		},
		"time with nanoseconds in another zone": func(ev *event.Event) {
			ev.SetTime(time.Date(2026, 12, 1, 23, 59, 59, 123456789, time.FixedZone("x", 3600)))
		},
		"empty extensions": func(ev *event.Event) {
			ev.Context.(*event.EventContextV1).Extensions = nil
		},
	}
	for name, change := range cases {
		t.Run(name, func(t *testing.T) {
			ev := base()
			change(ev)
			sameJSON(t, ev)
		})
	}
}

// TestStructuredFallsBack: what the fast encoder does not write itself goes
// to sdk-go, and Encode still succeeds.
func TestStructuredFallsBack(t *testing.T) {
	for name, v := range map[string]any{
		"uri extension":       *mustURL(t, "https://example.com/x"),
		"timestamp extension": types.Timestamp{Time: time.Unix(1, 0)},
		"binary extension":    []byte{1, 2},
	} {
		ev := testutil.RGWEvent(t, "id")
		ev.Context.(*event.EventContextV1).Extensions["ext"] = v
		if _, ok := appendStructuredV1(ev, ev.Context.(*event.EventContextV1)); ok {
			t.Errorf("%s: written by the fast encoder", name)
		}
		if _, err := Encode(ev, "rgw.b.e", Structured, nil); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	ev := testutil.RGWEvent(t, "id")
	for _, n := range []string{"a1", "a2", "a3", "a4", "a5", "a6", "a7", "a8", "a9", "b1", "b2", "b3"} {
		ev.SetExtension(n, n)
	}
	if _, ok := appendStructuredV1(ev, ev.Context.(*event.EventContextV1)); ok {
		t.Error("17 extensions written by the fast encoder")
	}
	if _, err := Encode(ev, "rgw.b.e", Structured, nil); err != nil {
		t.Error(err)
	}
}

func FuzzStructuredMatchesSDK(f *testing.F) {
	f.Add("id", "ceph:s3.default.b", "com.amazonaws.ObjectCreated:Put", "key", "ext", []byte(`{"a":1}`), int64(0))
	f.Add("i\"d", "/rel/path", "t\u2028", "k\x00ey", "ü\xff", []byte("not json"), int64(1e18))
	f.Fuzz(func(t *testing.T, id, source, typ, subject, ext string, data []byte, nanos int64) {
		ev := event.New()
		ev.SetID(id)
		ev.SetType(typ)
		if err := ev.Context.SetSource(source); err != nil {
			return
		}
		ev.SetSubject(subject)
		ev.SetTime(time.Unix(0, nanos))
		ev.SetExtension("bucket", ext)
		ct := event.ApplicationJSON
		if !json.Valid(data) {
			ct = "text/plain"
		}
		if err := ev.SetData(ct, data); err != nil {
			return
		}
		if ev.Validate() != nil || checkUTF8(&ev) != nil {
			return // Encode refuses it before any encoder runs
		}
		sameJSON(t, &ev)
	})
}
