package binding

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
)

// attrs is every attribute and extension of ev in canonical string form,
// so events decoded from either mode compare equal.
func attrs(t *testing.T, ev *event.Event) map[string]string {
	t.Helper()
	m := map[string]string{
		"specversion": ev.SpecVersion(),
		"id":          ev.ID(),
		"source":      ev.Source(),
		"type":        ev.Type(),
	}
	if s := ev.Subject(); s != "" {
		m["subject"] = s
	}
	if !ev.Time().IsZero() {
		m["time"] = types.FormatTime(ev.Time())
	}
	if s := ev.DataContentType(); s != "" {
		m["datacontenttype"] = s
	}
	if s := ev.DataSchema(); s != "" {
		m["dataschema"] = s
	}
	for k, v := range ev.Extensions() {
		s, err := types.Format(v)
		if err != nil {
			t.Fatalf("extension %s: %v", k, err)
		}
		m[k] = s
	}
	return m
}

func TestEncodeDecode(t *testing.T) {
	odd := rgwEvent(t, "1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification")

	typed := event.New()
	typed.SetID("typed-1")
	typed.SetSource("/x")
	typed.SetType("t")
	typed.SetDataSchema("https://example.com/schema?a=b c")
	typed.SetExtension("count", 42)
	typed.SetExtension("flag", true)
	typed.SetExtension("when", types.Timestamp{Time: time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)})
	typed.SetExtension("link", *mustURL(t, "https://example.com/a%20b"))
	typed.SetExtension("raw", []byte{0, 1, 2, 255})

	binaryData := event.New()
	binaryData.SetID("bin-1")
	binaryData.SetSource("/bin")
	binaryData.SetType("blob")
	if err := binaryData.SetData("application/octet-stream", []byte{0xff, 0x00, 'a', 0x80}); err != nil {
		t.Fatal(err)
	}

	noData := event.New()
	noData.SetID("Euro € 😀")
	noData.SetSource("/nodata")
	noData.SetType("ping")

	tests := []struct {
		name   string
		ev     *event.Event
		header nats.Header
		// wantHeaders are exact binary-mode header values (percent-encoded).
		wantHeaders map[string]string
		wantMsgID   string
	}{
		{
			name: "rgw record with odd key",
			ev:   odd,
			wantHeaders: map[string]string{
				"ce-specversion":     "1.0",
				"ce-id":              "1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification",
				"ce-source":          "ceph:s3.default.jayanth",
				"ce-type":            "com.amazonaws.ObjectCreated:Put",
				"ce-subject":         "dir/cat%20picture%20%C3%BCn%C3%AFcode%20100%25.json",
				"ce-time":            "2024-04-21T10:03:18.419013Z",
				"ce-datacontenttype": "application/json",
				"ce-objectkey":       "dir/cat%20picture%20%C3%BCn%C3%AFcode%20100%25.json",
				"ce-opaquedata":      "me%20%22quoted%22%20&%20spaced",
				"ce-bucket":          "jayanth",
			},
			wantMsgID: "1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification",
		},
		{
			name: "typed extensions",
			ev:   &typed,
			wantHeaders: map[string]string{
				"ce-dataschema": "https://example.com/schema?a=b%20c",
				"ce-count":      "42",
				"ce-flag":       "true",
				"ce-when":       "2020-01-02T03:04:05.000000006Z",
				"ce-link":       "https://example.com/a%2520b",
				"ce-raw":        "AAEC/w==",
			},
			wantMsgID: "typed-1",
		},
		{
			name:        "binary data",
			ev:          &binaryData,
			wantHeaders: map[string]string{"ce-datacontenttype": "application/octet-stream"},
			wantMsgID:   "bin-1",
		},
		{
			name:        "spec example value, no data",
			ev:          &noData,
			wantHeaders: map[string]string{"ce-id": "Euro%20%E2%82%AC%20%F0%9F%98%80"},
			wantMsgID:   "Euro € 😀",
		},
		{
			name:        "extra headers and msg id override",
			ev:          odd,
			header:      nats.Header{"X-Tenant": {"a", "b"}, "nats-msg-id": {"custom-id"}},
			wantHeaders: map[string]string{"X-Tenant": "a", HeaderMsgID: "custom-id"},
			wantMsgID:   "custom-id",
		},
	}
	for _, tt := range tests {
		want := attrs(t, tt.ev)
		for _, enc := range []Encoding{Structured, Binary} {
			t.Run(tt.name+"/"+enc.String(), func(t *testing.T) {
				m, err := Encode(tt.ev, "rgw.jayanth.ObjectCreated.Put", enc, tt.header)
				if err != nil {
					t.Fatal(err)
				}
				if m.Subject != "rgw.jayanth.ObjectCreated.Put" {
					t.Errorf("subject %q", m.Subject)
				}
				if m.MsgID != tt.wantMsgID || m.Header.Get(HeaderMsgID) != tt.wantMsgID {
					t.Errorf("MsgID %q, header %q, want %q", m.MsgID, m.Header.Get(HeaderMsgID), tt.wantMsgID)
				}
				for k, v := range tt.header {
					if strings.EqualFold(k, HeaderMsgID) {
						continue
					}
					if got := m.Header[k]; !slices.Equal(got, v) {
						t.Errorf("extra header %s = %q, want %q", k, got, v)
					}
				}

				var fromSDK event.Event
				switch enc {
				case Structured:
					if ct := m.Header.Get(HeaderContentType); ct != ContentTypeStructured {
						t.Errorf("Content-Type %q", ct)
					}
					for k := range m.Header {
						if strings.HasPrefix(strings.ToLower(k), "ce-") {
							t.Errorf("structured message carries %s", k)
						}
					}
					// sdk-go itself must read the payload.
					if err := json.Unmarshal(m.Data, &fromSDK); err != nil {
						t.Fatalf("sdk-go cannot read the payload: %v\n%s", err, m.Data)
					}
					if err := fromSDK.Validate(); err != nil {
						t.Fatal(err)
					}
				case Binary:
					if _, ok := m.Header[HeaderContentType]; ok {
						t.Errorf("binary message carries Content-Type")
					}
					for k, v := range tt.wantHeaders {
						if got := m.Header.Get(k); got != v {
							t.Errorf("header %s = %q, want %q", k, got, v)
						}
					}
					// every attribute is a header, nothing else starts with ce-
					var ce []string
					for k := range m.Header {
						if strings.HasPrefix(k, "ce-") {
							ce = append(ce, k[3:])
						}
					}
					slices.Sort(ce)
					if wantNames := slices.Sorted(maps.Keys(want)); !slices.Equal(ce, wantNames) {
						t.Errorf("ce- headers %v, want %v", ce, wantNames)
					}
					for k, vs := range m.Header {
						if !strings.HasPrefix(k, "ce-") {
							continue // Nats-Msg-Id is the raw id, as other producers send it
						}
						for _, v := range vs {
							for _, c := range []byte(v) {
								if c < 0x21 || c > 0x7e {
									t.Errorf("header value %q is not printable ASCII", v)
								}
							}
						}
					}
					if !bytes.Equal(m.Data, tt.ev.Data()) {
						t.Errorf("payload %q, want the data %q", m.Data, tt.ev.Data())
					}
				}

				got, err := Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
				if err != nil {
					t.Fatalf("Decode: %v", err)
				}
				decoded := []*event.Event{&got}
				if enc == Structured {
					decoded = append(decoded, &fromSDK)
				}
				for _, d := range decoded {
					if a := attrs(t, d); !maps.Equal(a, want) {
						t.Errorf("attributes after the round trip:\n got %v\nwant %v", a, want)
					}
					if !bytes.Equal(d.Data(), tt.ev.Data()) {
						t.Errorf("data after the round trip %q, want %q", d.Data(), tt.ev.Data())
					}
				}
			})
		}
	}
}

