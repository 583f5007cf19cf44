package function_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// The fixture most cases use: Pacific 16.2.15, PUT with metadata and tags.
const putFixture = "pacific-16.2.15/put-with-meta.json"

type want struct {
	id, typ, source, subject, bucket string
	natsSubject                      string
	data                             []byte // the raw record
}

func wantFor(t *testing.T, payload []byte) []want {
	t.Helper()
	recs, err := rgw.Decode(payload)
	if err != nil {
		t.Fatal(err)
	}
	var ws []want
	for _, r := range recs {
		id := r.EventID + "." + r.S3.ConfigurationID
		if r.EventID == "" {
			id = cloudevent.ID(&r) // derived from the bytes; tested in package cloudevent
		}
		name := r.Name()
		ws = append(ws, want{
			id: id, typ: "com.amazonaws." + name, source: "ceph:s3." + r.AWSRegion + "." + r.S3.Bucket.Name,
			subject: r.S3.Object.Key, bucket: r.S3.Bucket.Name,
			natsSubject: "rgw." + r.S3.Bucket.Name + "." + strings.ReplaceAll(name, ":", "."),
			data:        r.Raw,
		})
	}
	return ws
}

func (w want) check(t *testing.T, m *nats.Msg) {
	t.Helper()
	ev := decode(t, m)
	if m.Subject != w.natsSubject {
		t.Errorf("NATS subject %q, want %q", m.Subject, w.natsSubject)
	}
	if got := m.Header.Get(nats.MsgIdHdr); got != w.id {
		t.Errorf("Nats-Msg-Id %q, want %q", got, w.id)
	}
	for _, c := range [][2]string{
		{ev.ID(), w.id}, {ev.Type(), w.typ}, {ev.Source(), w.source}, {ev.Subject(), w.subject},
		{ev.DataContentType(), "application/json"}, {ev.SpecVersion(), "1.0"},
		{fmt.Sprint(ev.Extensions()["bucket"]), w.bucket}, {fmt.Sprint(ev.Extensions()["objectkey"]), w.subject},
	} {
		if c[0] != c[1] {
			t.Errorf("got %q, want %q", c[0], c[1])
		}
	}
	if ev.Time().IsZero() {
		t.Error("no time")
	}
	if !bytes.Equal(ev.Data(), w.data) {
		t.Errorf("data is not the record as RGW sent it:\n got %s\nwant %s", ev.Data(), w.data)
	}
}

// ceHeaders are the headers of a binary-mode CloudEvent.
func ceHeaders(kv ...string) map[string]string {
	h := map[string]string{"Ce-Specversion": "1.0"}
	for i := 0; i+1 < len(kv); i += 2 {
		h[kv[i]] = kv[i+1]
	}
	return h
}

