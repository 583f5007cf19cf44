package service_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/service"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// settings are the defaults an operator gets, with a script.
func settings(t *testing.T, natsURL string) service.Settings {
	t.Helper()
	var s service.Settings
	for _, set := range []struct {
		tmpl *subject.Template
		text string
	}{{&s.NATSSubject, "rgw.{bucket}.{event}"}, {&s.DeadLetterSubject, "rgwnats.deadletter.{bucket}"}} {
		if err := set.tmpl.UnmarshalText([]byte(set.text)); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(t.TempDir(), "t.lua")
	if err := os.WriteFile(path, []byte(`function transform(ev) ev.nats.subject = "out.x" return ev end`), 0o644); err != nil {
		t.Fatal(err)
	}
	s.NATSURL, s.NATSClientName, s.NATSAckTimeout, s.NATSStreamReplicas = natsURL, "test", 2e9, 1
	s.DeadLetter, s.LuaScript, s.LuaFunction, s.LuaTimeout, s.LuaRGWTableKVReplicas = true, path, "transform", 1e9, 1
	if err := s.Validate(); err != nil {
		t.Fatal(err)
	}
	return s
}

// New builds the running pipeline over a real nats-server: what a request
// yields is in NATS, under the script's subject; Close drains it.
func TestNewPublishes(t *testing.T) {
	srv := testutil.NATS(t)
	svc, err := service.New(context.Background(), settings(t, srv.ClientURL()), service.Options{Logger: testutil.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	if svc.NATS == nil || svc.Engine == nil || svc.Table != nil {
		t.Fatalf("parts: nats %v engine %v table %v", svc.NATS, svc.Engine, svc.Table)
	}
	if err := svc.NATS.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	ch := testutil.Subscribe(t, srv.ClientURL(), "out.>")
	res := svc.Pipeline.Handle(context.Background(), adapter.Request{
		Header: ingress.Header{"Content-Type": {"application/json"}}, Body: events.Read("reef-put-capture.json"),
	})
	if a := res.Answer(); !a.Delivered() || res.Outcomes[0].Status != adapter.Published {
		t.Fatalf("answer %+v: %v", a, res.FirstErr())
	}
	testutil.Receive(t, ch, 1)
	if err := svc.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// With a Publisher given (`rgw-nats lua test`), nothing is connected: the
// same pipeline records what it would publish.
func TestNewOffline(t *testing.T) {
	var rec adapter.Recorder
	s := settings(t, "nats://127.0.0.1:1")
	s.LuaRGWTableKV = "table" // needs a connection: kept in memory offline
	svc, err := service.New(context.Background(), s, service.Options{Logger: testutil.Logger(t), Publisher: &rec})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close(context.Background())
	if svc.NATS != nil || svc.Table != nil {
		t.Fatal("connected offline")
	}
	svc.Pipeline.Handle(context.Background(), adapter.Request{Body: events.Read("reef-put-capture.json")})
	if msgs := rec.Take(); len(msgs) != 1 || msgs[0].Subject != "out.x" {
		t.Fatalf("recorded %v", msgs)
	}
}

// Connect uses the connection settings alone (the mapping New uses too):
// the name given, and no stream required even in JetStream mode.
func TestConnect(t *testing.T) {
	srv := testutil.NATS(t)
	s := settings(t, srv.ClientURL())
	s.NATSMode = natsout.JetStream
	s.NATSStream = "NONE"
	pub, err := service.Connect(context.Background(), s, "tool", testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close(context.Background())
	if err := pub.WaitReady(context.Background()); err != nil {
		t.Fatal(err)
	}
	if name := pub.Conn().Opts.Name; name != "tool" {
		t.Errorf("connection name %q", name)
	}
}