func mustURL(t *testing.T, s string) *types.URI {
	t.Helper()
	u := types.ParseURI(s)
	if u == nil {
		t.Fatalf("bad URL %q", s)
	}
	return u
}

func TestEncodeRejects(t *testing.T) {
	good := rgwEvent(t, "id-1")
	noID := rgwEvent(t, "")
	badJSON := rgwEvent(t, "id-2")
	badJSON.DataEncoded = []byte(`{"truncated":`)
	tests := []struct {
		name   string
		ev     *event.Event
		subj   string
		enc    Encoding
		header nats.Header
	}{
		{"nil event", nil, "a.b", Structured, nil},
		{"empty subject", good, "", Structured, nil},
		{"wildcard subject", good, "rgw.*", Binary, nil},
		{"full wildcard", good, "rgw.>", Structured, nil},
		{"space in subject", good, "rgw.a b", Structured, nil},
		{"empty token", good, "rgw..x", Structured, nil},
		{"invalid event", noID, "a.b", Structured, nil},
		{"JSON data that is not JSON", badJSON, "a.b", Structured, nil},
		{"unknown encoding", good, "a.b", Encoding(7), nil},
		{"Content-Type over structured", good, "a.b", Structured, nats.Header{"content-type": {"text/plain"}}},
		{"ce- header over binary", good, "a.b", Binary, nats.Header{"CE-Type": {"other"}}},
		{"header name with a colon", good, "a.b", Binary, nats.Header{"X:Y": {"1"}}},
		{"header name with a space", good, "a.b", Structured, nats.Header{"X Y": {"1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Encode(tt.ev, tt.subj, tt.enc, tt.header)
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("error %v, want one wrapping ErrRejected", err)
			}
			if tt.ev != nil && tt.ev.ID() != "" && !strings.Contains(err.Error(), tt.ev.ID()) {
				t.Errorf("error %q does not name the event id", err)
			}
		})
	}
}

