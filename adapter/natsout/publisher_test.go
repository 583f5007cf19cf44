package natsout

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

func jsConfig(url string) Config {
	return Config{
		URL:            url,
		Mode:           JetStream,
		Stream:         "RGW",
		StreamSubjects: []string{"rgw.>"},
		StreamCreate:   true,
		AckTimeout:     2 * time.Second,
	}
}

// streamMsgs reads the message count of a stream over its own connection.
func streamMsgs(t *testing.T, url, stream string) uint64 {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func encode(t testing.TB, id, subj string, enc binding.Encoding) Message {
	t.Helper()
	m, err := binding.Encode(testutil.RGWEvent(t, id), subj, enc, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func noErrors(t *testing.T, errs []error) {
	t.Helper()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("publish: %v", err)
		}
	}
}

func TestPublishCore(t *testing.T) {
	s := testutil.NATSOn(t, -1, t.TempDir())
	for _, enc := range []binding.Encoding{binding.Structured, binding.Binary} {
		t.Run(enc.String(), func(t *testing.T) {
			sub := testutil.Subscribe(t, s.ClientURL(), "rgw.>")
			p := connect(t, Config{URL: s.ClientURL()})
			waitReady(t, p)
			msgs := []Message{
				encode(t, "core-1", "rgw.jayanth.ObjectCreated.Put", enc),
				encode(t, "core-2", "rgw.jayanth.ObjectRemoved.Delete", enc),
			}
			noErrors(t, p.Publish(context.Background(), msgs))
			for _, want := range msgs {
				got := testutil.Receive(t, sub, 1)[0]
				if got.Subject != want.Subject {
					t.Errorf("subject %q, want %q", got.Subject, want.Subject)
				}
				ev, err := binding.Decode(got)
				if err != nil {
					t.Fatal(err)
				}
				if ev.ID() != want.MsgID || got.Header.Get(binding.HeaderMsgID) != want.MsgID {
					t.Errorf("event id %q, Nats-Msg-Id %q, want %q", ev.ID(), got.Header.Get(binding.HeaderMsgID), want.MsgID)
				}
				if ext := ev.Extensions()["objectkey"]; ext != "dir/cat picture ünïcode 100%.json" {
					t.Errorf("objectkey %q", ext)
				}
			}
			if st := p.Stats(); st.Published != 2 || st.Failed != 0 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestPublishJetStreamDeduplicates(t *testing.T) {
	s := testutil.NATSOn(t, -1, t.TempDir())
	p := connect(t, jsConfig(s.ClientURL()))
	waitReady(t, p)
	ctx := context.Background()
	first := encode(t, "dup-1", "rgw.jayanth.ObjectCreated.Put", binding.Structured)
	other := encode(t, "dup-2", "rgw.jayanth.ObjectCreated.Put", binding.Binary)
	noErrors(t, p.Publish(ctx, []Message{first, other}))
	// A redelivery: the same events again, one in the other mode.
	again := encode(t, "dup-1", "rgw.jayanth.ObjectCreated.Put", binding.Binary)
	noErrors(t, p.Publish(ctx, []Message{again, other}))
	if n := streamMsgs(t, s.ClientURL(), "RGW"); n != 2 {
		t.Errorf("stream holds %d messages, want 2", n)
	}
	if st := p.Stats(); st.Duplicates != 2 || st.Acks != 4 {
		t.Errorf("acks %d duplicates %d, want 4 and 2", st.Acks, st.Duplicates)
	}
}

func TestPublishJetStreamMsgIDWithoutHeader(t *testing.T) {
	s := testutil.NATSOn(t, -1, t.TempDir())
	p := connect(t, jsConfig(s.ClientURL()))
	waitReady(t, p)
	shared := nats.Header{"X-Shared": {"1"}}
	m := Message{Subject: "rgw.raw", Header: shared, Data: []byte("raw"), MsgID: "raw-1"}
	noErrors(t, p.Publish(context.Background(), []Message{m, m}))
	if n := streamMsgs(t, s.ClientURL(), "RGW"); n != 1 {
		t.Errorf("stream holds %d messages, want 1 (same MsgID)", n)
	}
	if _, ok := shared[binding.HeaderMsgID]; ok {
		t.Error("Publish wrote into the caller's header")
	}
}

func TestPublishJetStreamNoStream(t *testing.T) {
	s := testutil.NATSOn(t, -1, t.TempDir())
	var logs testutil.Buffer
	cfg := jsConfig(s.ClientURL())
	cfg.StreamCreate = false
	cfg.AckTimeout = time.Second
	cfg.Logger = slogTo(&logs)
	p := connect(t, cfg)
	waitReady(t, p) // connected; the stream is the operator's business
	errs := p.Publish(context.Background(), []Message{encode(t, "nostream-1", "rgw.a.b", binding.Structured)})
	// No stream captures the subject while the server answers: a
	// configuration error every retry meets again, named as such.
	if !errors.Is(errs[0], ErrNoStream) || errors.Is(errs[0], ErrUnavailable) ||
		!strings.Contains(errs[0].Error(), "nostream-1") || !strings.Contains(errs[0].Error(), `"rgw.a.b"`) {
		t.Fatalf("error %v, want ErrNoStream naming the msg id and the subject", errs[0])
	}
	testutil.WaitFor(t, func() bool { return strings.Contains(logs.String(), "stream does not exist") })
	nc, _ := nats.Connect(s.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	if _, err := js.Stream(context.Background(), "RGW"); !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("stream lookup: %v; the publisher must not create it", err)
	}
}

func TestStreamCreateKeepsOperatorSettings(t *testing.T) {
	s := testutil.NATSOn(t, -1, t.TempDir())
	nc, _ := nats.Connect(s.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "RGW", Subjects: []string{"other.>"}, MaxMsgs: 100}); err != nil {
		t.Fatal(err)
	}
	p := connect(t, jsConfig(s.ClientURL()))
	waitReady(t, p)
	st, err := js.Stream(ctx, "RGW")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if !slices.Equal(cfg.Subjects, []string{"other.>", "rgw.>"}) || cfg.MaxMsgs != 100 {
		t.Errorf("stream subjects %v, max msgs %d; want both subjects and the operator's limit", cfg.Subjects, cfg.MaxMsgs)
	}
}

func TestServerDownAndBack(t *testing.T) {
	for _, mode := range []Mode{Core, JetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			port := testutil.FreePort(t)
			store := t.TempDir()
			s := testutil.NATSOn(t, port, store)
			url := s.ClientURL()
			cfg := jsConfig(url)
			cfg.Mode = mode
			cfg.AckTimeout = 500 * time.Millisecond
			p := connect(t, cfg)
			waitReady(t, p)
			ctx := context.Background()
			noErrors(t, p.Publish(ctx, []Message{encode(t, "before", "rgw.a.b", binding.Structured)}))

			testutil.StopNATS(s)
			// Whatever the client has noticed yet, nothing may claim success.
			for i := range 5 {
				id := fmt.Sprintf("down-%d", i)
				errs := p.Publish(ctx, []Message{encode(t, id, "rgw.a.b", binding.Structured), encode(t, id+"b", "rgw.a.c", binding.Binary)})
				for _, err := range errs {
					if !errors.Is(err, ErrUnavailable) {
						t.Fatalf("publish while the server is down: %v, want ErrUnavailable", err)
					}
				}
				if !strings.Contains(errs[0].Error(), id) {
					t.Errorf("error %q does not name the msg id", errs[0])
				}
			}
			if p.Ready() {
				t.Error("Ready while the server is down")
			}

			s2 := testutil.NATSOn(t, port, store) // same port, same store
			waitReady(t, p)
			noErrors(t, p.Publish(ctx, []Message{encode(t, "after", "rgw.a.b", binding.Binary)}))
			if mode == JetStream {
				if n := streamMsgs(t, s2.ClientURL(), "RGW"); n != 2 {
					t.Errorf("stream holds %d messages, want 2 (before and after)", n)
				}
			}
			if st := p.Stats(); st.Reconnects == 0 || st.Failed != 10 || st.Published != 2 {
				t.Errorf("stats %+v", st)
			}
		})
	}
}

func TestConnectBeforeServerStarts(t *testing.T) {
	port := testutil.FreePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	p := connect(t, jsConfig(url))
	if p.Ready() {
		t.Fatal("Ready with no server")
	}
	errs := p.Publish(context.Background(), []Message{encode(t, "early", "rgw.a.b", binding.Structured)})
	if !errors.Is(errs[0], ErrUnavailable) {
		t.Fatalf("publish with no server: %v", errs[0])
	}
	testutil.NATSOn(t, port, t.TempDir())
	waitReady(t, p)
	if n := streamMsgs(t, url, "RGW"); n != 0 {
		t.Errorf("new stream holds %d messages", n)
	}
	noErrors(t, p.Publish(context.Background(), []Message{encode(t, "late", "rgw.a.b", binding.Structured)}))
	if n := streamMsgs(t, url, "RGW"); n != 1 {
		t.Errorf("stream holds %d messages, want 1", n)
	}
}

func TestConcurrentPublish(t *testing.T) {
	const goroutines, each = 32, 40
	for _, mode := range []Mode{Core, JetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			s := testutil.NATSOn(t, -1, t.TempDir())
			sub := testutil.Subscribe(t, s.ClientURL(), "rgw.>")
			cfg := jsConfig(s.ClientURL())
			cfg.Mode = mode
			cfg.AckTimeout = 10 * time.Second
			p := connect(t, cfg)
			waitReady(t, p)
			var wg sync.WaitGroup
			errc := make(chan error, goroutines*each)
			for g := range goroutines {
				wg.Go(func() {
					for i := range each {
						m := encode(t, fmt.Sprintf("c-%d-%d", g, i), fmt.Sprintf("rgw.g%d.put", g), binding.Structured)
						for _, err := range p.Publish(context.Background(), []Message{m}) {
							if err != nil {
								errc <- err
							}
						}
					}
				})
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				t.Fatal(err)
			}
			seen := map[string]bool{}
			for len(seen) < goroutines*each {
				seen[testutil.Receive(t, sub, 1)[0].Header.Get(binding.HeaderMsgID)] = true
			}
			if mode == JetStream {
				if n := streamMsgs(t, s.ClientURL(), "RGW"); n != goroutines*each {
					t.Errorf("stream holds %d, want %d", n, goroutines*each)
				}
			}
		})
	}
}