func structured(t *testing.T, id, typ, source string, data []byte) []byte {
	t.Helper()
	ev := event.New()
	ev.SetID(id)
	ev.SetType(typ)
	ev.SetSource(source)
	ev.DataEncoded = data
	ev.SetDataContentType("application/json")
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestIngressModes sends the same notifications in every way they arrive and
// checks the CloudEvent on NATS, in both CloudEvents NATS bindings and both
// NATS modes.
func TestIngressModes(t *testing.T) {
	envelope := fixture(t, putFixture)
	other := fixture(t, "reef-put-capture.json")
	record := wantFor(t, envelope)[0].data
	both := []byte(`{"Records":[` + string(record) + `,` + string(wantFor(t, other)[0].data) + `]}`)

	type tc struct {
		name   string
		header map[string]string
		body   []byte
		want   []want
	}
	cases := []tc{
		{"raw RGW POST", map[string]string{"Content-Type": "application/json"}, envelope, wantFor(t, envelope)},
		{"raw without Content-Type (Octopus)", nil, envelope, wantFor(t, envelope)},
		{"raw with two records", map[string]string{"Content-Type": "application/json"}, both, wantFor(t, both)},
		{"binary CloudEvent from RGW cloudevents=true", ceHeaders(
			"Ce-Type", "com.amazonaws.ObjectCreated:Put", "Ce-Id", "req.host", "Ce-Source", "ceph:s3..nb-main",
			"Ce-Time", "2026-11-24T21:14:06.482503000Z", "Ce-Subject", "docs/report.txt", "Content-Type", "application/json"),
			envelope, wantFor(t, envelope)},
		{"binary CloudEvent from KafkaSource", ceHeaders(
			"Ce-Type", "dev.knative.kafka.event", "Ce-Id", "partition:0/offset:42",
			"Ce-Source", "/apis/v1/namespaces/ceph/kafkasources/rgw#bucket-events", "Ce-Subject", "partition:0#42"),
			envelope, wantFor(t, envelope)},
		{"structured CloudEvent wrapping an envelope", map[string]string{"Content-Type": "application/cloudevents+json; charset=utf-8"},
			structured(t, "k1", "dev.knative.kafka.event", "/kafka", envelope), wantFor(t, envelope)},
		{"structured CloudEvent from CephSource (single record)", map[string]string{"Content-Type": "application/cloudevents+json"},
			structured(t, "c1", "com.amazonaws.ObjectCreated:Put", "ceph:s3..nb-main", record), wantFor(t, envelope)},
		{"batch of two", map[string]string{"Content-Type": "application/cloudevents-batch+json"},
			[]byte("[" + string(structured(t, "b1", "x", "/x", envelope)) + "," + string(structured(t, "b2", "x", "/x", other)) + "]"),
			append(wantFor(t, envelope), wantFor(t, other)...)},
	}

	for _, ceMode := range []binding.Encoding{binding.Structured, binding.Binary} {
		for _, natsMode := range []natsout.Mode{natsout.Core, natsout.JetStream} {
			t.Run(ceMode.String()+"/"+natsMode.String(), func(t *testing.T) {
				s := runNATS(t)
				cfg := testConfig(t, s.ClientURL())
				cfg.CEMode, cfg.NATSMode = ceMode, natsMode
				a := startAdapter(t, cfg, s.ClientURL())
				ch := a.subscribe(t, "rgw.>")
				for _, c := range cases {
					t.Run(c.name, func(t *testing.T) {
						resp := post(t, a.url+"/rgw/endpoint?src=lab", c.header, c.body)
						if resp.code != http.StatusAccepted || resp.body != "" {
							t.Fatalf("answer %d %q, want 202 and an empty body", resp.code, resp.body)
						}
						msgs := receive(t, ch, len(c.want))
						for i, w := range c.want {
							w.check(t, msgs[i])
						}
						none(t, ch)
					})
				}
				t.Run("other CloudEvent passes through unchanged", func(t *testing.T) {
					all := a.subscribe(t, ">")
					body := structured(t, "p1", "com.example.thing", "/elsewhere", []byte(`{"hello":"world"}`))
					resp := post(t, a.url, map[string]string{"Content-Type": "application/cloudevents+json"}, body)
					if resp.code != http.StatusAccepted {
						t.Fatalf("answer %d %q", resp.code, resp.body)
					}
					ev := decode(t, receive(t, all, 1)[0])
					if ev.ID() != "p1" || ev.Type() != "com.example.thing" || ev.Source() != "/elsewhere" || string(ev.Data()) != `{"hello":"world"}` {
						t.Errorf("changed on the way: %s", ev)
					}
				})
			})
		}
	}
}

// TestEveryFixtureDelivers posts every shipped RGW payload as RGW would, with
// the headers RGW sent where they were captured.
func TestEveryFixtureDelivers(t *testing.T) {
	s := runNATS(t)
	a := startAdapter(t, testConfig(t, s.ClientURL()), s.ClientURL())
	ch := a.subscribe(t, "rgw.>")
	for _, name := range fixtures(t) {
		t.Run(name, func(t *testing.T) {
			body := fixture(t, name)
			resp := post(t, a.url, map[string]string{"Content-Type": "application/json"}, body)
			if resp.code != http.StatusAccepted {
				t.Fatalf("answer %d %q", resp.code, resp.body)
			}
			ws := wantFor(t, body)
			for i, m := range receive(t, ch, len(ws)) {
				ws[i].check(t, m)
			}
		})
	}
}

// TestBadInput: the right 4xx with a one-line reason, and nothing published.
// TestBadInput checks the answers to bad input with the dead letter off:
// the request is refused with a one-line reason and nothing is published.
// (With the dead letter on, RGW's raw POSTs are dead-lettered instead:
// TestOutcomeTable.)
func TestBadInput(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.DeadLetter = false
	cfg.MaxBodyBytes = 4096
	cfg.AuthUsername, cfg.AuthPassword, cfg.AuthToken = "rgw", "s3cret", "tok3n"
	a := startAdapter(t, cfg, s.ClientURL())
	ch := a.subscribe(t, "rgw.>")
	good := fixture(t, putFixture)
	basic := func(u, p string) map[string]string {
		req, _ := http.NewRequest("POST", "/", nil)
		req.SetBasicAuth(u, p)
		return map[string]string{"Authorization": req.Header.Get("Authorization"), "Content-Type": "application/json"}
	}
	auth := basic("rgw", "s3cret")
	with := func(kv ...string) map[string]string {
		h := map[string]string{"Authorization": auth["Authorization"]}
		for i := 0; i+1 < len(kv); i += 2 {
			h[kv[i]] = kv[i+1]
		}
		return h
	}
	big := []byte(`{"Records":[` + strings.Repeat(" ", 5000) + `]}`)

	cases := []struct {
		name   string
		method string
		header map[string]string
		body   []byte
		code   int
		reason string
	}{
		{"not JSON", "POST", with(), []byte("hello"), 400, "not an RGW notification"},
		{"JSON array", "POST", with(), []byte(`[1,2]`), 400, "not an RGW notification"},
		{"no Records", "POST", with(), []byte(`{"foo":1}`), 400, `no "Records"`},
		{"Records not an array", "POST", with(), []byte(`{"Records":{}}`), 400, "not an RGW notification"},
		{"empty Records", "POST", with(), []byte(`{"Records":[]}`), 400, "no records"},
		{"record without bucket", "POST", with(), []byte(`{"Records":[{"eventName":"ObjectCreated:Put"}]}`), 400, "no s3.bucket.name"},
		{"record not an object", "POST", with(), []byte(`{"Records":[42]}`), 400, "not a JSON object"},
		{"empty body", "POST", with(), nil, 400, "not an RGW notification"},
		{"too large", "POST", with(), big, 413, "MAX_BODY_BYTES"},
		{"XML", "POST", with("Content-Type", "application/xml"), good, 415, "unsupported Content-Type"},
		{"CloudEvent without id", "POST", with("Content-Type", "application/cloudevents+json"), []byte(`{"specversion":"1.0","type":"t","source":"/s"}`), 400, "invalid CloudEvent"},
		{"structured CloudEvent not JSON", "POST", with("Content-Type", "application/cloudevents+json"), []byte(`{`), 400, "invalid CloudEvent"},
		{"binary CloudEvent without type", "POST", with("Ce-Specversion", "1.0", "Ce-Id", "1", "Ce-Source", "/s"), good, 400, "invalid CloudEvent"},
		{"empty batch", "POST", with("Content-Type", "application/cloudevents-batch+json"), []byte(`[]`), 400, "empty CloudEvents batch"},
		{"batch not an array", "POST", with("Content-Type", "application/cloudevents-batch+json"), []byte(`{}`), 400, "invalid CloudEvent"},
		{"no credentials", "POST", map[string]string{"Content-Type": "application/json"}, good, 401, "credentials"},
		{"wrong password", "POST", basic("rgw", "guess"), good, 401, "credentials"},
		{"wrong user", "POST", basic("admin", "s3cret"), good, 401, "credentials"},
		{"wrong token", "POST", map[string]string{"Authorization": "Bearer nope"}, good, 401, "credentials"},
		{"GET", "GET", with(), nil, 405, "not allowed"},
		{"PUT", "PUT", with(), good, 405, "not allowed"},
		{"DELETE", "DELETE", with(), nil, 405, "not allowed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, a.url+"/", bytes.NewReader(c.body))
			for k, v := range c.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			var body bytes.Buffer
			body.ReadFrom(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != c.code {
				t.Fatalf("status %d %q, want %d", resp.StatusCode, body.String(), c.code)
			}
			line := body.String()
			if !strings.Contains(line, c.reason) || strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
				t.Errorf("reason %q: want one line containing %q", line, c.reason)
			}
			if c.code == 401 && resp.Header.Get("WWW-Authenticate") == "" {
				t.Error("401 without WWW-Authenticate")
			}
			if c.code == 405 && resp.Header.Get("Allow") == "" {
				t.Error("405 without Allow")
			}
			none(t, ch)
		})
	}

	t.Run("chunked body too large", func(t *testing.T) {
		req, _ := http.NewRequest("POST", a.url, struct{ *bytes.Reader }{bytes.NewReader(big)})
		req.Header = http.Header{"Authorization": {auth["Authorization"]}}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
		none(t, ch)
	})

	t.Run("good requests still pass", func(t *testing.T) {
		for _, h := range []map[string]string{auth, {"Authorization": "Bearer tok3n"}} {
			if resp := post(t, a.url, h, good); resp.code != 202 {
				t.Fatalf("status %d %q", resp.code, resp.body)
			}
			receive(t, ch, 1)
		}
	})
}

