package natsout

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// closeByServer makes nats-server drop nc with an error nats.go does not
// recover from (a protocol line over 4 KiB, what a long subject written
// past the Publisher would do), and waits until nats.go closed it for good.
func closeByServer(t *testing.T, nc *nats.Conn) {
	t.Helper()
	_ = nc.Publish(strings.Repeat("a", 5000), nil)
	_ = nc.Flush()
	testutil.WaitFor(t, nc.IsClosed)
}

// TestClosedConnectionReplaced: when nats.go closes the connection for good
// anyway (here: the shared connection used past the Publisher), the
// Publisher opens a new one, becomes ready again and publishes; Alive stays
// true. Before, every publish failed from then on and only a restart
// helped, while liveness said 200.
func TestClosedConnectionReplaced(t *testing.T) {
	s := testutil.NATS(t)
	for _, mode := range []Mode{Core, JetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := Config{URL: s.ClientURL(), Mode: mode}
			if mode == JetStream {
				cfg = jsConfig(s.ClientURL())
			}
			p := connect(t, cfg)
			waitReady(t, p)
			first := p.Conn()
			closeByServer(t, first)
			testutil.WaitFor(t, p.Ready)
			if p.Conn() == first {
				t.Fatal("still the closed connection")
			}
			if !p.Alive() {
				t.Error("not alive after the connection was replaced")
			}
			errs := p.Publish(context.Background(), []Message{encode(t, "after-close-"+mode.String(), "rgw.b.ObjectCreated.Put", 0)})
			if errs[0] != nil {
				t.Fatalf("publish on the new connection: %v", errs[0])
			}
			if st := p.Stats(); st.Reconnects < 1 {
				t.Errorf("reconnects %d, want the replacement counted", st.Reconnects)
			}
		})
	}
}

// TestClosedConnectionOfCallerLost: a connection the caller handed to New
// cannot be opened again by the Publisher: once nats.go closes it for good,
// Alive is false (a restart is the only way out), and publishes fail
// transiently.
func TestClosedConnectionOfCallerLost(t *testing.T) {
	s := testutil.NATS(t)
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	p, err := New(nc, Config{Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close(context.Background())
	if !p.Alive() {
		t.Fatal("not alive at start")
	}
	closeByServer(t, nc)
	testutil.WaitFor(t, func() bool { return !p.Alive() })
	errs := p.Publish(context.Background(), []Message{encode(t, "lost", "rgw.b.ObjectCreated.Put", 0)})
	if !errors.Is(errs[0], ErrUnavailable) {
		t.Errorf("publish on a lost connection: %v, want ErrUnavailable", errs[0])
	}
}

// TestConnectErrorHidesPassword: a NATS URL that does not parse is reported
// without its password (url.Parse quotes the whole URL).
func TestConnectErrorHidesPassword(t *testing.T) {
	for _, u := range []string{
		"nats://admin:s3cr3t-pw@127.0.0.1:notaport",
		"nats://admin:s3cr3t-pw@127.0.0.1:4222,nats://admin:s3cr3t-pw@[::1",
		"nats://admin:s3cr3t%zz-pw@127.0.0.1:4222",
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := Connect(ctx, Config{URL: u, Logger: testutil.Logger(t)})
		cancel()
		if err == nil {
			t.Errorf("%s: no error", RedactURL(u))
			continue
		}
		if strings.Contains(err.Error(), "s3cr3t") {
			t.Errorf("error shows the password: %v", err)
		}
	}
}

// restrictedServer runs a nats-server with JetStream whose user "rgw" may
// publish only to rgw.ok.>, the dead letters and the JetStream API.
func restrictedServer(t *testing.T) *server.Server {
	t.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	opts.JetStream = true
	opts.StoreDir = t.TempDir()
	opts.Users = []*server.User{{
		Username: "rgw", Password: "pw",
		Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: []string{"rgw.ok.>", "rgwnats.deadletter.>", "$JS.API.>"}},
			Subscribe: &server.SubjectPermission{Allow: []string{">"}},
		},
	}}
	s := natsserver.RunServer(&opts)
	t.Cleanup(func() { testutil.StopNATS(s) })
	return s
}

