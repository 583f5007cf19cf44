package rgw

import (
	"reflect"
	"strings"
	"testing"

	"github.com/rgw-nats/rgw-nats/samples/events"
)

// TestScanTakesCommonRecords: the one-pass decoder handles what RGW sends
// (every captured payload that is a plain envelope with integer sizes) and
// decodes it exactly as encoding/json does. Without this test the fast path
// could give up on everything and FuzzDecode would still pass.
func TestScanTakesCommonRecords(t *testing.T) {
	taken := 0
	for name, body := range events.All() {
		recs, ok := scanEnvelope(body)
		slow, err := decodeEnvelope(body)
		if !ok {
			if name != "docs-example-lenient.json" { // its size is a string
				t.Errorf("%s: not taken by the fast path", name)
			}
			continue
		}
		taken++
		if err != nil {
			t.Fatalf("%s: fast path accepts what encoding/json rejects: %v", name, err)
		}
		if !reflect.DeepEqual(recs, slow) {
			t.Fatalf("%s: paths differ:\n%+v\n%+v", name, recs, slow)
		}
	}
	if taken < 5 {
		t.Fatalf("only %d fixtures taken by the fast path", taken)
	}
}

// TestScanGivesUp: input where a one-pass reading could differ from
// encoding/json goes to encoding/json, and Decode's answer stays the same.
func TestScanGivesUp(t *testing.T) {
	rec := baseRecord
	cases := map[string]string{
		"member in another case":      `{"Records":[` + strings.Replace(rec, `"eventName"`, `"EventName"`, 1) + `]}`,
		"repeated member":             `{"Records":[` + strings.Replace(rec, `"eventName":`, `"eventName":"x","eventName":`, 1) + `]}`,
		"null":                        `{"Records":[` + strings.Replace(rec, `"versionId":""`, `"versionId":null`, 1) + `]}`,
		"size as a string":            `{"Records":[` + strings.Replace(rec, `"size":177`, `"size":"177"`, 1) + `]}`,
		"size with exponent":          `{"Records":[` + strings.Replace(rec, `"size":177`, `"size":1.77e2`, 1) + `]}`,
		"escaped member name":         `{"Records":[` + strings.Replace(rec, `"eventName"`, `"event\u004eame"`, 1) + `]}`,
		"records in another case":     `{"records":[` + rec + `]}`,
		"repeated Records":            `{"Records":[` + rec + `],"Records":[` + rec + `]}`,
		"no records":                  `{"Records":[]}`,
		"trailing bytes":              `{"Records":[` + rec + `]}x`,
		"deep unknown member":         `{"Records":[` + strings.Replace(rec, `"eventName"`, `"x":`+strings.Repeat("[", 40)+strings.Repeat("]", 40)+`,"eventName"`, 1) + `]}`,
		"control character in string": "{\"Records\":[" + strings.Replace(rec, `"66E42466712CA919"`, "\"6\x016\"", 1) + "]}",
	}
	for name, body := range cases {
		if _, ok := scanEnvelope([]byte(body)); ok {
			t.Errorf("%s: taken by the fast path", name)
		}
	}
	// And these it takes, decoding them as encoding/json does.
	same := map[string]string{
		"escaped value":        `{"Records":[` + strings.Replace(rec, `"66E42466712CA919"`, `"v\u00e91\n\u0000"`, 1) + `]}`,
		"unknown members":      `{"x":[1,-2.5e3,{"a":null}],"Records":[` + strings.Replace(rec, `"eventName"`, `"new":{"b":[true,false]},"eventName"`, 1) + `],"y":"z"}`,
		"etag before eTag":     `{"Records":[` + strings.Replace(rec, `"eTag":"e1"`, `"etag":"old","eTag":""`, 1) + `]}`,
		"value instead of val": `{"Records":[` + strings.Replace(rec, `"val":"blue"`, `"value":"blue","val":"red"`, 1) + `]}`,
		"whitespace":           " \n{ \"Records\" : [ " + rec + " ] } \t",
	}
	for name, body := range same {
		recs, ok := scanEnvelope([]byte(body))
		if !ok {
			t.Errorf("%s: not taken by the fast path", name)
			continue
		}
		slow, err := decodeEnvelope([]byte(body))
		if err != nil || !reflect.DeepEqual(recs, slow) {
			t.Errorf("%s: paths differ (%v):\n%+v\n%+v", name, err, recs, slow)
		}
	}
}
