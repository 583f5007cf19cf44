package lua_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

// sampleEvent maps the first record of a captured RGW payload to a CloudEvent,
// as the service does.
func sampleEvent(name string) *event.Event {
	body, err := os.ReadFile(filepath.Join("..", "..", "samples", "events", name))
	if err != nil {
		log.Fatal(err)
	}
	recs, err := rgw.Decode(body)
	if err != nil {
		log.Fatal(err)
	}
	ev, err := cloudevent.FromRecord(&recs[0], cloudevent.Options{})
	if err != nil {
		log.Fatal(err)
	}
	return &ev
}

// scriptFile writes a script to a temporary file for the examples.
func scriptFile(src string) (path string, cleanup func()) {
	dir, err := os.MkdirTemp("", "rgw-nats-lua")
	if err != nil {
		log.Fatal(err)
	}
	path = filepath.Join(dir, "transform.lua")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		log.Fatal(err)
	}
	return path, func() { os.RemoveAll(dir) }
}

func ExampleNew() {
	path, cleanup := scriptFile(`
local rn = require("rgwnats")

function transform(ev)
  ev.ext.tenant = "acme"
  ev.nats.subject = "images." .. rn.token(ev.ext.bucket)
  return ev
end`)
	defer cleanup()

	e, err := lua.New(context.Background(), path, lua.WithTimeout(time.Second), lua.WithReload(0))
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	outs, err := e.Transform(context.Background(), sampleEvent("reef-put-capture.json"))
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range outs {
		fmt.Println(o.Subject, o.Event.Extensions()["tenant"])
	}
	// Output: images.jayanth acme
}

// A transform can publish several events: here the full event to an
// internal subject and a redacted copy to a public one.
func ExampleEngine_Transform_fanOut() {
	path, cleanup := scriptFile(`
function transform(ev)
  ev.nats.subject = "internal.uploads"
  local public = ev:clone()
  public.record.userIdentity = nil
  public.nats.subject = "public.uploads"
  return ev, public
end`)
	defer cleanup()

	e, err := lua.New(context.Background(), path, lua.WithTimeout(time.Second), lua.WithReload(0))
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	outs, err := e.Transform(context.Background(), sampleEvent("pacific-16.2.15/put-with-meta.json"))
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range outs {
		fmt.Println(o.Subject, o.Event.Subject())
	}
	// Output:
	// internal.uploads docs/report.txt
	// public.uploads docs/report.txt
}

// A script written for RGW's postRequest context has no transform function:
// it runs once per event and what it publishes comes back as raw outputs.
func ExampleEngine_Transform_rgwScript() {
	path, cleanup := scriptFile(`
local nats = require("nats")
local client = nats.connect({host = nil, port = nil})
client:connect()
client:publish("rgw.ops", Request.RGWOp .. " " .. Request.Bucket.Name .. "/" .. Request.Object.Name)`)
	defer cleanup()

	e, err := lua.New(context.Background(), path, lua.WithTimeout(time.Second), lua.WithReload(0))
	if err != nil {
		log.Fatal(err)
	}
	defer e.Close()

	outs, err := e.Transform(context.Background(), sampleEvent("pacific-16.2.15/delete.json"))
	if err != nil {
		log.Fatal(err)
	}
	for _, o := range outs {
		fmt.Printf("%s %q\n", o.Subject, o.Raw)
	}
	// Output: rgw.ops "delete_obj nb-main/plain.bin"
}