func TestDecodeVariants(t *testing.T) {
	record := `{"a":1}`
	tests := []struct {
		name    string
		msg     nats.Msg
		want    map[string]string // attributes expected (subset)
		wantErr error             // nil: success expected; errAny: any error
	}{
		{
			name: "binary, header names in any case, lower-case hex",
			msg: nats.Msg{Header: nats.Header{
				"CE-SpecVersion": {"1.0"}, "Ce-Id": {"x%c3%bc"}, "ce-source": {"/s"}, "ce-type": {"t"},
				"ce-datacontenttype": {"application/json"}, "CE-BUCKET": {"b%20c"},
			}, Data: []byte(record)},
			want: map[string]string{"id": "xü", "source": "/s", "bucket": "b c", "datacontenttype": "application/json"},
		},
		{
			name: "binary, quoted value of an older sender",
			msg: nats.Msg{Header: nats.Header{
				"ce-specversion": {"1.0"}, "ce-id": {`"a \"b\" c"`}, "ce-source": {"/s"}, "ce-type": {"t"},
			}},
			want: map[string]string{"id": `a "b" c`},
		},
		{
			name: "binary, unnecessarily encoded",
			msg: nats.Msg{Header: nats.Header{
				"ce-specversion": {"1.0"}, "ce-id": {"%61%62"}, "ce-source": {"/s"}, "ce-type": {"t"},
			}},
			want: map[string]string{"id": "ab"},
		},
		{
			name: "structured without Content-Type",
			msg:  nats.Msg{Data: []byte(` {"specversion":"1.0","id":"s1","source":"/s","type":"t","data":{"a":1}}`)},
			want: map[string]string{"id": "s1"},
		},
		{
			name: "structured Content-Type wins over ce- headers",
			msg: nats.Msg{Header: nats.Header{"content-type": {"Application/CloudEvents+JSON; charset=utf-8"}, "ce-specversion": {"1.0"}},
				Data: []byte(`{"specversion":"1.0","id":"s2","source":"/s","type":"t"}`)},
			want: map[string]string{"id": "s2"},
		},
		{
			name: "spec version 0.3 binary",
			msg: nats.Msg{Header: nats.Header{
				"ce-specversion": {"0.3"}, "ce-id": {"old"}, "ce-source": {"/s"}, "ce-type": {"t"}, "ce-schemaurl": {"https://x/y"},
			}},
			want: map[string]string{"id": "old", "specversion": "0.3", "dataschema": "https://x/y"},
		},
		{name: "overlong UTF-8", msg: nats.Msg{Header: nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {"%C0%A0"}, "ce-source": {"/s"}, "ce-type": {"t"}}}, wantErr: errAny},
		{name: "truncated escape", msg: nats.Msg{Header: nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {"a%4"}, "ce-source": {"/s"}, "ce-type": {"t"}}}, wantErr: errAny},
		{name: "bad hex", msg: nats.Msg{Header: nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {"a%zz"}, "ce-source": {"/s"}, "ce-type": {"t"}}}, wantErr: errAny},
		{name: "missing required attribute", msg: nats.Msg{Header: nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {"a"}, "ce-source": {"/s"}}}, wantErr: errAny},
		{name: "bad time", msg: nats.Msg{Header: nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {"a"}, "ce-source": {"/s"}, "ce-type": {"t"}, "ce-time": {"yesterday"}}}, wantErr: errAny},
		{name: "bad extension name", msg: nats.Msg{Header: nats.Header{
			"ce-specversion": {"1.0"}, "ce-id": {"a"}, "ce-source": {"/s"}, "ce-type": {"t"}, "ce-object_key": {"k"}}}, wantErr: errAny},
		{name: "unknown spec version", msg: nats.Msg{Header: nats.Header{
			"ce-specversion": {"9.9"}, "ce-id": {"a"}, "ce-source": {"/s"}, "ce-type": {"t"}}}, wantErr: errAny},
		{name: "plain text", msg: nats.Msg{Data: []byte("hello")}, wantErr: ErrNotCloudEvent},
		{name: "empty", msg: nats.Msg{}, wantErr: ErrNotCloudEvent},
		{name: "raw RGW notification", msg: nats.Msg{Data: []byte(`{"Records":[]}`)}, wantErr: ErrNotCloudEvent},
		{name: "batch", msg: nats.Msg{Header: nats.Header{"Content-Type": {"application/cloudevents-batch+json"}}, Data: []byte("[]")}, wantErr: ErrNotCloudEvent},
		{name: "broken structured", msg: nats.Msg{Header: nats.Header{"Content-Type": {ContentTypeStructured}}, Data: []byte(`{"specversion":`)}, wantErr: ErrNotCloudEvent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.msg.Subject = "test.subject"
			ev, err := Decode(&tt.msg)
			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("Decode: %v", err)
			case tt.wantErr == nil:
				got := attrs(t, &ev)
				for k, v := range tt.want {
					if got[k] != v {
						t.Errorf("%s = %q, want %q", k, got[k], v)
					}
				}
			case err == nil:
				t.Fatalf("Decode succeeded with %v, want an error", ev)
			case tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Fatalf("error %v, want %v", err, tt.wantErr)
			case !strings.Contains(err.Error(), "test.subject"):
				t.Errorf("error %q does not name the subject", err)
			}
		})
	}
}

