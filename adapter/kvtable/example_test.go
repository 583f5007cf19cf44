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
// counts, the next one started on the same bucket goes on counting.
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
		for range 2 {
			ev := event.New()
			ev.SetID("1")
			ev.SetSource("ceph")
			ev.SetType("ObjectCreated:Put")
			ev.SetExtension("bucket", "photos")
			outs, err := engine.Transform(ctx, &ev)
			if err != nil {
				log.Fatal(err)
			}
			fmt.Println("process", process, "uploads", outs[0].Event.Extensions()["uploads"])
		}
		engine.Close()
		table.Close()
		nc.Close()
	}
	// Output:
	// process 1 uploads 1
	// process 1 uploads 2
	// process 2 uploads 3
	// process 2 uploads 4
}
