package tracecontext

import (
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

const valid = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParse(t *testing.T) {
	for _, c := range []struct {
		name, parent, state string
		want                Context
	}{
		{"valid", valid, "congo=t61rcWkgMzE", Context{valid, "congo=t61rcWkgMzE"}},
		{"not sampled", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "", Context{Parent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"}},
		{"later version with more fields", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-ever", "", Context{Parent: valid}},
		{"later version", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", Context{Parent: valid}},
		{"version ff", "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "", Context{}},
		{"version 00 with more", valid + "-x", "", Context{}},
		{"later version, no dash after", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x", "", Context{}},
		{"upper case", strings.ToUpper(valid), "", Context{}},
		{"zero trace id", "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "", Context{}},
		{"zero parent id", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01", "", Context{}},
		{"bad flags", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g", "", Context{}},
		{"short", valid[:54], "", Context{}},
		{"empty", "", "a=b", Context{}},
		{"dashes moved", "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01", "", Context{}},
		{"state with a line break dropped", valid, "a=b\r\nX: y", Context{Parent: valid}},
		{"state too long dropped", valid, strings.Repeat("a", MaxStateLen+1), Context{Parent: valid}},
	} {
		if got := Parse(c.parent, c.state); got != c.want {
			t.Errorf("%s: Parse(%q, %q) = %+v, want %+v", c.name, c.parent, c.state, got, c.want)
		}
	}
}

func TestFromHeader(t *testing.T) {
	for _, c := range []struct {
		name string
		h    map[string][]string
		want Context
	}{
		{"http canonical", map[string][]string{"Traceparent": {valid}, "Tracestate": {"a=1"}}, Context{valid, "a=1"}},
		{"nats lower case", map[string][]string{"traceparent": {valid}}, Context{Parent: valid}},
		{"other case", map[string][]string{"TRACEPARENT": {valid}, "TraceState": {"a=1"}}, Context{valid, "a=1"}},
		{"two states are one list", map[string][]string{"Traceparent": {valid}, "Tracestate": {"a=1", "b=2"}}, Context{valid, "a=1,b=2"}},
		{"two parents", map[string][]string{"Traceparent": {valid, valid}}, Context{}},
		{"none", map[string][]string{"Content-Type": {"application/json"}}, Context{}},
		{"nil", nil, Context{}},
	} {
		if got := FromHeader(c.h); got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}

func TestEventExtension(t *testing.T) {
	ev := event.New()
	ev.SetID("1")
	ev.SetSource("s")
	ev.SetType("t")
	if c := FromEvent(&ev); !c.IsZero() {
		t.Fatalf("event without the extension: %+v", c)
	}
	in := Context{valid, "a=1"}
	in.SetExtension(&ev)
	if c := FromEvent(&ev); c != in {
		t.Fatalf("extension read back as %+v", c)
	}
	// The extension says where the event was made: a later hop keeps it.
	Context{Parent: "00-11111111111111111111111111111111-2222222222222222-01"}.SetExtension(&ev)
	if c := FromEvent(&ev); c != in {
		t.Errorf("extension replaced: %+v", c)
	}
	if err := ev.Validate(); err != nil {
		t.Error(err)
	}
}

func TestSetHeader(t *testing.T) {
	h := map[string][]string{}
	Context{valid, "a=1"}.SetHeader(h)
	if h[Traceparent][0] != valid || h[Tracestate][0] != "a=1" {
		t.Fatalf("headers %v", h)
	}
	own := map[string][]string{"Traceparent": {"mine"}}
	Context{Parent: valid}.SetHeader(own)
	if len(own) != 1 {
		t.Errorf("a header already set was added to: %v", own)
	}
	empty := map[string][]string{}
	Context{}.SetHeader(empty)
	if len(empty) != 0 {
		t.Errorf("zero context wrote %v", empty)
	}
}

func TestSpanContextRoundTrip(t *testing.T) {
	in := Context{valid, "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7"}
	sc := in.SpanContext()
	if !sc.IsValid() || !sc.IsRemote() || !sc.IsSampled() || sc.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("span context %+v", sc)
	}
	if out := FromSpanContext(sc); out != in {
		t.Errorf("round trip: %+v, want %+v", out, in)
	}
	// A state OpenTelemetry cannot parse is left out, the parent kept.
	if sc := (Context{valid, "not a list"}).SpanContext(); !sc.IsValid() || sc.TraceState().Len() != 0 {
		t.Errorf("bad state: %+v", sc)
	}
	if (Context{}).SpanContext().IsValid() || !FromSpanContext((Context{}).SpanContext()).IsZero() {
		t.Error("zero context converts to a valid one")
	}
}

func TestNoAllocationsWithoutContext(t *testing.T) {
	h := map[string][]string{"Content-Type": {"application/json"}, "Content-Length": {"10"}}
	ev := event.New()
	ev.SetExtension("bucket", "b")
	if n := testing.AllocsPerRun(100, func() {
		c := FromHeader(h)
		if c.IsZero() {
			c = FromEvent(&ev)
		}
		c.SetHeader(h)
		c.SetExtension(&ev)
	}); n != 0 {
		t.Errorf("%v allocations per event without a trace context", n)
	}
	withCtx := map[string][]string{"Traceparent": {valid}}
	if n := testing.AllocsPerRun(100, func() { FromHeader(withCtx) }); n != 0 {
		t.Errorf("%v allocations to read a traceparent", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(valid, "a=1")
	f.Add("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", "")
	f.Fuzz(func(t *testing.T, parent, state string) {
		c := Parse(parent, state)
		if c.IsZero() {
			if c.State != "" {
				t.Fatal("state without parent")
			}
			return
		}
		// What Parse accepts is carried on as is and reads back the same.
		if again := Parse(c.Parent, c.State); again != c {
			t.Fatalf("not stable: %+v -> %+v", c, again)
		}
		if !c.SpanContext().IsValid() {
			t.Fatalf("accepted %q but it is no valid span context", c.Parent)
		}
		if FromSpanContext(c.SpanContext()).Parent != c.Parent {
			t.Fatalf("round trip of %q", c.Parent)
		}
	})
}
