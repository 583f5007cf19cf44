package function_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	pipeline "github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// ingressMode builds a request carrying one RGW envelope the way each sender
// does.
type ingressMode struct {
	name    string
	fromRGW bool // RGW itself sends it: bad input is dead-lettered
	build   func(envelope []byte) (map[string]string, []byte)
	// bad is a body of this mode that can never decode.
	bad func() (map[string]string, []byte)
}

var ingressModes = []ingressMode{
	{"raw", true,
		func(env []byte) (map[string]string, []byte) {
			return map[string]string{"Content-Type": "application/json"}, env
		},
		func() (map[string]string, []byte) {
			return map[string]string{"Content-Type": "application/json"}, []byte(`{"Records":[]}`)
		}},
	{"binary from RGW", true,
		func(env []byte) (map[string]string, []byte) {
			return map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": "req.zone",
				"Ce-Type": "com.amazonaws.ObjectCreated:Put", "Ce-Source": "ceph:s3.default.nb-main"}, env
		},
		func() (map[string]string, []byte) {
			return map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": "req.zone",
				"Ce-Type": "com.amazonaws.ObjectCreated:Put", "Ce-Source": "ceph:s3.default.nb-main"}, []byte(`{"Records":[`)
		}},
	{"binary from KafkaSource", false,
		func(env []byte) (map[string]string, []byte) {
			return map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": "partition:0/offset:7",
				"Ce-Type": "dev.knative.kafka.event", "Ce-Source": "/apis/v1/namespaces/ceph/kafkasources/rgw#t"}, env
		},
		func() (map[string]string, []byte) {
			return map[string]string{"Content-Type": "application/json", "Ce-Specversion": "1.0", "Ce-Id": "partition:0/offset:7",
				"Ce-Type": "dev.knative.kafka.event", "Ce-Source": "/apis/v1/namespaces/ceph/kafkasources/rgw#t"}, []byte("not json")
		}},
	{"structured", false,
		func(env []byte) (map[string]string, []byte) {
			return map[string]string{"Content-Type": "application/cloudevents+json"}, ceJSON(env)
		},
		func() (map[string]string, []byte) {
			return map[string]string{"Content-Type": "application/cloudevents+json"}, ceJSON([]byte(`{"Records":[]}`))
		}},
	{"batch", false,
		func(env []byte) (map[string]string, []byte) {
			return map[string]string{"Content-Type": "application/cloudevents-batch+json"}, append(append([]byte("["), ceJSON(env)...), ']')
		},
		func() (map[string]string, []byte) {
			return map[string]string{"Content-Type": "application/cloudevents-batch+json"}, []byte("[]")
		}},
}

func ceJSON(data []byte) []byte {
	return []byte(`{"specversion":"1.0","id":"k1","type":"dev.knative.kafka.event","source":"/k","datacontenttype":"application/json","data":` + string(data) + `}`)
}

