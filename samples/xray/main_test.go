package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

const (
	xrayFixture   = "../events/downstream-xraylab-put-capture.json"
	deleteFixture = "../events/pacific-16.2.15/delete.json"
)

func read(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// eventOf maps the first record of a fixture to a CloudEvent, with the data
// as an envelope (CE_DATA=envelope) or as the bare record.
func eventOf(t *testing.T, fixture string, envelope bool) event.Event {
	t.Helper()
	recs, err := rgw.Decode(read(t, fixture))
	if err != nil {
		t.Fatal(err)
	}
	ev, err := cloudevent.FromRecord(&recs[0], cloudevent.Options{Envelope: envelope})
	if err != nil {
		t.Fatal(err)
	}
	return ev
}

func message(t *testing.T, ev event.Event, subj string, mode binding.Encoding) *nats.Msg {
	t.Helper()
	m, err := binding.Encode(&ev, subj, mode, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &nats.Msg{Subject: m.Subject, Header: m.Header, Data: m.Data}
}

func TestJudge(t *testing.T) {
	upload := eventOf(t, xrayFixture, true)
	cases := []struct {
		name   string
		msg    *nats.Msg
		score  bool
		poison bool
	}{
		{"upload, structured", message(t, upload, "xray.images.xraylab-0001", binding.Structured), true, false},
		{"upload, binary", message(t, upload, "xray.images.xraylab-0001", binding.Binary), true, false},
		{"delete", message(t, eventOf(t, deleteFixture, true), "xray.images.nb-main", binding.Structured), false, false},
		{"record without envelope", message(t, eventOf(t, xrayFixture, false), "xray.images.xraylab-0001", binding.Structured), false, true},
		{"not a CloudEvent", &nats.Msg{Subject: "xray.images.x", Data: []byte("hello")}, false, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v, err := Judge(c.msg)
			if c.poison {
				if !errors.Is(err, errPoison) {
					t.Fatalf("err %v, want a poison error", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v.Score != c.score {
				t.Fatalf("score %v, want %v (%+v)", v.Score, c.score, v)
			}
			if c.score && (v.Bucket != "xraylab-0001" || v.Key != "demo_Micheal Phillips_6580_1947-05-22_2017-04-27.jpeg" ||
				v.EventName != "s3:ObjectCreated:Put" || v.ID != upload.ID()) {
				t.Errorf("verdict %+v", v)
			}
		})
	}
}

func connect(t *testing.T, s *server.Server) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

func testConfig(t *testing.T) Config {
	t.Helper()
	var c Config
	for _, k := range []string{"XRAY_SUBJECT", "XRAY_QUEUE", "XRAY_STREAM", "XRAY_DURABLE", "XRAY_ACK_WAIT"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	if err := processEnv(&c); err != nil {
		t.Fatal(err)
	}
	return c
}

// collector starts a consumer whose verdicts go to the returned channel;
// stop ends it and waits until it has returned (also done at cleanup).
func collector(t *testing.T, nc *nats.Conn, cfg Config) (verdicts <-chan Verdict, stop func()) {
	t.Helper()
	out := make(chan Verdict, 100)
	c := &Consumer{
		Config: cfg,
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil)),
		Handle: func(_ context.Context, v Verdict) error { out <- v; return nil },
	}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx, nc, ready) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("consumer stopped: %v", err)
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("consumer: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return out, stop
}

func receive(t *testing.T, ch <-chan Verdict) Verdict {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(10 * time.Second):
		t.Fatal("no verdict within 10 s")
		return Verdict{}
	}
}

// TestQueueGroupSharesWork: replicas in one queue group handle every
// message exactly once between them.
func TestQueueGroupSharesWork(t *testing.T) {
	s := testutil.NATS(t)
	cfg := testConfig(t)
	a, _ := collector(t, connect(t, s), cfg)
	b, _ := collector(t, connect(t, s), cfg)

	pub := connect(t, s)
	upload := eventOf(t, xrayFixture, true)
	const n = 20
	for i := range n {
		ev := upload.Clone()
		ev.SetID(upload.ID() + "-" + string(rune('a'+i)))
		m := message(t, ev, "xray.images.xraylab-0001", binding.Structured)
		if err := pub.PublishMsg(m); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for range n {
		var v Verdict
		select {
		case v = <-a:
		case v = <-b:
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d messages handled", len(seen), n)
		}
		seen[v.ID]++
		if !v.Score {
			t.Errorf("%+v not scored", v)
		}
	}
	select {
	case v := <-a:
		t.Fatalf("a message was handled twice: %+v", v)
	case v := <-b:
		t.Fatalf("a message was handled twice: %+v", v)
	case <-time.After(200 * time.Millisecond):
	}
	if len(seen) != n {
		t.Fatalf("%d distinct ids handled, want %d", len(seen), n)
	}
}

// TestJetStreamDurable: uploads published while no scorer runs are scored
// when one starts; a restarted scorer with the same durable resumes after
// the last acknowledged message; an unusable message is terminated, not
// redelivered.
func TestJetStreamDurable(t *testing.T) {
	s := testutil.NATS(t)
	nc := connect(t, s)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "XRAY", Subjects: []string{"xray.images.>"}}); err != nil {
		t.Fatal(err)
	}
	upload := eventOf(t, xrayFixture, true)
	publish := func(id string) {
		ev := upload.Clone()
		ev.SetID(id)
		m := message(t, ev, "xray.images.xraylab-0001", binding.Structured)
		if _, err := js.PublishMsg(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	publish("before-1")
	publish("before-2")
	if _, err := js.Publish(ctx, "xray.images.junk", []byte("not an event")); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg.Stream = "XRAY"
	// The first scorer runs on its own connection, as a process would.
	firstConn := connect(t, s)
	got, stop := collector(t, firstConn, cfg)
	for _, want := range []string{"before-1", "before-2"} {
		if v := receive(t, got); v.ID != want || !v.Score {
			t.Fatalf("got %+v, want %s scored", v, want)
		}
	}
	waitAcked(t, js, cfg)
	// The scorer exits: its pull requests go with its connection.
	stop()
	firstConn.Close()
	// Publish only once the server has dropped the closed connection's pull
	// requests: one still waiting would take the message and hold it until
	// AckWait.
	waitNoPullWaiting(t, js, cfg)

	publish("while-down")
	got, _ = collector(t, connect(t, s), cfg)
	if v := receive(t, got); v.ID != "while-down" {
		t.Fatalf("after restart got %+v, want while-down (and nothing handled before)", v)
	}
	info := waitAcked(t, js, cfg)
	if info.NumRedelivered != 0 {
		t.Errorf("%d messages redelivered", info.NumRedelivered)
	}
}

// waitNoPullWaiting waits until no pull request waits on the durable
// consumer.
func waitNoPullWaiting(t *testing.T, js jetstream.JetStream, cfg Config) {
	t.Helper()
	testutil.WaitFor(t, func() bool {
		cons, err := js.Consumer(context.Background(), cfg.Stream, cfg.Durable)
		if err != nil {
			return false
		}
		info, err := cons.Info(context.Background())
		return err == nil && info.NumWaiting == 0
	})
}

// waitAcked waits until the durable consumer has nothing pending or
// unacknowledged.
func waitAcked(t *testing.T, js jetstream.JetStream, cfg Config) *jetstream.ConsumerInfo {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		cons, err := js.Consumer(context.Background(), cfg.Stream, cfg.Durable)
		if err != nil {
			t.Fatal(err)
		}
		info, err := cons.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumAckPending == 0 && info.NumPending == 0 {
			return info
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer still has %d pending, %d unacknowledged", info.NumPending, info.NumAckPending)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// readEnvFile reads a kustomize env file (KEY=VALUE lines).
func readEnvFile(t *testing.T, name string) map[string]string {
	t.Helper()
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(read(t, name)))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			t.Fatalf("%s: %q is not KEY=VALUE", name, line)
		}
		env[k] = v
	}
	return env
}

// TestPipelineWithRGWNats runs the downstream half of the X-ray overlay for
// real: rgw-nats configured with knative/components/xray (its env file and
// xray.lua) takes RGW's POSTs and publishes to JetStream; this consumer,
// with its defaults and the stream named there, scores the upload and never
// sees the delete, which xray.lua drops.
func TestPipelineWithRGWNats(t *testing.T) {
	s := testutil.NATS(t)
	env := readEnvFile(t, "../../knative/components/xray/xray.env")
	for k, v := range env {
		t.Setenv(k, v)
	}
	t.Setenv("NATS_URL", s.ClientURL())
	t.Setenv("LUA_SCRIPT", "../lua/xray.lua")
	t.Setenv("LOG_LEVEL", "warn")
	fcfg, err := function.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := function.New(function.WithConfig(fcfg), function.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
	if err := f.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	defer f.Stop(context.Background())
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if ok, _ := f.Ready(ctx); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("rgw-nats not ready")
		}
	}
	srv := httptest.NewServer(http.HandlerFunc(f.Handle))
	defer srv.Close()

	cfg := testConfig(t)
	cfg.Stream = env["NATS_STREAM"]
	got, _ := collector(t, connect(t, s), cfg)

	for _, fixture := range []string{deleteFixture, xrayFixture} {
		resp, err := http.Post(srv.URL, "application/json", bytes.NewReader(read(t, fixture)))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("%s: %s", fixture, resp.Status)
		}
	}
	v := receive(t, got)
	if !v.Score || v.Bucket != "xraylab-0001" || v.Subject != "xray.images.xraylab-0001" ||
		v.Key != "demo_Micheal Phillips_6580_1947-05-22_2017-04-27.jpeg" {
		t.Fatalf("verdict %+v", v)
	}
	select {
	case v := <-got:
		t.Fatalf("a second message arrived (xray.lua should drop the delete): %+v", v)
	case <-time.After(200 * time.Millisecond):
	}
	cancel()
}
