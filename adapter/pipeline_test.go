package adapter_test

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// env is a real nats-server with a stream on everything the tests publish,
// a publisher in JetStream mode, and an observer connection.
type env struct {
	pub *natsout.Publisher
	js  jetstream.JetStream
	nc  *nats.Conn
}

func newEnv(t *testing.T) *env {
	t.Helper()
	s := testutil.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pub, err := natsout.Connect(ctx, natsout.Config{
		URL: s.ClientURL(), Mode: natsout.JetStream, Stream: "T", Logger: slog.New(slog.DiscardHandler),
		StreamSubjects: []string{"rgw.>", "internal.>", "public.>", "raw.>"}, StreamCreate: true,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	if err := pub.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	return &env{pub: pub, js: js, nc: nc}
}

// stored returns the subjects of every message in the stream, in order.
func (e *env) stored(t *testing.T) []string {
	t.Helper()
	ctx := context.Background()
	s, err := e.js.Stream(ctx, "T")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	var subjects []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		subjects = append(subjects, m.Subject)
	}
	return subjects
}

func mapped(t *testing.T, files ...string) []event.Event {
	t.Helper()
	var evs []event.Event
	for _, f := range files {
		recs, err := rgw.Decode(events.Read(f))
		if err != nil {
			t.Fatal(err)
		}
		for i := range recs {
			ev, err := cloudevent.FromRecord(&recs[i], cloudevent.Options{})
			if err != nil {
				t.Fatal(err)
			}
			evs = append(evs, ev)
		}
	}
	return evs
}

func script(t *testing.T, src string) *lua.Engine {
	t.Helper()
	path := filepath.Join(t.TempDir(), "t.lua")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	e, err := lua.New(context.Background(), path, lua.WithReload(0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

func pipeline(t *testing.T, e *env, tr adapter.Transformer) *adapter.Pipeline {
	t.Helper()
	tmpl, err := subject.Parse("rgw.{bucket}.{event}")
	if err != nil {
		t.Fatal(err)
	}
	p, err := adapter.New(adapter.Config{Subject: tmpl}, e.pub, tr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProcessWithoutTransform(t *testing.T) {
	e := newEnv(t)
	p := pipeline(t, e, nil)
	evs := mapped(t, "reef-put-capture.json", "pacific-16.2.15/delete.json")
	for _, o := range p.Process(context.Background(), evs) {
		if o.Err != nil || len(o.Published) != 1 {
			t.Fatalf("outcome %+v", o)
		}
	}
	got := e.stored(t)
	if len(got) != 2 || got[0] != "rgw.jayanth.ObjectCreated.Put" || got[1] != "rgw.nb-main.ObjectRemoved.Delete" {
		t.Fatalf("stored %v", got)
	}
}

// A fan-out of copies that share the event id must not be collapsed by
// JetStream, yet a redelivery of the same event must be.
func TestProcessFanOutIDs(t *testing.T) {
	e := newEnv(t)
	p := pipeline(t, e, script(t, `
function transform(ev)
  local copy = ev:clone()
  ev.nats.subject = "internal.x"
  copy.nats.subject = "public.x"
  local third = ev:clone()
  third.nats.subject = "public.x"
  return ev, copy, third
end`))
	for range 2 {
		evs := mapped(t, "reef-put-capture.json")
		out := p.Process(context.Background(), evs)
		if out[0].Err != nil || len(out[0].Published) != 3 {
			t.Fatalf("outcome %+v", out[0])
		}
	}
	got := e.stored(t)
	if len(got) != 3 || got[0] != "internal.x" || got[1] != "public.x" || got[2] != "public.x" {
		t.Fatalf("stored %v, want the three outputs once each", got)
	}
}

// An event whose transform fails publishes nothing; the others go out.
func TestProcessPerEventOutcome(t *testing.T) {
	e := newEnv(t)
	p := pipeline(t, e, script(t, `
function transform(ev)
  if ev.ext.bucket == "jayanth" then error("no thanks") end
  if ev.ext.bucket == "xraylab-0001" then
    local ok = ev:clone()
    ev.ext.note = "\255 not UTF-8"
    return ok, ev
  end
  return ev
end`))
	evs := mapped(t, "reef-put-capture.json", "downstream-xraylab-put-capture.json", "pacific-16.2.15/copy.json")
	out := p.Process(context.Background(), evs)
	if !errors.Is(out[0].Err, lua.ErrScript) || out[0].Published != nil {
		t.Errorf("script error: %+v", out[0])
	}
	if !errors.Is(out[1].Err, adapter.ErrOutput) || out[1].Published != nil {
		t.Errorf("unpublishable second output: %+v", out[1])
	}
	if out[2].Err != nil {
		t.Errorf("good event: %v", out[2].Err)
	}
	if got := e.stored(t); len(got) != 1 || got[0] != "rgw.nb-main.ObjectCreated.Copy" {
		t.Fatalf("stored %v: only the good event, and nothing of a half-failed fan-out", got)
	}
}

// Data the Lua engine wrote itself is not validated again, but the
// attributes of its event still are: a changed record with an extension
// that is not UTF-8 is not published.
func TestProcessLuaDataAttributesStillChecked(t *testing.T) {
	e := newEnv(t)
	p := pipeline(t, e, script(t, `
function transform(ev)
  ev.record.awsRegion = "changed"
  if ev.ext.bucket == "xraylab-0001" then ev.ext.note = "\255 not UTF-8" end
  return ev
end`))
	out := p.Process(context.Background(), mapped(t, "reef-put-capture.json", "downstream-xraylab-put-capture.json"))
	if out[0].Err != nil || len(out[0].Published) != 1 || !strings.Contains(string(out[0].Published[0].Data()), `"awsRegion":"changed"`) {
		t.Errorf("changed record: %+v", out[0])
	}
	if !errors.Is(out[1].Err, adapter.ErrOutput) || out[1].Published != nil {
		t.Errorf("extension not UTF-8: %+v", out[1])
	}
}

// Raw payloads published by an RGW-style script go out as they are, over the
// shared connection, acknowledged like everything else.
func TestProcessRawPublish(t *testing.T) {
	e := newEnv(t)
	p := pipeline(t, e, script(t, `
local nats = require("nats")
local client = nats.connect()
client:connect()
client:publish("raw.objects", Request.Object.Name)`))
	out := p.Process(context.Background(), mapped(t, "reef-put-capture.json"))
	if out[0].Err != nil || len(out[0].Published) != 0 {
		t.Fatalf("outcome %+v", out[0])
	}
	s, _ := e.js.Stream(context.Background(), "T")
	m, err := s.GetLastMsgForSubject(context.Background(), "raw.objects")
	if err != nil || string(m.Data) != "notification.json" {
		t.Fatalf("raw message %v %v", m, err)
	}
}

func TestProcessNATSDown(t *testing.T) {
	e := newEnv(t)
	p := pipeline(t, e, nil)
	e.pub.Close(context.Background())
	for _, o := range p.Process(context.Background(), mapped(t, "reef-put-capture.json")) {
		if o.Err == nil {
			t.Fatal("published with the connection closed")
		}
	}
}

// waitingTransformer returns the event only once its context is done.
type waitingTransformer struct{ deadline time.Time }

func (w *waitingTransformer) Transform(ctx context.Context, ev *event.Event) ([]lua.Output, error) {
	w.deadline, _ = ctx.Deadline()
	select {
	case <-ctx.Done():
	case <-time.After(10 * time.Second):
		return nil, errors.New("the event's context never ended")
	}
	return []lua.Output{{Event: ev}}, nil
}

// EventTimeout bounds the transform and the outputs after it: a transform
// that waits on its context is ended by it, and what it returns that late
// is not published.
func TestProcessEventTimeout(t *testing.T) {
	e := newEnv(t)
	tmpl, err := subject.Parse("rgw.{bucket}.{event}")
	if err != nil {
		t.Fatal(err)
	}
	tr := &waitingTransformer{}
	p, err := adapter.New(adapter.Config{Subject: tmpl, EventTimeout: 50 * time.Millisecond}, e.pub, tr)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	out := p.Process(context.Background(), mapped(t, "reef-put-capture.json"))
	took := time.Since(start)
	// Set when the event's transform began: after start, before the end.
	if left := tr.deadline.Sub(start); left < 50*time.Millisecond || left > 50*time.Millisecond+took {
		t.Errorf("the transform's deadline was %v away", left)
	}
	if !errors.Is(out[0].Err, lua.ErrTimeout) || out[0].Published != nil || took < 50*time.Millisecond {
		t.Fatalf("outcome %+v after %v", out[0], took)
	}
	if out[0].Status != adapter.Failed || out[0].Class != adapter.Transient || out[0].Reason != adapter.ReasonTimeout {
		t.Errorf("outcome %v %v %v", out[0].Status, out[0].Class, out[0].Reason)
	}
	if got := e.stored(t); len(got) != 0 {
		t.Errorf("published %v", got)
	}
}