var errAny = errors.New("any error")

func TestPercentEncoding(t *testing.T) {
	tests := []struct{ in, want string }{
		{"plain-ASCII_~!#$&'()*+,/:;<=>?@[]^`{|}", "plain-ASCII_~!#$&'()*+,/:;<=>?@[]^`{|}"},
		{"Euro € 😀", "Euro%20%E2%82%AC%20%F0%9F%98%80"},
		{`a "q" 100%`, "a%20%22q%22%20100%25"},
		{"tab\tnl\ndel\x7f", "tab%09nl%0Adel%7F"},
		{"", ""},
	}
	for _, tt := range tests {
		got := percentEncode(tt.in)
		if got != tt.want {
			t.Errorf("percentEncode(%q) = %q, want %q", tt.in, got, tt.want)
		}
		back, err := percentDecode(got)
		if err != nil || back != tt.in {
			t.Errorf("percentDecode(%q) = %q, %v; want %q", got, back, err, tt.in)
		}
	}
}

func TestParse(t *testing.T) {
	if e, err := ParseEncoding("binary"); err != nil || e != Binary {
		t.Errorf("ParseEncoding(binary) = %v, %v", e, err)
	}
	if e, err := ParseEncoding("Structured"); err != nil || e != Structured {
		t.Errorf("ParseEncoding(Structured) = %v, %v", e, err)
	}
	if _, err := ParseEncoding("batch"); err == nil {
		t.Error("ParseEncoding(batch) succeeded")
	}
}

// FuzzDecode feeds arbitrary headers and payloads to Decode. Whatever it
// accepts must be a valid event that survives encoding in both modes.
func FuzzDecode(f *testing.F) {
	for _, id := range []string{"1713693798.430517.a60023221945e53a31f07df71f37f032", "Euro € 😀", `q"%`} {
		ev := rgwEvent(f, id)
		for _, enc := range []Encoding{Structured, Binary} {
			m, err := Encode(ev, "rgw.b.e", enc, nats.Header{"X-Extra": {"1"}})
			if err != nil {
				f.Fatal(err)
			}
			f.Add(headerBlock(m.Header), m.Data)
		}
	}
	f.Add("ce-specversion: 1.0\nce-id: \"a\\\"b\"\nce-source: /s\nce-type: t\n", []byte{0xff})
	f.Add("", []byte(`{"specversion":"1.0","id":"x","source":"/s","type":"t","data_base64":"AAE="}`))
	f.Fuzz(func(t *testing.T, headers string, data []byte) {
		msg := &nats.Msg{Subject: "fuzz", Header: parseHeaderBlock(headers), Data: data}
		ev, err := Decode(msg)
		if err != nil {
			return
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("Decode returned an invalid event: %v", err)
		}
		// sdk-go's attribute setters, which binary decoding goes through,
		// trim spaces; its JSON reader does not.
		trim := strings.TrimSpace
		for _, enc := range []Encoding{Structured, Binary} {
			if enc == Binary && (trim(ev.ID()) == "" || trim(ev.Type()) == "") {
				continue // blank after trimming: binary decoding rightly rejects it
			}
			m, err := Encode(&ev, "fuzz.out", enc, nil)
			if err != nil {
				if enc == Structured && errors.Is(err, ErrRejected) && strings.Contains(err.Error(), "not valid JSON") {
					continue // a structured input may carry non-JSON data under a JSON type
				}
				t.Fatalf("decoded event does not encode in %s mode: %v", enc, err)
			}
			back, err := Decode(&nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data})
			if err != nil {
				t.Fatalf("%s re-encoding does not decode: %v", enc, err)
			}
			if trim(back.ID()) != trim(ev.ID()) || trim(back.Source()) != trim(ev.Source()) ||
				trim(back.Type()) != trim(ev.Type()) || trim(back.Subject()) != trim(ev.Subject()) {
				t.Fatalf("%s round trip changed the event: %v -> %v", enc, ev, back)
			}
		}
	})
}

