package function_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

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
	// A loaded machine under the race detector can take longer than the
	// production deadline for a small script; tests of deadlines set theirs.
	c.LuaTimeout = 5 * time.Second
	return c
}

// adapter is a started Function behind a real HTTP listener.
type adapter struct {
	f   *function.Function
	url string
	nc  *nats.Conn // a separate observer connection
	log *testutil.Buffer
}

func startAdapter(t testing.TB, cfg function.Config, nurl string) *adapter {
	t.Helper()
	a := startAdapterUnready(t, cfg, nurl)
	waitReady(t, a.f)
	return a
}

// startAdapterUnready is startAdapter without waiting for readiness.
func startAdapterUnready(t testing.TB, cfg function.Config, nurl string) *adapter {
	t.Helper()
	var logs testutil.Buffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := function.New(function.WithConfig(cfg), function.WithLogger(log),
		function.WithNATSOptions(natsout.WithReconnectWait(50*time.Millisecond)))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Start(ctx, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop(context.Background()) })
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

// subscribe collects the messages on subj, leaving out the server's own
// ($JS advisories, _INBOX replies): tests look at what the adapter published.
func (a *adapter) subscribe(t testing.TB, subj string) chan *nats.Msg {
	t.Helper()
	return testutil.SubscribeOn(t, a.nc, subj)
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

func cehttpEvent(resp *http.Response) (*event.Event, error) {
	return cehttp.NewEventFromHTTPResponse(resp)
}

func decodeMsg(m *nats.Msg) (event.Event, error) { return binding.Decode(m) }

var (
	runNATS   = testutil.NATS
	runNATSOn = testutil.NATSOn
	receive   = testutil.Receive
	none      = testutil.None
	freePort  = testutil.FreePort
)