// TestRawAnswerClosesConnection: RGW gets a fresh connection per POST, so an
// adapter restart never leaves it on a dead kept-alive connection.
func TestRawAnswerClosesConnection(t *testing.T) {
	s := runNATS(t)
	a := startAdapter(t, testConfig(t, s.ClientURL()), s.ClientURL())
	resp := post(t, a.url, map[string]string{"Content-Type": "application/json"}, fixture(t, putFixture))
	if resp.code != 202 || !resp.close {
		t.Fatalf("status %d, close %v: want 202 and Connection: close", resp.code, resp.close)
	}
	ce := post(t, a.url, map[string]string{"Content-Type": "application/cloudevents+json"},
		structured(t, "k", "t", "/s", fixture(t, putFixture)))
	if ce.code != 202 || ce.close {
		t.Fatalf("CloudEvent delivery: status %d, close %v: want 202 and kept alive", ce.code, ce.close)
	}
}

// TestJetStreamDeduplicatesRedelivery: RGW resends records it already
// delivered; the stream keeps one copy.
func TestJetStreamDeduplicatesRedelivery(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.NATSMode = natsout.JetStream
	a := startAdapter(t, cfg, s.ClientURL())
	body := fixture(t, putFixture)
	lenient := fixture(t, "docs-example-lenient.json") // empty eventId: derived id
	for range 3 {
		for _, b := range [][]byte{body, lenient} {
			if resp := post(t, a.url, nil, b); resp.code != 202 {
				t.Fatalf("status %d %q", resp.code, resp.body)
			}
		}
	}
	if n := streamMsgs(t, a.nc, cfg.NATSStream); n != 2 {
		t.Fatalf("stream holds %d messages, want 2", n)
	}
}

