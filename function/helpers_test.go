package function_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats-server/v2/server"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// runNATS starts a real nats-server with JetStream on a free port.
func runNATS(t testing.TB) *server.Server {
	t.Helper()
	return runNATSOn(t, -1, t.TempDir())
}

func runNATSOn(t testing.TB, port int, store string) *server.Server {
	t.Helper()
	opts := natsserver.DefaultTestOptions
	opts.Port = port
	opts.JetStream = true
	opts.StoreDir = store
	s := natsserver.RunServer(&opts)
	t.Cleanup(s.Shutdown)
	return s
}

// testConfig is the default configuration pointed at a test server.
func testConfig(t testing.TB, url string) function.Config {
	t.Helper()
	// Defaults come from the struct tags, exactly as in production.
	t.Setenv("NATS_URL", url)
	c, err := function.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	c.NATSStreamCreate = true
	c.NATSAckTimeout = 2 * time.Second
	// Tests send the same fixtures again and again on purpose; the tests of
	// duplicate suppression turn it back on.
	c.DedupWindow = 0
	return c
}

// adapter is a started Function behind a real HTTP listener.
type adapter struct {
	f   *function.Function
	url string
	nc  *nats.Conn // a separate observer connection
	log *bytes.Buffer
}

func startAdapter(t testing.TB, cfg function.Config, nurl string) *adapter {
	t.Helper()
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&lockedWriter{w: &logs}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := function.New(function.WithConfig(cfg), function.WithLogger(log),
		function.WithNATSOptions(natsout.WithReconnectWait(50*time.Millisecond)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop(context.Background()) })
	waitReady(t, f)
	srv := httptest.NewServer(http.HandlerFunc(f.Handle))
	t.Cleanup(srv.Close)
	nc, err := nats.Connect(nurl)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return &adapter{f: f, url: srv.URL, nc: nc, log: &logs}
}

func waitReady(t testing.TB, f *function.Function) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if ok, _ := f.Ready(context.Background()); ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("function not ready within 10s")
}

// subscribe collects messages on subj.
func (a *adapter) subscribe(t testing.TB, subj string) chan *nats.Msg {
	t.Helper()
	ch := make(chan *nats.Msg, 1024)
	sub, err := a.nc.ChanSubscribe(subj, ch)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sub.Unsubscribe() })
	if err := a.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	return ch
}

type response struct {
	code   int
	body   string
	header http.Header
	close  bool // the server closes the connection after this response
}

func post(t testing.TB, url string, header map[string]string, body []byte) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, body: string(b), header: resp.Header, close: resp.Close}
}

// receive waits for n messages or fails.
func receive(t testing.TB, ch chan *nats.Msg, n int) []*nats.Msg {
	t.Helper()
	var got []*nats.Msg
	timeout := time.After(5 * time.Second)
	for len(got) < n {
		select {
		case m := <-ch:
			got = append(got, m)
		case <-timeout:
			t.Fatalf("received %d of %d messages", len(got), n)
		}
	}
	return got
}

// none fails if anything arrives within a short while.
func none(t testing.TB, ch chan *nats.Msg) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message on %s: %s", m.Subject, m.Data)
	case <-time.After(150 * time.Millisecond):
	}
}

func decode(t testing.TB, m *nats.Msg) event.Event {
	t.Helper()
	ev, err := binding.Decode(m)
	if err != nil {
		t.Fatalf("message on %s is not a CloudEvent: %v\n%s", m.Subject, err, m.Data)
	}
	if err := ev.Validate(); err != nil {
		t.Fatalf("invalid CloudEvent: %v", err)
	}
	return ev
}

func fixture(_ testing.TB, name string) []byte { return events.Read(name) }

// fixtures lists every RGW payload shipped in samples/events.
func fixtures(testing.TB) []string { return events.Names() }

func streamMsgs(t testing.TB, nc *nats.Conn, stream string) uint64 {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// lockedWriter lets the logger be written from many goroutines.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func cehttpEvent(resp *http.Response) (*event.Event, error) {
	return cehttp.NewEventFromHTTPResponse(resp)
}

func decodeMsg(m *nats.Msg) (event.Event, error) { return binding.Decode(m) }