// TestOutcomeTable runs every failure class through every ingress mode, with
// the dead letter on and off, against a real nats-server and a real HTTP
// listener, and checks the status code, the body, what was published, what
// was dead-lettered and that exactly one log line tells of a failure.
func TestOutcomeTable(t *testing.T) {
	type want struct {
		code      int // dead letter on; 0: 202 from RGW, refused from others
		codeOff   int // dead letter off
		published int // events on rgw.>
		reason    pipeline.Reason
		refused   int // see code
	}
	cases := []struct {
		name   string
		script string
		setup  func(*function.Config)
		bad    bool // send the mode's undecodable body
		posts  int  // how often the request is sent (the last answer counts)
		want   want
	}{
		{name: "published", want: want{202, 202, 1, pipeline.ReasonNone, 0}},
		{name: "dropped by Lua", script: `function transform(ev) return nil end`, want: want{202, 202, 0, pipeline.ReasonNone, 0}},
		{name: "decode", bad: true, want: want{0, 400, 0, pipeline.ReasonDecode, 400}},
		// Every mode's request is over 512 bytes; RGW's are dead-lettered
		// truncated (RGW would retry a 413 forever).
		{name: "too large", setup: func(c *function.Config) { c.MaxBodyBytes = 512 }, want: want{0, 413, 0, pipeline.ReasonTooLarge, 413}},
		{name: "script error", script: `function transform(ev) error("boom") end`, want: want{202, 422, 0, pipeline.ReasonScript, 0}},
		{name: "unpublishable output", script: `function transform(ev) ev.ext.note = "\255 not UTF-8" return ev end`,
			want: want{202, 422, 0, pipeline.ReasonOutput, 0}},
		{name: "Lua limit", script: `function transform(ev) local s = ("x"):rep(1024) for i = 1, 12 do s = s .. s end return ev end`,
			want: want{202, 422, 0, pipeline.ReasonLimit, 0}},
		{name: "request bytes limit", setup: func(c *function.Config) { c.MaxRequestBytes = 64 }, want: want{202, 422, 0, pipeline.ReasonLimit, 0}},
		{name: "no stream captures the subject", script: `function transform(ev) ev.nats.subject = "Bucket_Notification" return ev end`,
			setup: func(c *function.Config) { c.NATSMode = natsout.JetStream }, want: want{202, 422, 0, pipeline.ReasonNoStream, 0}},
		{name: "Lua deadline", script: `function transform(ev) while true do end end`,
			setup: func(c *function.Config) { c.LuaTimeout, c.PoisonAttempts = 20*time.Millisecond, 0 },
			want:  want{503, 503, 0, pipeline.ReasonTimeout, 0}},
		{name: "poison: the deadline again and again", script: `function transform(ev) while true do end end`, posts: 2,
			setup: func(c *function.Config) { c.LuaTimeout, c.PoisonAttempts = 20*time.Millisecond, 2 },
			want:  want{202, 422, 0, pipeline.ReasonPoison, 0}},
		{name: "duplicate", posts: 2, setup: func(c *function.Config) { c.DedupWindow = time.Minute }, want: want{202, 202, 1, pipeline.ReasonNone, 0}},
	}
	for _, c := range cases {
		for _, dl := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s/deadletter=%v", c.name, dl), func(t *testing.T) {
				s := runNATS(t)
				cfg := testConfig(t, s.ClientURL())
				cfg.DeadLetter = dl
				if c.script != "" {
					cfg.LuaScript = writeScript(t, c.script)
				}
				if c.setup != nil {
					c.setup(&cfg)
				}
				a := startAdapter(t, cfg, s.ClientURL())
				events := a.subscribe(t, "rgw.>")
				letters := a.subscribe(t, "rgwnats.deadletter.>")
				for i, m := range ingressModes {
					t.Run(m.name, func(t *testing.T) {
						// Each mode its own event id: poison and duplicate
						// counts must not carry over from another mode.
						env := []byte(strings.Replace(string(fixture(t, putFixture)), `"eventId":"1795554846`, fmt.Sprintf(`"eventId":"%d`, 1795554846+i), 1))
						h, body := m.build(env)
						if c.bad {
							h, body = m.bad()
						}
						code := c.want.code
						if !dl {
							code = c.want.codeOff
						} else if code == 0 {
							code = map[bool]int{true: 202, false: c.want.refused}[m.fromRGW]
						}
						deadLettered := dl && code == 202 && c.want.reason != pipeline.ReasonNone
						warnBefore := failureLines(a.log.String())
						var resp response
						for range max(c.posts, 1) {
							resp = post(t, a.url, h, body)
						}
						if resp.code != code {
							t.Fatalf("status %d %q, want %d", resp.code, resp.body, code)
						}
						word := c.want.reason.String()
						switch {
						case c.bad:
							word = "invalid request"
						case c.want.reason == pipeline.ReasonTooLarge:
							word = "MAX_BODY_BYTES"
						}
						if code/100 != 2 && (strings.Count(resp.body, "\n") != 1 || !strings.Contains(resp.body, word)) {
							t.Errorf("body %q: want one line naming %q", resp.body, word)
						}
						if code == 503 && resp.header.Get("Retry-After") == "" {
							t.Error("503 without Retry-After")
						}
						got := receive(t, events, c.want.published)
						none(t, events)
						for _, msg := range got {
							decode(t, msg)
						}
						if deadLettered {
							dlm := receive(t, letters, 1)[0]
							if c.want.reason == pipeline.ReasonTooLarge {
								if want := fmt.Sprintf("512 of %d", len(body)); dlm.Header.Get(pipeline.HeaderTruncated) != want {
									t.Errorf("%s %q, want %q", pipeline.HeaderTruncated, dlm.Header.Get(pipeline.HeaderTruncated), want)
								}
								body = body[:512]
							}
							checkDeadLetter(t, dlm, body, h, c.want.reason)
						}
						none(t, letters)
						// One line per failed request; a dead letter is one
						// line too (the event did fail); success is silent.
						wantLines := max(c.posts, 1)
						switch {
						case c.want.reason == pipeline.ReasonNone:
							wantLines = 0
						case c.name == "poison: the deadline again and again":
							wantLines = 2 // the first attempt's 503, then the dead letter (or 422)
						}
						if n := failureLines(a.log.String()) - warnBefore; n != wantLines {
							t.Errorf("%d warning lines, want %d:\n%s", n, wantLines, a.log.String())
						}
					})
				}
			})
		}
	}
}

