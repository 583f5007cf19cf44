package lua

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	glua "github.com/yuin/gopher-lua"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

// fixture builds the CloudEvent of the first record of a payload in
// samples/events, as the service does.
func fixture(t testing.TB, name string, opts cloudevent.Options) *event.Event {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "samples", "events", name))
	if err != nil {
		t.Fatal(err)
	}
	recs, err := rgw.Decode(body)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	ev, err := cloudevent.FromRecord(&recs[0], opts)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return &ev
}

// writeScript writes a script into dir and returns its path.
func writeScript(t testing.TB, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// testTimeout replaces LUA_TIMEOUT in tests that do not test deadlines: on
// a shared, loaded machine a call can be descheduled for longer than 100ms.
const testTimeout = 10 * time.Second

// newEngine loads src as script.lua, without reloading unless asked.
func newEngine(t testing.TB, src string, opts ...Option) *Engine {
	t.Helper()
	p := writeScript(t, t.TempDir(), "script.lua", src)
	e, err := New(context.Background(), p, append([]Option{WithReload(0), WithTimeout(testTimeout)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// transformOne runs ev and returns its outputs, failing the test on error.
func transformOne(t testing.TB, e *Engine, ev *event.Event) []Output {
	t.Helper()
	outs, err := e.Transform(context.Background(), ev)
	if err != nil {
		t.Fatal(err)
	}
	return outs
}

func lstr(s string) glua.LValue { return glua.LString(s) }
func lnil() glua.LValue         { return glua.LNil }
