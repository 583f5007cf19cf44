package natsout

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
)

// runServer starts a real nats-server with JetStream on port (-1: any free
// port) and storeDir, stopped when the test ends.
func runServer(tb testing.TB, port int, storeDir string) *server.Server {
	tb.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = port
	opts.JetStream = true
	opts.StoreDir = storeDir
	s := natsserver.RunServer(&opts)
	tb.Cleanup(s.Shutdown)
	return s
}

func stopServer(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// freePort returns a loopback port that nothing listens on right now.
func freePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// logBuffer collects log output safely across goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func testLogger(tb testing.TB) *slog.Logger {
	w := &testOutput{out: tb.Output()}
	tb.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// testOutput writes to a test's output until the test ends. nats.go calls
// its connection handlers (which log) on its own goroutine, which may run
// after the test has returned; writing to its output then is a data race.
type testOutput struct {
	mu   sync.Mutex
	out  io.Writer
	done bool
}

func (w *testOutput) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.done {
		return len(p), nil
	}
	return w.out.Write(p)
}

func (w *testOutput) close() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

// connect opens a Publisher that reconnects quickly and closes with the test.
func connect(tb testing.TB, cfg Config) *Publisher {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = testLogger(tb)
	}
	p, err := Connect(context.Background(), cfg, WithReconnectWait(20*time.Millisecond))
	if err != nil {
		tb.Fatalf("Connect: %v", err)
	}
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func waitReady(tb testing.TB, p *Publisher) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := p.WaitReady(ctx); err != nil {
		tb.Fatal(err)
	}
}

// sampleRecord is the first record of a real RGW (Reef) notification.
func sampleRecord(tb testing.TB) []byte {
	tb.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "samples", "events", "reef-put-capture.json"))
	if err != nil {
		tb.Fatal(err)
	}
	var env struct{ Records []json.RawMessage }
	if err := json.Unmarshal(b, &env); err != nil || len(env.Records) == 0 {
		tb.Fatalf("sample envelope: %v", err)
	}
	return env.Records[0]
}

// rgwEvent is an event shaped like the service's record mapping, with an
// object key that needs every kind of escaping.
func rgwEvent(tb testing.TB, id string) *event.Event {
	tb.Helper()
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("ceph:s3.default.jayanth")
	ev.SetType("com.amazonaws.ObjectCreated:Put")
	ev.SetSubject("dir/cat picture ünïcode 100%.json")
	ev.SetTime(time.Date(2024, 4, 21, 10, 3, 18, 419013000, time.UTC))
	if err := ev.SetData(event.ApplicationJSON, json.RawMessage(sampleRecord(tb))); err != nil {
		tb.Fatal(err)
	}
	for k, v := range map[string]string{
		"bucket":          "jayanth",
		"objectkey":       "dir/cat picture ünïcode 100%.json",
		"eventname":       "ObjectCreated:Put",
		"configurationid": "HTTPNotification",
		"opaquedata":      `me "quoted" & spaced`,
	} {
		ev.SetExtension(k, v)
	}
	return &ev
}

// subscribe collects messages on subj until the test ends.
func subscribe(tb testing.TB, url, subj string) chan *nats.Msg {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	ch := make(chan *nats.Msg, 100000)
	if _, err := nc.ChanSubscribe(subj, ch); err != nil {
		tb.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		tb.Fatal(err)
	}
	return ch
}

func receive(tb testing.TB, ch chan *nats.Msg) *nats.Msg {
	tb.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		tb.Fatal("no message received")
		return nil
	}
}

func testLoggerTo(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, nil))
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