// failureLines counts the log lines that tell of a failed request (the
// start-up's and the script loads' warnings are not about requests).
func failureLines(log string) int {
	return strings.Count(log, `msg="request failed"`) + strings.Count(log, "msg=dead-lettered")
}

func checkDeadLetter(t *testing.T, m *nats.Msg, body []byte, h map[string]string, reason pipeline.Reason) {
	t.Helper()
	if string(m.Data) != string(body) {
		t.Errorf("dead letter payload %q, want the request body byte for byte", m.Data)
	}
	if got := m.Header.Get(pipeline.HeaderReason); got != reason.String() {
		t.Errorf("%s %q, want %q", pipeline.HeaderReason, got, reason)
	}
	if m.Header.Get(pipeline.HeaderError) == "" {
		t.Errorf("no %s", pipeline.HeaderError)
	}
	if ct := h["Content-Type"]; m.Header.Get("Content-Type") != ct {
		t.Errorf("Content-Type %q, want the request's %q", m.Header.Get("Content-Type"), ct)
	}
	if id := h["Ce-Id"]; id != "" && m.Header.Get(pipeline.HeaderHTTPPrefix+"Ce-Id") != id {
		t.Errorf("the request's Ce-Id is not kept: %v", m.Header)
	}
	if m.Header.Get("Ce-Specversion") != "" {
		t.Error("a dead letter must not look like a binary-mode CloudEvent")
	}
	if reason == pipeline.ReasonScript && (m.Header.Get(pipeline.HeaderScript) != "transform.lua" || m.Header.Get(pipeline.HeaderLine) != "1") {
		t.Errorf("script failure without script and line: %v", m.Header)
	}
	if reason == pipeline.ReasonPoison && m.Header.Get(pipeline.HeaderAttempts) != "2" {
		t.Errorf("poison without the attempt count: %v", m.Header)
	}
	if reason != pipeline.ReasonDecode && reason != pipeline.ReasonTooLarge && m.Header.Get(pipeline.HeaderEventID) == "" {
		t.Errorf("no %s: %v", pipeline.HeaderEventID, m.Header)
	}
}

