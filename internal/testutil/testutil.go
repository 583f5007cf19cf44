// Package testutil is the one set of helpers the project's tests share: a
// real nats-server started in-process, free loopback ports, log buffers that
// are safe across goroutines, and waiting for a condition or a message.
//
// Only _test.go files import it. It must not import any package of this
// module except samples/events, so that every package's tests can use it.
package testutil

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/samples/events"
)

// NATS starts a real nats-server with JetStream on a free port, its store in
// a temporary directory, shut down when the test ends.
func NATS(tb testing.TB) *server.Server { return NATSOn(tb, -1, tb.TempDir()) }

// NATSOn starts a real nats-server with JetStream on port (-1: any free
// port) with its store in storeDir, shut down when the test ends.
func NATSOn(tb testing.TB, port int, storeDir string) *server.Server {
	tb.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = port
	opts.JetStream = true
	opts.StoreDir = storeDir
	s := natsserver.RunServer(&opts)
	tb.Cleanup(func() { StopNATS(s) })
	return s
}

// StopNATS shuts a server down and waits until it has.
func StopNATS(s *server.Server) {
	s.Shutdown()
	s.WaitForShutdown()
}

// FreePort returns a loopback port that nothing listens on right now.
func FreePort(tb testing.TB) int {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// FreeAddr is FreePort as "127.0.0.1:port".
func FreeAddr(tb testing.TB) string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(FreePort(tb)))
}

// Buffer collects output safely across goroutines.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Logger logs at debug level to the test's output until the test ends.
func Logger(tb testing.TB) *slog.Logger {
	w := &testOutput{out: tb.Output()}
	tb.Cleanup(w.close)
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// LoggerTo logs at debug level to w and, until the test ends, to the test's
// output.
func LoggerTo(tb testing.TB, w io.Writer) *slog.Logger {
	out := &testOutput{out: tb.Output()}
	tb.Cleanup(out.close)
	return slog.New(slog.NewTextHandler(io.MultiWriter(w, out), &slog.HandlerOptions{Level: slog.LevelDebug}))
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

// Subscribe collects the messages on subj until the test ends, leaving out
// the server's own ($JS advisories, _INBOX replies): tests look at what was
// published.
func Subscribe(tb testing.TB, url, subj string) chan *nats.Msg {
	tb.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(nc.Close)
	return SubscribeOn(tb, nc, subj)
}

// SubscribeOn is Subscribe on an open connection.
func SubscribeOn(tb testing.TB, nc *nats.Conn, subj string) chan *nats.Msg {
	tb.Helper()
	ch := make(chan *nats.Msg, 100000)
	sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
		if !strings.HasPrefix(m.Subject, "$") && !strings.HasPrefix(m.Subject, "_INBOX.") {
			ch <- m
		}
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		tb.Fatal(err)
	}
	return ch
}

// Receive takes n messages from ch, failing the test when they do not come
// within 10 seconds.
func Receive(tb testing.TB, ch chan *nats.Msg, n int) []*nats.Msg {
	tb.Helper()
	out := make([]*nats.Msg, 0, n)
	timeout := time.After(10 * time.Second)
	for len(out) < n {
		select {
		case m := <-ch:
			out = append(out, m)
		case <-timeout:
			tb.Fatalf("received %d of %d messages", len(out), n)
		}
	}
	return out
}

// None fails the test when a message arrives on ch within a short while.
func None(tb testing.TB, ch chan *nats.Msg) {
	tb.Helper()
	select {
	case m := <-ch:
		tb.Fatalf("unexpected message on %s: %s", m.Subject, m.Data)
	case <-time.After(150 * time.Millisecond):
	}
}

// WaitFor polls cond until it holds, failing the test after 10 seconds.
func WaitFor(tb testing.TB, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatal("condition not met in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// SampleRecord is the first record of a real RGW (Reef) notification.
func SampleRecord(tb testing.TB) []byte {
	tb.Helper()
	var env struct{ Records []json.RawMessage }
	if err := json.Unmarshal(events.Read("reef-put-capture.json"), &env); err != nil || len(env.Records) == 0 {
		tb.Fatalf("sample envelope: %v", err)
	}
	return env.Records[0]
}

// RGWEvent is an event shaped like the service's record mapping, with an
// object key that needs every kind of escaping.
func RGWEvent(tb testing.TB, id string) *event.Event {
	tb.Helper()
	ev := event.New()
	ev.SetID(id)
	ev.SetSource("ceph:s3.default.jayanth")
	ev.SetType("com.amazonaws.ObjectCreated:Put")
	ev.SetSubject("dir/cat picture ünïcode 100%.json")
	ev.SetTime(time.Date(2024, 4, 21, 10, 3, 18, 419013000, time.UTC))
	if err := ev.SetData(event.ApplicationJSON, json.RawMessage(SampleRecord(tb))); err != nil {
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

// Event1KiB is an RGW-shaped event whose data is a 1 KiB JSON record.
func Event1KiB(b testing.TB) *event.Event {
	ev := RGWEvent(b, "1713693798.430517.a60023221945e53a31f07df71f37f032.HTTPNotification")
	rec := SampleRecord(b)
	if len(rec) > 1000 {
		b.Fatalf("sample record is %d bytes", len(rec))
	}
	pad := bytes.Repeat([]byte("x"), 1024-len(rec)-len(`,"pad":""`))
	data := append(append(append(rec[:len(rec)-1:len(rec)-1], `,"pad":"`...), pad...), `"}`...)
	if len(data) != 1024 {
		b.Fatalf("data is %d bytes", len(data))
	}
	ev.DataEncoded = data
	return ev
}
