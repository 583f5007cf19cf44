package lua_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
)

// An RGW-style script calls nats.connect() and client:connect() for every
// event. Here its publishes go out over one connection, whatever the number
// of events: the server sees no new connection per event.
func TestRGWCompatScriptOpensNoConnectionPerEvent(t *testing.T) {
	opts := natsserver.DefaultTestOptions
	opts.Port = -1
	srv := natsserver.RunServer(&opts)
	defer srv.Shutdown()

	sub, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	msgs, err := sub.SubscribeSync("rgw.notifications")
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	pub, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()

	e, err := lua.New(context.Background(), filepath.Join("..", "..", "samples", "lua", "rgw-compat.lua"), lua.WithReload(0), lua.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	const events = 200
	fixtures := []string{"reef-put-capture.json", "pacific-16.2.15/copy.json", "pacific-16.2.15/delete.json", "downstream-xraylab-put-capture.json"}
	for i := range events {
		outs, err := e.Transform(context.Background(), sampleEvent(fixtures[i%len(fixtures)]))
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range outs {
			if err := pub.Publish(o.Subject, o.Raw); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := pub.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range events {
		if _, err := msgs.NextMsg(5 * time.Second); err != nil {
			t.Fatalf("message %d of %d: %v", i+1, events, err)
		}
	}
	varz, err := srv.Varz(nil)
	if err != nil {
		t.Fatal(err)
	}
	if varz.TotalConnections != 2 || srv.NumClients() != 2 {
		t.Errorf("%d connections over the test, %d open, for %d events: want the subscriber and the one publisher",
			varz.TotalConnections, srv.NumClients(), events)
	}
}