// TestRequestsDuringStart serves requests while Start runs, as the binary
// and func's scaffolding both do (the listener is up first, so probes
// answer): they get 503 until the function is ready, then 202, and the race
// detector (scripts/test.sh runs it) sees no unsynchronised state.
func TestRequestsDuringStart(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	f := function.New(function.WithConfig(cfg), function.WithLogger(testutil.Logger(t)))
	srv := httptest.NewServer(http.HandlerFunc(f.Handle))
	defer srv.Close()
	body := fixture(t, putFixture)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	codes := make([]map[int]int, 4)
	for i := range codes {
		codes[i] = map[int]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(body))
				if err != nil {
					continue
				}
				resp.Body.Close()
				codes[i][resp.StatusCode]++
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	if err := f.Start(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	defer f.Stop(context.Background())
	waitReady(t, f)
	time.Sleep(50 * time.Millisecond)
	close(stop)
	wg.Wait()
	all := map[int]int{}
	for _, c := range codes {
		for k, v := range c {
			all[k] += v
		}
	}
	if all[503] == 0 || all[202] == 0 || len(all) != 2 {
		t.Errorf("answers %v: want 503 before Start and 202 after, nothing else", all)
	}
}

// TestDeadLetterNotCaptured: in JetStream mode with an operator's stream
// that does not capture the dead-letter subject, the service is not ready,
// says why in one line (log, readiness, answer) and answers at once, never
// after an ack timeout, even with a core subscriber on the dead letters
// (`rgw-nats tail`, which kept the no-responders answer from coming: issue
// 18 saw a 5 s wait and a 503 for every bad RGW POST). Once a stream
// captures the dead letters it becomes ready by itself, and the bad POST is
// answered 202 with its dead letter stored.
func TestDeadLetterNotCaptured(t *testing.T) {
	port, store := freePort(t), t.TempDir()
	s := runNATSOn(t, port, store)
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: "ACC", Subjects: []string{"rgw.>"}}); err != nil {
		t.Fatal(err)
	}
	tail := testutil.SubscribeOn(t, nc, "rgwnats.deadletter.>")
	cfg := testConfig(t, s.ClientURL())
	cfg.NATSMode, cfg.NATSStream, cfg.NATSStreamCreate = natsout.JetStream, "ACC", false
	cfg.NATSAckTimeout = 5 * time.Second
	a := startAdapterUnready(t, cfg, s.ClientURL())
	const why = "no JetStream stream captures rgwnats.deadletter.>: its messages could not be stored"
	testutil.WaitFor(t, func() bool { return strings.Contains(a.log.String(), "not ready: "+why) })
	if ok, err := a.f.Ready(t.Context()); ok || err == nil || err.Error() != why {
		t.Errorf("Ready: %v %v, want false: %s", ok, err, why)
	}
	for _, body := range []string{"hello", `{"Records":[]}`, `{"Records":[{"eventVers`} {
		start := time.Now()
		resp := post(t, a.url, map[string]string{"Content-Type": "application/json"}, []byte(body))
		if resp.code != 503 || resp.body != "not ready: "+why+"\n" || resp.header.Get("Retry-After") == "" {
			t.Errorf("%q: answer %d %q, want 503 not ready", body, resp.code, resp.body)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("%q: answered after %v", body, d)
		}
	}
	none(t, tail)

	// Said again after a reconnect.
	s.Shutdown()
	s.WaitForShutdown()
	s = runNATSOn(t, port, store)
	testutil.WaitFor(t, func() bool { return strings.Count(a.log.String(), `msg="not ready: `+why) == 2 })
	if ok, err := a.f.Ready(t.Context()); ok || err == nil || err.Error() != why {
		t.Errorf("Ready after the reconnect: %v %v, want false: %s", ok, err, why)
	}

	// The operator adds the dead letters to the stream: ready without a
	// restart or a reconnect.
	if _, err := js.UpdateStream(t.Context(), jetstream.StreamConfig{Name: "ACC", Subjects: []string{"rgw.>", "rgwnats.deadletter.>"}}); err != nil {
		t.Fatal(err)
	}
	waitReady(t, a.f)
	resp := post(t, a.url, map[string]string{"Content-Type": "application/json"}, []byte("hello"))
	if resp.code != 202 {
		t.Fatalf("answer %d %q once the stream captures the dead letters, want 202", resp.code, resp.body)
	}
	receive(t, tail, 1)
	if n := streamMsgs(t, nc, "ACC"); n != 1 {
		t.Errorf("stream holds %d messages, want the dead letter", n)
	}
}

// TestScriptSubjectNoStreamAtLoad: a script whose literal subject no stream
// captures (Ceph's nats_adapter.lua publishes to Bucket_Notification) is
// reported when it loads, naming the subject and the stream, before any
// event fails on it; so is the new version at a reload.
func TestScriptSubjectNoStreamAtLoad(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.NATSMode = natsout.JetStream
	cfg.LuaScript = writeScript(t, `
local nats = require("nats")
function transform(ev)
  local c = nats.connect()
  c:publish("Bucket_Notification", "x")
  return ev
end`)
	a := startAdapter(t, cfg, s.ClientURL())
	testutil.WaitFor(t, func() bool {
		l := a.log.String()
		return strings.Contains(l, "no JetStream stream captures") && strings.Contains(l, "subject=Bucket_Notification") && strings.Contains(l, "stream=RGW")
	})
	os.WriteFile(cfg.LuaScript, []byte(`function transform(ev) ev.nats.subject = "elsewhere.x" return ev end`), 0o644)
	testutil.WaitFor(t, func() bool { return strings.Contains(a.log.String(), "subject=elsewhere.x") })
}