// TestNATSOutage: while NATS is down nothing gets a 2xx, the answer is 503
// with Retry-After and readiness drops; once NATS is back the same process
// delivers again.
func TestNATSOutage(t *testing.T) {
	for _, mode := range []natsout.Mode{natsout.Core, natsout.JetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			port, store := freePort(t), t.TempDir()
			s := runNATSOn(t, port, store)
			cfg := testConfig(t, s.ClientURL())
			cfg.NATSMode = mode
			cfg.NATSAckTimeout = 500 * time.Millisecond
			a := startAdapter(t, cfg, s.ClientURL())
			body := fixture(t, putFixture)
			if resp := post(t, a.url, nil, body); resp.code != 202 {
				t.Fatalf("before the outage: %d %q", resp.code, resp.body)
			}
			s.Shutdown()
			s.WaitForShutdown()

			for i := range 5 {
				resp := post(t, a.url, nil, body)
				if resp.code != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
					t.Fatalf("request %d during the outage: %d %q (Retry-After %q), want 503 with Retry-After",
						i, resp.code, resp.body, resp.header.Get("Retry-After"))
				}
				// Either the fast path (not connected) or a publish that
				// found the connection gone.
				if !strings.Contains(strings.ToLower(resp.body), "nats unavailable") {
					t.Errorf("reason %q", resp.body)
				}
			}
			if ok, _ := a.f.Ready(context.Background()); ok {
				t.Error("ready while NATS is down")
			}
			if ok, _ := a.f.Alive(context.Background()); !ok {
				t.Error("not alive during a NATS outage: Kubernetes would restart the pod for nothing")
			}

			s2 := runNATSOn(t, port, store)
			waitReady(t, a.f)
			obs, err := nats.Connect(s2.ClientURL())
			if err != nil {
				t.Fatal(err)
			}
			defer obs.Close()
			ch := make(chan *nats.Msg, 8)
			sub, _ := obs.ChanSubscribe("rgw.>", ch)
			defer sub.Unsubscribe()
			obs.Flush()
			if resp := post(t, a.url, nil, body); resp.code != 202 {
				t.Fatalf("after the restart: %d %q", resp.code, resp.body)
			}
			wantFor(t, body)[0].check(t, receive(t, ch, 1)[0])
		})
	}
}

