package kvtable_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	natsserver "github.com/nats-io/nats-server/v2/test"
	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter/kvtable"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
)

// The RGW table of a Lua engine kept in a NATS KV bucket: what one process
// counts, the next one started on the same bucket goes on counting; an event
// resent to the next one (event 2 here) is not counted again, and its script
// sees what it saw the first time.
func Example() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	// Any nats-server with JetStream; here one in-process.
	opts := natsserver.DefaultTestOptions
	opts.Port, opts.JetStream, opts.StoreDir = -1, true, filepath.Join(dir, "js")
	srv := natsserver.RunServer(&opts)
	defer srv.Shutdown()
	script := filepath.Join(dir, "count.lua")
	os.WriteFile(script, []byte(`
function transform(ev)
  ev.ext.uploads = RGW.increment("uploads." .. ev.ext.bucket)
  return ev
end`), 0o644)

	ctx := context.Background()
	events := [][]string{{"1", "2"}, {"2", "3"}} // by process
	for process := 1; process <= 2; process++ {
		nc, err := nats.Connect(srv.ClientURL())
		if err != nil {
			log.Fatal(err)
		}
		table, err := kvtable.New(nc, "rgw", kvtable.WithCreate(1))
		if err != nil {
			log.Fatal(err)
		}
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := table.WaitLoaded(wctx); err != nil { // what readiness waits for
			log.Fatal(err)
		}
		cancel()
		engine, err := lua.New(ctx, script, lua.WithTable(table), lua.WithReload(0), lua.WithTimeout(5*time.Second))
		if err != nil {
			log.Fatal(err)
		}
		for _, id := range events[process-1] {
			ev := event.New()
			ev.SetID(id)
			ev.SetSource("ceph")
			ev.SetType("ObjectCreated:Put")
			ev.SetExtension("bucket", "photos")
			outs, err := engine.Transform(ctx, &ev)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println("process", process, "event", id, "uploads", outs[0].Event.Extensions()["uploads"])
		}
		engine.Close()
		table.Close()
		nc.Close()
	}
	// Output:
	// process 1 event 1 uploads 1
	// process 1 event 2 uploads 2
	// process 2 event 2 uploads 2
	// process 2 event 3 uploads 3
}