// TestStartHonoursTheEnvironmentMap: func's scaffolding hands the
// environment to Start as a map; that map is the configuration, not the
// process environment.
func TestStartHonoursTheEnvironmentMap(t *testing.T) {
	s := runNATS(t)
	t.Setenv("NATS_SUBJECT", "fromprocess.{bucket}")
	f := function.New(function.WithLogger(testutil.Logger(t)))
	if err := f.Start(t.Context(), map[string]string{"NATS_URL": s.ClientURL(), "NATS_SUBJECT": "frommap.{bucket}"}); err != nil {
		t.Fatal(err)
	}
	defer f.Stop(context.Background())
	waitReady(t, f)
	srv := httptest.NewServer(http.HandlerFunc(f.Handle))
	defer srv.Close()
	ch := testutil.Subscribe(t, s.ClientURL(), ">")
	if resp := post(t, srv.URL, map[string]string{"Content-Type": "application/json"}, fixture(t, putFixture)); resp.code != 202 {
		t.Fatalf("%d %s", resp.code, resp.body)
	}
	if m := receive(t, ch, 1)[0]; m.Subject != "frommap.nb-main" {
		t.Errorf("published on %s: the map's NATS_SUBJECT was not used", m.Subject)
	}
	bad := function.New()
	if err := bad.Start(t.Context(), map[string]string{"NATS_URL": s.ClientURL(), "NATS_MODE": "kafka"}); err == nil || !strings.Contains(err.Error(), "NATS_MODE") {
		t.Errorf("bad NATS_MODE in the map: %v, want an error naming the variable", err)
	}
}

// TestUndecodableResentOnce: RGW resends entries queued behind a failing
// one even after a 2xx; an undecodable body that was dead-lettered is not
// dead-lettered again within the duplicate window.
func TestUndecodableResentOnce(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.DedupWindow = time.Minute
	a := startAdapter(t, cfg, s.ClientURL())
	letters := a.subscribe(t, "rgwnats.deadletter.>")
	for range 3 {
		if resp := post(t, a.url, map[string]string{"Content-Type": "application/json"}, []byte(`{"Records":[]}`)); resp.code != 202 {
			t.Fatalf("%d %s", resp.code, resp.body)
		}
	}
	receive(t, letters, 1)
	none(t, letters)
}

// TestInFlightBytesBound: past MAX_INFLIGHT_BYTES of bodies being processed
// a request is refused with 503 before its body is read, and the bound is
// released when requests finish.
func TestInFlightBytesBound(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.MaxBodyBytes, cfg.MaxInFlight = 1024, 2048
	cfg.LuaScript = writeScript(t, `function transform(ev) local t0 = os.clock() while os.clock() - t0 < 0.3 do end return ev end`)
	a := startAdapter(t, cfg, s.ClientURL())
	body := fixture(t, putFixture)
	codes := make(chan int, 8)
	for range 8 {
		go func() { codes <- post(t, a.url, map[string]string{"Content-Type": "application/json"}, body).code }()
	}
	seen := map[int]int{}
	for range 8 {
		seen[<-codes]++
	}
	// 2048 bytes hold at most two bodies at once; the Lua state cap lets
	// two calls run, so the others cannot all have been admitted.
	if seen[503] == 0 || seen[202] == 0 {
		t.Errorf("answers %v (body %d bytes)", seen, len(body))
	}
	if resp := post(t, a.url, map[string]string{"Content-Type": "application/json"}, body); resp.code != 202 {
		t.Errorf("after the burst: %d %s", resp.code, resp.body)
	}
}

// TestTooLargeChunked: a body over MAX_BODY_BYTES whose length RGW did not
// declare is dead-lettered truncated too, marked "of more".
func TestTooLargeChunked(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.DeadLetter, cfg.MaxBodyBytes = true, 512
	a := startAdapter(t, cfg, s.ClientURL())
	letters := a.subscribe(t, "rgwnats.deadletter.>")
	body := fixture(t, putFixture)
	req, _ := http.NewRequest(http.MethodPost, a.url, struct{ io.Reader }{bytes.NewReader(body)})
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 202 {
		t.Fatalf("status %d, want 202", resp.StatusCode)
	}
	m := receive(t, letters, 1)[0]
	if got := m.Header.Get(pipeline.HeaderTruncated); got != "512 of more" {
		t.Errorf("%s %q, want %q", pipeline.HeaderTruncated, got, "512 of more")
	}
	if string(m.Data) != string(body[:512]) || m.Header.Get(pipeline.HeaderReason) != pipeline.ReasonTooLarge.String() {
		t.Errorf("dead letter %v %.40q", m.Header, m.Data)
	}
}