// TestNotStarted: a function that has not started answers 503, not 2xx.
func TestNotStarted(t *testing.T) {
	f := function.New()
	srv := httptest.NewServer(http.HandlerFunc(f.Handle))
	defer srv.Close()
	resp := post(t, srv.URL, nil, fixture(t, putFixture))
	if resp.code != 503 || resp.header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q", resp.code, resp.header.Get("Retry-After"))
	}
	if ok, _ := f.Ready(context.Background()); ok {
		t.Fatal("ready before Start")
	}
}

// TestReplyMode: with REPLY=true a Knative delivery is answered with the
// published event, its type suffixed so the Trigger does not match it again;
// RGW's raw POSTs still get 202.
func TestReplyMode(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.Reply = true
	a := startAdapter(t, cfg, s.ClientURL())
	ch := a.subscribe(t, "rgw.>")
	body := fixture(t, putFixture)
	w := wantFor(t, body)[0]

	req, _ := http.NewRequest("POST", a.url, bytes.NewReader(body))
	for k, v := range ceHeaders("Ce-Type", "dev.knative.kafka.event", "Ce-Id", "partition:0/offset:1", "Ce-Source", "/kafka") {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 with the event", resp.StatusCode)
	}
	ev, err := cehttpEvent(resp)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type() != w.typ+".nats" || ev.ID() != w.id || !bytes.Equal(ev.Data(), w.data) {
		t.Errorf("reply %s", ev)
	}
	w.check(t, receive(t, ch, 1)[0])

	if r := post(t, a.url, nil, body); r.code != 202 || r.body != "" {
		t.Fatalf("raw POST in reply mode: %d %q", r.code, r.body)
	}
}

// TestJetStreamWithoutStream: the stream is the operator's; when it does not
// exist nothing can acknowledge the event (nor store its dead letter), so
// the service is not ready and the answer is 503, never 2xx.
func TestJetStreamWithoutStream(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.NATSMode, cfg.NATSStreamCreate = natsout.JetStream, false
	cfg.NATSAckTimeout = 300 * time.Millisecond
	a := startAdapterUnready(t, cfg, s.ClientURL())
	testutil.WaitFor(t, func() bool { return strings.Contains(a.log.String(), "not ready: no JetStream stream captures") })
	resp := post(t, a.url, nil, fixture(t, putFixture))
	if resp.code != http.StatusServiceUnavailable || !strings.Contains(resp.body, "not ready: no JetStream stream captures rgwnats.deadletter.>") {
		t.Fatalf("answer %d %q, want 503", resp.code, resp.body)
	}
}
