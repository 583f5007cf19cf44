package ingress_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

func binaryHeader(contentType, source string) ingress.Header {
	h := ingress.Header{
		"Ce-Specversion": {"1.0"}, "Ce-Id": {"partition:0/offset:1"},
		"Ce-Type": {"dev.knative.kafka.event"}, "Ce-Source": {source},
	}
	if contentType != "" {
		h["Content-Type"] = []string{contentType}
	}
	return h
}

func structured(data string) []byte {
	return []byte(`{"specversion":"1.0","id":"s1","type":"t","source":"/s","datacontenttype":"application/json","data":` + data + `}`)
}

// TestBadInputIsInvalidInEveryMode: whatever can never succeed is bad input,
// classified as such (ErrInvalid) in every mode, never an error a retry could
// fix. Each case was answered 500 or 202 before the ingress moved here.
func TestBadInputIsInvalidInEveryMode(t *testing.T) {
	put := events.Read("reef-put-capture.json")
	badKey := strings.Replace(string(put), "notification.json", "notif\xff\xfe.json", 1)
	badMember := strings.Replace(string(put), `"eventName"`, "\"event\xffName\"", 1)
	kafka := "/apis/v1/namespaces/ceph/kafkasources/rgw#events"
	cases := []struct {
		name   string
		header ingress.Header
		body   string
		reason string
	}{
		{"binary, data declared JSON is not", binaryHeader("application/json", kafka), "not json", "not valid JSON"},
		{"binary, truncated envelope", binaryHeader("application/json", kafka), `{"Records":[`, "not valid JSON"},
		{"binary, 100000 nested arrays", binaryHeader("application/json", kafka), strings.Repeat("[", 100000), "not valid JSON"},
		{"binary, no content type, not JSON", binaryHeader("", kafka), "{oops", "not valid JSON"},
		{"binary wrapping empty Records", binaryHeader("application/json", kafka), `{"Records":[]}`, "no records"},
		{"structured wrapping empty Records", ingress.Header{"Content-Type": {"application/cloudevents+json"}}, string(structured(`{"Records":[]}`)), "no records"},
		{"raw empty Records", ingress.Header{"Content-Type": {"application/json"}}, `{"Records":[]}`, "no records"},
		{"raw, object key not UTF-8", ingress.Header{"Content-Type": {"application/json"}}, badKey, "UTF-8"},
		{"raw, member name not UTF-8", ingress.Header{"Content-Type": {"application/json"}}, badMember, "UTF-8"},
		{"binary, key not UTF-8", binaryHeader("application/json", kafka), badKey, "UTF-8"},
		{"structured, key not UTF-8", ingress.Header{"Content-Type": {"application/cloudevents+json"}}, string(structured(badKey)), "UTF-8"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := ingress.Decode(c.header, []byte(c.body), cloudevent.Options{})
			if !errors.Is(err, ingress.ErrInvalid) {
				t.Fatalf("err %v (events %d), want ErrInvalid", err, len(req.Events))
			}
			if !strings.Contains(err.Error(), c.reason) || strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("reason %q: want one line containing %q", err, c.reason)
			}
		})
	}
}

// TestMediaTypesAgree: the one "is this JSON" answer. text/plain data is
// not JSON anywhere: a CloudEvent carrying text is passed through as text,
// not decoded as a notification, and the encoder keeps it a string.
func TestMediaTypesAgree(t *testing.T) {
	for ct, want := range map[string]bool{
		"": true, "application/json": true, "Application/JSON; charset=utf-8": true, "text/json": true,
		"application/cloudevents+json": true, "application/vnd.x+json": true,
		"text/plain": false, "application/xml": false, "application/octet-stream": false,
	} {
		if got := binding.IsJSON(ct); got != want {
			t.Errorf("IsJSON(%q) = %v", ct, got)
		}
	}
	rec := events.Read("reef-put-capture.json")
	req, err := ingress.Decode(binaryHeader("text/plain", "/some/source"), rec, cloudevent.Options{})
	if err != nil || len(req.Events) != 1 {
		t.Fatalf("text/plain CloudEvent: %v", err)
	}
	if ev := req.Events[0]; ev.ID() != "partition:0/offset:1" || ev.DataContentType() != "text/plain" {
		t.Errorf("text/plain data was taken for a notification: %s %s", ev.ID(), ev.DataContentType())
	}
	m, err := binding.Encode(&req.Events[0], "x.y", binding.Structured, nil)
	if err != nil || !strings.Contains(string(m.Data), `"data":"{`) {
		t.Errorf("structured encoding of text data: %v %s", err, m.Data)
	}
}

