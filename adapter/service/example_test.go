package service_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/service"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// New builds the pipeline from Settings; here with a recording publisher
// instead of NATS, as `rgw-nats lua test` does.
func ExampleNew() {
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	script := filepath.Join(dir, "route.lua")
	os.WriteFile(script, []byte(`function transform(ev) ev.nats.subject = "uploads." .. ev.ext.bucket return ev end`), 0o644)

	var s service.Settings
	s.NATSSubject.UnmarshalText([]byte("rgw.{bucket}.{event}"))
	s.LuaScript, s.LuaFunction, s.LuaTimeout = script, "transform", 1e9
	var rec adapter.Recorder
	svc, err := service.New(context.Background(), s, service.Options{Publisher: &rec})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Close(context.Background())
	res := svc.Pipeline.Handle(context.Background(), adapter.Request{
		Header: ingress.Header{"Content-Type": {"application/json"}},
		Body:   events.Read("reef-put-capture.json"),
	})
	for _, m := range rec.Take() {
		fmt.Println(res.Answer().Status, m.Subject)
	}
	// Output:
	// 202 uploads.jayanth
}