// headerBlock and parseHeaderBlock give the fuzzer headers as text:
// one "name: value" per line.
func headerBlock(h nats.Header) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(h)) {
		for _, v := range h[k] {
			b.WriteString(k + ": " + v + "\n")
		}
	}
	return b.String()
}

func parseHeaderBlock(s string) nats.Header {
	h := nats.Header{}
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ": ")
		if ok {
			h.Add(k, v)
		}
	}
	return h
}

// TestCheckIsWhatEncodeChecks: Check refuses exactly the events that Encode
// refuses for the event itself, and for events that pass it EncodeChecked
// writes the message Encode writes.
func TestCheckIsWhatEncodeChecks(t *testing.T) {
	noID := rgwEvent(t, "")
	badJSON := rgwEvent(t, "id-2")
	badJSON.DataEncoded = []byte(`{"truncated":`)
	notUTF8 := rgwEvent(t, "id-3")
	notUTF8.SetExtension("objectkey", "a\xffb")
	for name, ev := range map[string]*event.Event{"invalid event": noID, "JSON data that is not JSON": badJSON, "extension not UTF-8": notUTF8} {
		if err := Check(ev); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: Check gives %v, want ErrRejected", name, err)
		}
		if _, err := Encode(ev, "a.b", Structured, nil); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: Encode gives %v, want ErrRejected", name, err)
		}
	}
	for _, ev := range []*event.Event{rgwEvent(t, "1713693798.430517.a6002322"), rgwEvent(t, "ünï")} {
		if err := Check(ev); err != nil {
			t.Fatalf("Check(%s): %v", ev.ID(), err)
		}
		for _, enc := range []Encoding{Structured, Binary} {
			h := nats.Header{"X-Extra": {"1"}}
			want, err := Encode(ev, "rgw.a.b", enc, h)
			if err != nil {
				t.Fatal(err)
			}
			got, err := EncodeChecked(ev, "rgw.a.b", enc, h)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: EncodeChecked wrote\n%+v\nEncode wrote\n%+v", ev.ID(), enc, got, want)
			}
		}
	}
}

// EncodeDataChecked checks what Encode checks of the attributes, and leaves
// the data to whoever vouched for it; for a good event it writes the
// message Encode writes.
func TestEncodeDataChecked(t *testing.T) {
	noID := rgwEvent(t, "")
	notUTF8 := rgwEvent(t, "id-3")
	notUTF8.SetExtension("objectkey", "a\xffb")
	for name, ev := range map[string]*event.Event{"invalid event": noID, "extension not UTF-8": notUTF8} {
		if _, err := EncodeDataChecked(ev, "a.b", Structured, nil); !errors.Is(err, ErrRejected) {
			t.Errorf("%s: EncodeDataChecked gives %v, want ErrRejected", name, err)
		}
	}
	good := rgwEvent(t, "id-4")
	for _, enc := range []Encoding{Structured, Binary} {
		want, err := Encode(good, "rgw.a.b", enc, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := EncodeDataChecked(good, "rgw.a.b", enc, nil)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("%s: EncodeDataChecked wrote\n%+v (%v)\nEncode wrote\n%+v", enc, got, err, want)
		}
	}
	// The data is not read: the caller vouched for it.
	vouched := rgwEvent(t, "id-5")
	vouched.DataEncoded = []byte(`{"truncated":`)
	if _, err := EncodeDataChecked(vouched, "a.b", Binary, nil); err != nil {
		t.Errorf("data read again: %v", err)
	}
}