// TestFromRGW: only RGW's own requests are dead-lettered when bad; a
// Knative sender gets a 4xx and uses its own dead-letter sink.
func TestFromRGW(t *testing.T) {
	for _, c := range []struct {
		h    ingress.Header
		want bool
	}{
		{ingress.Header{"Content-Type": {"application/json"}}, true},
		{ingress.Header{}, true},
		{binaryHeader("application/json", "ceph:s3.default.photos"), true},
		{binaryHeader("application/json", "/apis/v1/namespaces/ceph/kafkasources/rgw#t"), false},
		{ingress.Header{"Content-Type": {"application/cloudevents+json"}}, false},
	} {
		req, _ := ingress.Decode(c.h, []byte("{"), cloudevent.Options{})
		if req.FromRGW != c.want {
			t.Errorf("%v: FromRGW %v", c.h, req.FromRGW)
		}
	}
}

// TestRGWBinaryWithRawKeyHeader: Tentacle's cloudevents=true push carries the
// object key raw in Ce-Subject, so a key with a '%' makes a header no
// percent-decoding accepts. From RGW the records decide; from anyone else
// such a header is still bad input.
func TestRGWBinaryWithRawKeyHeader(t *testing.T) {
	body := []byte(strings.Replace(string(events.Read("tentacle-20.2.4/cloudevents-put.json")),
		`"key":"ce.txt"`, `"key":"pct/100%.txt"`, 1))
	header := func(source string) ingress.Header {
		return ingress.Header{
			"Ce-Specversion": {"1.0"}, "Ce-Type": {"com.amazonaws.ObjectCreated:Put"},
			"Ce-Time": {"2026-12-01T21:25:38.159631311Z"}, "Ce-Id": {"cdbeaa60.4117.5651020069868768041.4117-default-default"},
			"Ce-Source": {source}, "Ce-Subject": {"pct/100%.txt"}, "Content-Type": {"application/json"},
		}
	}
	for _, c := range []struct {
		name, source string
		body         []byte
		ok           bool
	}{
		{"RGW, a record", "ceph:s3.default.nb-ce", body, true},
		{"RGW, no record", "ceph:s3.default.nb-ce", []byte(`{"Records":[]}`), false},
		{"not RGW", "/apis/v1/namespaces/ceph/kafkasources/rgw#t", body, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, err := ingress.Decode(header(c.source), c.body, cloudevent.Options{})
			if !c.ok {
				if !errors.Is(err, ingress.ErrInvalid) {
					t.Fatalf("err %v, want ErrInvalid", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Mode != ingress.Binary || !req.FromRGW || len(req.Events) != 1 {
				t.Fatalf("mode %v, FromRGW %v, %d events", req.Mode, req.FromRGW, len(req.Events))
			}
			ev := req.Events[0]
			if ev.Subject() != "pct/100%.txt" || ev.ID() != "1796160338.161069.8dd5067d1c62a18c414da9ef1f1dbde6.ce-created" {
				t.Errorf("subject %q, id %q: not the record's", ev.Subject(), ev.ID())
			}
			if err := binding.Check(&ev); err != nil {
				t.Error(err)
			}
		})
	}
}