// TestPublishDenied: a publish the NATS user may not make fails as
// ErrDenied (permanent), in core mode although the server keeps the
// connection and the flush succeeds, and in JetStream mode although no ack
// ever comes; messages of the same round to allowed subjects are
// published. Before, core mode reported the denied message published.
func TestPublishDenied(t *testing.T) {
	s := restrictedServer(t)
	for _, mode := range []Mode{Core, JetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			cfg := Config{URL: s.ClientURL(), User: "rgw", Password: "pw", Mode: mode, AckTimeout: 2 * time.Second}
			if mode == JetStream {
				cfg.Stream, cfg.StreamSubjects, cfg.StreamCreate = "RGW", []string{"rgw.>"}, true
			}
			p := connect(t, cfg)
			waitReady(t, p)
			for round := range 3 {
				msgs := []Message{
					encode(t, fmt.Sprintf("ok-%d", round), "rgw.ok.x", 0),
					encode(t, fmt.Sprintf("no-%d", round), "rgw.denied.x", 0),
					encode(t, fmt.Sprintf("ok2-%d", round), "rgw.ok.y", 0),
				}
				errs := p.Publish(context.Background(), msgs)
				if errs[0] != nil || errs[2] != nil {
					t.Errorf("round %d: allowed subjects failed: %v, %v", round, errs[0], errs[2])
				}
				if !errors.Is(errs[1], ErrDenied) {
					t.Errorf("round %d: denied subject: %v, want ErrDenied", round, errs[1])
				}
			}
			if !p.Ready() {
				t.Error("not ready after denied publishes")
			}
		})
	}
}

// TestJetStreamPermanentConditions: what a stream refuses for good is
// ErrRejected (permanent: dead letter), not "nats unavailable" (503
// forever): a message over the stream's max_msg_size, a header block over
// 64 KiB, a full stream that discards new messages. A stream deleted while
// running is ErrNoStream whether or not a core subscriber takes the message
// (before: no-stream without one, 503 with one).
func TestJetStreamPermanentConditions(t *testing.T) {
	s := testutil.NATS(t)
	nc, cerr := nats.Connect(s.ClientURL())
	if cerr != nil {
		t.Fatal(cerr)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	for _, sc := range []jetstream.StreamConfig{
		{Name: "FULL", Subjects: []string{"full.>"}, MaxMsgs: 1, Discard: jetstream.DiscardNew},
		{Name: "FULLB", Subjects: []string{"fullb.>"}, MaxBytes: 4096, Discard: jetstream.DiscardNew},
		{Name: "SMALL", Subjects: []string{"small.>"}, MaxMsgSize: 100},
		{Name: "GONE", Subjects: []string{"gone.>"}},
	} {
		if _, err := js.CreateStream(ctx, sc); err != nil {
			t.Fatal(err)
		}
	}
	cfg := jsConfig(s.ClientURL())
	cfg.AckTimeout = time.Second
	p := connect(t, cfg)
	waitReady(t, p)
	publish := func(m Message) error { return p.Publish(ctx, []Message{m})[0] }

	if err := publish(encode(t, "full-1", "full.a", 0)); err != nil {
		t.Fatalf("first message into FULL: %v", err)
	}
	if err := publish(encode(t, "full-2", "full.a", 0)); !errors.Is(err, ErrRejected) {
		t.Errorf("full stream, discard new: %v, want ErrRejected", err)
	}
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		err = publish(encode(t, fmt.Sprintf("fullb-%d", i), "fullb.a", 0))
	}
	if !errors.Is(err, ErrRejected) {
		t.Errorf("stream over max_bytes, discard new: %v, want ErrRejected", err)
	}
	if err := publish(encode(t, "small", "small.a", 0)); !errors.Is(err, ErrRejected) {
		t.Errorf("over max_msg_size: %v, want ErrRejected", err)
	}
	big := encode(t, "big-header", "rgw.a", 0)
	big.Header.Set("X-Big", strings.Repeat("h", 70000))
	if err := publish(big); !errors.Is(err, ErrRejected) {
		t.Errorf("header block over 64 KiB: %v, want ErrRejected", err)
	}

	if err := js.DeleteStream(ctx, "GONE"); err != nil {
		t.Fatal(err)
	}
	if err := publish(encode(t, "gone-1", "gone.a", 0)); !errors.Is(err, ErrNoStream) {
		t.Errorf("deleted stream, nobody subscribed: %v, want ErrNoStream", err)
	}
	testutil.Subscribe(t, s.ClientURL(), "gone.>")
	if err := publish(encode(t, "gone-2", "gone.a", 0)); !errors.Is(err, ErrNoStream) {
		t.Errorf("deleted stream, a core subscriber: %v, want ErrNoStream", err)
	}
	// Still publishing what a stream takes.
	if err := publish(encode(t, "fine", "rgw.a", 0)); err != nil {
		t.Errorf("after the refusals: %v", err)
	}
}