func TestCloseDrains(t *testing.T) {
	s := testutil.NATSOn(t, -1, t.TempDir())
	sub := testutil.Subscribe(t, s.ClientURL(), "drain.>")
	p := connect(t, Config{URL: s.ClientURL()})
	waitReady(t, p)
	const n = 2000
	for i := range n {
		// Buffered, never flushed by us: only Close's drain sends them.
		if err := p.Conn().Publish(fmt.Sprintf("drain.%d", i), []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	for range n {
		testutil.Receive(t, sub, 1)
	}
	if p.Ready() {
		t.Error("Ready after Close")
	}
	errs := p.Publish(ctx, []Message{encode(t, "closed", "drain.x", binding.Structured)})
	if !errors.Is(errs[0], ErrUnavailable) {
		t.Errorf("publish after Close: %v", errs[0])
	}
	if err := p.Close(ctx); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// TestCloseWhileReconnecting: a Publisher that never reached NATS closes
// without an error: nothing can be buffered (a publish while disconnected
// fails at once), so nothing is lost, and SIGTERM exits 0.
func TestCloseWhileReconnecting(t *testing.T) {
	p := connect(t, Config{URL: fmt.Sprintf("nats://127.0.0.1:%d", testutil.FreePort(t))})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := p.Close(ctx); err != nil {
		t.Errorf("Close while reconnecting: %v", err)
	}
	if !p.Conn().IsClosed() {
		t.Error("connection not closed")
	}
}

func TestConnectConfigErrors(t *testing.T) {
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing")
	// An unreachable server must not matter: these fail before dialling.
	url := fmt.Sprintf("nats://127.0.0.1:%d", testutil.FreePort(t))
	tests := []struct {
		name string
		cfg  Config
	}{
		{"missing creds file", Config{CredsFile: missing}},
		{"creds file without a JWT", Config{CredsFile: garbage}},
		{"missing nkey seed", Config{NkeySeedFile: missing}},
		{"garbage nkey seed", Config{NkeySeedFile: garbage}},
		{"creds and nkey", Config{CredsFile: garbage, NkeySeedFile: garbage}},
		{"missing CA file", Config{TLSCA: missing}},
		{"CA file without certificates", Config{TLSCA: garbage}},
		{"client cert without key", Config{TLSCert: garbage}},
		{"bad client cert", Config{TLSCert: garbage, TLSKey: garbage}},
		{"password without user", Config{Password: "x"}},
		{"user and token", Config{User: "u", Password: "p", Token: "t"}},
		{"stream creation without a name", Config{Mode: JetStream, StreamCreate: true, StreamSubjects: []string{"a"}}},
		{"stream creation without subjects", Config{Mode: JetStream, StreamCreate: true, Stream: "S"}},
		{"unknown mode", Config{Mode: Mode(9)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.URL = url
			p, err := Connect(context.Background(), tt.cfg)
			if err == nil {
				p.Close(context.Background())
				t.Fatal("Connect succeeded")
			}
		})
	}
}

// TestJetStreamAckTimeout: no ack comes for a subject that a plain
// subscriber takes but no stream captures; the missing ack is looked into
// and the subject is found uncaptured: ErrNoStream, as without the
// subscriber (issue 17: a stream deleted while running was 503 with a
// subscriber and a dead letter without one).
func TestJetStreamAckTimeout(t *testing.T) {
	s := testutil.NATSOn(t, -1, t.TempDir())
	// A plain subscriber makes the subject "answered" at the NATS level, but
	// no stream captures it, so no ack ever comes.
	testutil.Subscribe(t, s.ClientURL(), "slow.>")
	cfg := jsConfig(s.ClientURL())
	cfg.AckTimeout = 300 * time.Millisecond
	p := connect(t, cfg)
	waitReady(t, p)
	errs := p.Publish(context.Background(), []Message{
		encode(t, "slow-1", "slow.a", binding.Structured),
		encode(t, "fast-1", "rgw.a", binding.Structured),
		encode(t, "slow-2", "slow.b", binding.Structured),
	})
	for i, id := range []string{"slow-1", "", "slow-2"} {
		if id == "" {
			if errs[i] != nil {
				t.Errorf("stored message failed: %v", errs[i])
			}
			continue
		}
		if !errors.Is(errs[i], ErrNoStream) || !strings.Contains(errs[i].Error(), id) {
			t.Errorf("message %s: %v, want ErrNoStream naming it", id, errs[i])
		}
	}

	// A cancelled context ends the wait the same way.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	errs = p.Publish(ctx, []Message{encode(t, "slow-3", "slow.c", binding.Structured)})
	if !errors.Is(errs[0], ErrNoStream) {
		t.Errorf("cancelled publish: %v", errs[0])
	}
}

func TestPublishRejects(t *testing.T) {
	s := testutil.NATSOn(t, -1, t.TempDir())
	for _, mode := range []Mode{Core, JetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := jsConfig(s.ClientURL())
			cfg.Mode = mode
			p := connect(t, cfg)
			waitReady(t, p)
			good := encode(t, "ok-1", "rgw.a.b", binding.Structured)
			huge := good
			huge.MsgID = "huge-1"
			huge.Data = make([]byte, 2<<20) // over the server's 1 MiB default
			errs := p.Publish(context.Background(), []Message{
				{Subject: "rgw.a b", Data: []byte("x"), MsgID: "space-1"},
				{Subject: "rgw.*", Data: []byte("x"), MsgID: "wild-1"},
				huge,
				good,
			})
			for i, id := range []string{"space-1", "wild-1", "huge-1"} {
				if !errors.Is(errs[i], ErrRejected) || !strings.Contains(errs[i].Error(), id) {
					t.Errorf("message %s: %v, want ErrRejected naming it", id, errs[i])
				}
			}
			if errs[3] != nil {
				t.Errorf("good message next to rejected ones: %v", errs[3])
			}
			// The shared connection survived.
			if !p.Conn().IsConnected() || p.Stats().Reconnects != 0 {
				t.Error("rejected messages cost the connection")
			}
		})
	}
}

func TestAuthFailureKeepsRetrying(t *testing.T) {
	opts := natsserver.DefaultTestOptions
	opts.Port = testutil.FreePort(t)
	opts.Authorization = "secret"
	s := natsserver.RunServer(&opts)
	t.Cleanup(s.Shutdown)
	var logs testutil.Buffer
	p := connect(t, Config{URL: s.ClientURL(), Token: "wrong", Logger: slogTo(&logs)})
	testutil.WaitFor(t, func() bool { return strings.Contains(strings.ToLower(logs.String()), "authorization violation") })
	time.Sleep(300 * time.Millisecond) // several more attempts with the same error
	if n := strings.Count(logs.String(), "connection attempt failed"); n != 1 {
		t.Errorf("%d log lines for failed attempts, want 1:\n%s", n, logs.String())
	}
	if p.Ready() || p.Conn().IsClosed() {
		t.Fatalf("ready %v, closed %v; want retrying", p.Ready(), p.Conn().IsClosed())
	}
	// The operator fixes the server side: the same Publisher gets in.
	testutil.StopNATS(s)
	opts.Authorization = "wrong"
	s = natsserver.RunServer(&opts)
	t.Cleanup(s.Shutdown)
	waitReady(t, p)
}

func TestParseMode(t *testing.T) {
	for _, s := range []string{"core", "CORE", ""} {
		if m, err := ParseMode(s); err != nil || m != Core {
			t.Errorf("ParseMode(%q) = %v, %v", s, m, err)
		}
	}
	if m, err := ParseMode("JetStream"); err != nil || m != JetStream {
		t.Errorf("ParseMode(JetStream) = %v, %v", m, err)
	}
	if _, err := ParseMode("kafka"); err == nil {
		t.Error("ParseMode(kafka) succeeded")
	}
}

// TestNewTakesAConnection: a Publisher on a connection the caller dialled
// (as jetstream.New takes one) creates its stream, publishes with acks and
// drains the connection on Close.
func TestNewTakesAConnection(t *testing.T) {
	s := testutil.NATS(t)
	nc, err := nats.Connect(s.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectBufSize(-1))
	if err != nil {
		t.Fatal(err)
	}
	cfg := jsConfig(s.ClientURL())
	cfg.Logger = testutil.Logger(t)
	p, err := New(nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, p)
	noErrors(t, p.Publish(context.Background(), []Message{encode(t, "taken-1", "rgw.a.b", binding.Structured)}))
	if n := streamMsgs(t, s.ClientURL(), "RGW"); n != 1 {
		t.Fatalf("stream holds %d", n)
	}
	if err := p.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !nc.IsClosed() {
		t.Error("Close left the connection open")
	}
}

// TestCreatedStreamSettings: a stream the publisher creates gets the
// duplicate window and replica count of the configuration.
func TestCreatedStreamSettings(t *testing.T) {
	s := testutil.NATS(t)
	cfg := jsConfig(s.ClientURL())
	cfg.DuplicateWindow = 17 * time.Minute
	cfg.Replicas = 1
	p := connect(t, cfg)
	waitReady(t, p)
	nc, _ := nats.Connect(s.ClientURL())
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(context.Background(), "RGW")
	if err != nil {
		t.Fatal(err)
	}
	if c := st.CachedInfo().Config; c.Duplicates != 17*time.Minute || c.Replicas != 1 {
		t.Errorf("stream duplicates %v replicas %d", c.Duplicates, c.Replicas)
	}
}
