package adapter_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
	"github.com/rgw-nats/rgw-nats/adapter/tracecontext"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

const (
	parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	state  = "congo=t61rcWkgMzE"
	// The trace of an event that came with its own extension.
	evParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
)

func tracePipeline(t *testing.T, e *env, enc binding.Encoding, tr adapter.Transformer, tracer trace.Tracer) *adapter.Pipeline {
	t.Helper()
	tmpl, _ := subject.Parse("rgw.{bucket}.{event}")
	p, err := adapter.New(adapter.Config{Subject: tmpl, Encoding: enc, Tracer: tracer}, e.pub, tr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// subscribe skips JetStream API traffic and replies (testutil.SubscribeOn):
// a ">" would otherwise catch the stream checks of the publisher.
func (e *env) subscribe(t *testing.T, subj string) chan *nats.Msg {
	t.Helper()
	return testutil.SubscribeOn(t, e.nc, subj)
}

// extension is the traceparent extension of a message's CloudEvent.
func extension(t *testing.T, m *nats.Msg) string {
	t.Helper()
	ev, err := binding.Decode(m)
	if err != nil {
		t.Fatal(err)
	}
	s, _ := ev.Extensions()["traceparent"].(string)
	return s
}

// Without a tracer the trace context passes through unchanged: from the
// request header, or from the event's own extension, onto the traceparent
// header and the extension of every message, in both encodings, for
// transformed and fanned-out events and raw script publishes alike.
func TestTraceContextPassesThrough(t *testing.T) {
	e := newEnv(t)
	fanOut := script(t, `
function transform(ev)
  local copy = ev:clone()
  copy.nats.subject = "public.copy"
  return ev, copy
end`)
	for _, enc := range []binding.Encoding{binding.Structured, binding.Binary} {
		t.Run(enc.String()+"/header", func(t *testing.T) {
			ch := e.subscribe(t, ">")
			p := tracePipeline(t, e, enc, fanOut, nil)
			res := p.Handle(context.Background(), adapter.Request{
				Header: ingress.Header{"Content-Type": {"application/json"}, "Traceparent": {parent}, "Tracestate": {state}},
				Body:   events.Read("reef-put-capture.json"),
			})
			if res.Class != 0 {
				t.Fatal(res.FirstErr())
			}
			for _, m := range testutil.Receive(t, ch, 2) {
				if m.Header.Get("traceparent") != parent || m.Header.Get("tracestate") != state {
					t.Errorf("%s: headers %v", m.Subject, m.Header)
				}
				if x := extension(t, m); x != parent {
					t.Errorf("%s: extension %q", m.Subject, x)
				}
				if enc == binding.Binary && m.Header.Get("ce-traceparent") != parent {
					t.Errorf("binary mode: ce-traceparent %q", m.Header.Get("ce-traceparent"))
				}
			}
		})
	}
	t.Run("extension of a structured CloudEvent", func(t *testing.T) {
		ch := e.subscribe(t, ">")
		p := tracePipeline(t, e, binding.Structured, nil, nil)
		body, _ := json.Marshal(map[string]any{
			"specversion": "1.0", "id": "ev-1", "source": "/kafka", "type": "t", "subject": "s",
			"traceparent": evParent, "datacontenttype": "text/plain", "data": "hello",
		})
		res := p.Handle(context.Background(), adapter.Request{
			Header: ingress.Header{"Content-Type": {"application/cloudevents+json"}}, Body: body,
		})
		if res.Class != 0 {
			t.Fatal(res.FirstErr())
		}
		m := testutil.Receive(t, ch, 1)[0]
		if m.Header.Get("traceparent") != evParent || extension(t, m) != evParent {
			t.Errorf("header %q extension %q", m.Header.Get("traceparent"), extension(t, m))
		}
	})
	t.Run("raw publish of an RGW-style script", func(t *testing.T) {
		ch := e.subscribe(t, "raw.>")
		p := tracePipeline(t, e, binding.Structured, script(t, `
local nats = require("nats")
local client = nats.connect()
client:connect()
client:publish("raw.objects", Request.Object.Name)`), nil)
		p.Handle(context.Background(), adapter.Request{
			Header: ingress.Header{"Traceparent": {parent}}, Body: events.Read("reef-put-capture.json"),
		})
		if m := testutil.Receive(t, ch, 1)[0]; m.Header.Get("traceparent") != parent {
			t.Errorf("raw message headers %v", m.Header)
		}
	})
	t.Run("dead letter", func(t *testing.T) {
		ch := e.subscribe(t, "rgw.dead.>")
		tmpl, _ := subject.Parse("rgw.{bucket}.{event}")
		dl, _ := subject.Parse("rgw.dead.{bucket}")
		p, _ := adapter.New(adapter.Config{Subject: tmpl, DeadLetter: dl}, e.pub, script(t, `function transform(ev) error("no") end`))
		res := p.Handle(context.Background(), adapter.Request{
			Header: ingress.Header{"Traceparent": {parent}}, Body: events.Read("reef-put-capture.json"),
		})
		if res.Class != 0 || res.Outcomes[0].Status != adapter.DeadLettered {
			t.Fatalf("%+v", res)
		}
		if m := testutil.Receive(t, ch, 1)[0]; m.Header.Get("traceparent") != parent {
			t.Errorf("dead letter headers %v", m.Header)
		}
	})
	t.Run("none", func(t *testing.T) {
		ch := e.subscribe(t, ">")
		p := tracePipeline(t, e, binding.Binary, nil, nil)
		p.Handle(context.Background(), adapter.Request{Body: events.Read("reef-put-capture.json")})
		m := testutil.Receive(t, ch, 1)[0]
		if _, ok := m.Header["traceparent"]; ok || extension(t, m) != "" {
			t.Errorf("a trace context out of nowhere: %v", m.Header)
		}
	})
}

// With a tracer, each event gets a Lua span and a publish span under the
// request's span, and its messages carry the publish span's context; an
// event that brought its own trace is continued in that trace, linked to
// the request.
func TestTraceSpans(t *testing.T) {
	e := newEnv(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tracer := tp.Tracer("test")
	p := tracePipeline(t, e, binding.Structured, script(t, `function transform(ev) return ev end`), tracer)

	t.Run("request header", func(t *testing.T) {
		ch := e.subscribe(t, ">")
		remote := trace.ContextWithRemoteSpanContext(context.Background(), tracecontext.Parse(parent, "").SpanContext())
		ctx, req := tracer.Start(remote, "request")
		p.Handle(ctx, adapter.Request{
			Header: ingress.Header{"Traceparent": {parent}}, Body: events.Read("reef-put-capture.json"),
		})
		req.End()
		m := testutil.Receive(t, ch, 1)[0]
		spans := byName(rec.Ended())
		lua, pub := spans["lua transform"], spans["publish"]
		if lua == nil || pub == nil {
			t.Fatalf("spans %v", spans)
		}
		for _, s := range []sdktrace.ReadOnlySpan{lua, pub} {
			if s.Parent().SpanID() != req.SpanContext().SpanID() || s.SpanContext().TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
				t.Errorf("%s: parent %v trace %v", s.Name(), s.Parent().SpanID(), s.SpanContext().TraceID())
			}
		}
		want := "00-4bf92f3577b34da6a3ce929d0e0e4736-" + pub.SpanContext().SpanID().String() + "-01"
		if got := m.Header.Get("traceparent"); got != want {
			t.Errorf("message traceparent %q, want the publish span's %q", got, want)
		}
		if pub.SpanKind() != trace.SpanKindProducer {
			t.Errorf("publish span kind %v", pub.SpanKind())
		}
	})
	t.Run("event extension", func(t *testing.T) {
		ch := e.subscribe(t, ">")
		ctx, req := tracer.Start(context.Background(), "request")
		body, _ := json.Marshal(map[string]any{
			"specversion": "1.0", "id": "ev-2", "source": "/kafka", "type": "t",
			"traceparent": evParent, "datacontenttype": "text/plain", "data": "hello",
		})
		before := len(rec.Ended())
		p.Handle(ctx, adapter.Request{Header: ingress.Header{"Content-Type": {"application/cloudevents+json"}}, Body: body})
		req.End()
		m := testutil.Receive(t, ch, 1)[0]
		spans := byName(rec.Ended()[before:])
		pub := spans["publish"]
		if pub == nil || pub.Parent().SpanID().String() != "b7ad6b7169203331" {
			t.Fatalf("publish span %v", pub)
		}
		if l := pub.Links(); len(l) != 1 || l[0].SpanContext.SpanID() != req.SpanContext().SpanID() {
			t.Errorf("links %v, want the request span", l)
		}
		// The extension keeps the event's origin; the header continues ours.
		if extension(t, m) != evParent || m.Header.Get("traceparent") != "00-0af7651916cd43dd8448eb211c80319c-"+pub.SpanContext().SpanID().String()+"-01" {
			t.Errorf("extension %q header %q", extension(t, m), m.Header.Get("traceparent"))
		}
	})
	t.Run("failure", func(t *testing.T) {
		p := tracePipeline(t, e, binding.Structured, script(t, `function transform(ev) error("no") end`), tracer)
		before := len(rec.Ended())
		p.Handle(context.Background(), adapter.Request{Body: events.Read("reef-put-capture.json")})
		spans := byName(rec.Ended()[before:])
		if s := spans["lua transform"]; s == nil || s.Status().Code.String() != "Error" {
			t.Fatalf("lua span %v", s)
		}
		if spans["publish"] != nil {
			t.Error("a publish span for an event that published nothing")
		}
	})
}

func byName(spans []sdktrace.ReadOnlySpan) map[string]sdktrace.ReadOnlySpan {
	m := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range spans {
		m[s.Name()] = s
	}
	return m
}

// A span says what the event's outcome says: the deadline that one event
// hits again and again is poison, permanent, on its last attempt's span,
// as in its dead letter and its metric; not timeout, transient, as its
// error alone would be classified.
func TestTraceSpanReadsTheOutcome(t *testing.T) {
	e := newEnv(t)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	tmpl, _ := subject.Parse("rgw.{bucket}.{event}")
	path := filepath.Join(t.TempDir(), "t.lua")
	if err := os.WriteFile(path, []byte(`function transform(ev) while true do end end`), 0o644); err != nil {
		t.Fatal(err)
	}
	engine, err := lua.New(context.Background(), path, lua.WithReload(0), lua.WithTimeout(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { engine.Close() })
	p, err := adapter.New(adapter.Config{Subject: tmpl, PoisonAttempts: 2, PoisonWindow: time.Minute, Tracer: tp.Tracer("test")}, e.pub, engine)
	if err != nil {
		t.Fatal(err)
	}
	for attempt, want := range []struct {
		reason adapter.Reason
		class  adapter.Class
	}{{adapter.ReasonTimeout, adapter.Transient}, {adapter.ReasonPoison, adapter.Permanent}} {
		before := len(rec.Ended())
		res := p.Handle(context.Background(), adapter.Request{Body: events.Read("reef-put-capture.json")})
		o := res.Outcomes[0]
		if o.Reason != want.reason || o.Class != want.class {
			t.Fatalf("attempt %d: outcome %s %s, want %s %s", attempt+1, o.Class, o.Reason, want.class, want.reason)
		}
		s := byName(rec.Ended()[before:])["lua transform"]
		if s == nil || s.Status().Code.String() != "Error" {
			t.Fatalf("attempt %d: lua span %v", attempt+1, s)
		}
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if attrs["error.type"] != want.reason.String() || attrs["rgwnats.failure"] != want.class.String() {
			t.Errorf("attempt %d: span error.type=%q rgwnats.failure=%q, want %s %s", attempt+1, attrs["error.type"], attrs["rgwnats.failure"], want.reason, want.class)
		}
		if d := s.EndTime().Sub(s.StartTime()); d < 20*time.Millisecond {
			t.Errorf("attempt %d: lua span lasted %v, less than the deadline it hit", attempt+1, d)
		}
	}
}
