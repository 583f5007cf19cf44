// Package tracecontext carries W3C Trace Context (the traceparent and
// tracestate headers) from where an event came in, an HTTP request or the
// CloudEvents distributed-tracing extension of the event itself, to the NATS
// messages published for it: as the traceparent and tracestate NATS headers
// and as the event's extension, so that a NATS consumer continues the trace.
//
// Reading and writing cost nothing when no trace context came in, and never
// need a tracer: without one the context passes through unchanged. With
// one, SpanContext and FromSpanContext convert to and from OpenTelemetry.
//
// It is pure: it must not import net/http, NATS connections, Lua, the
// pipeline or the OpenTelemetry SDK (only its API types).
package tracecontext

import (
	"encoding/hex"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"go.opentelemetry.io/otel/trace"
)

// The header names, lower case as W3C Trace Context writes them; they are
// also the names of the CloudEvents distributed-tracing extension.
const (
	Traceparent = "traceparent"
	Tracestate  = "tracestate"
)

// MaxStateLen bounds a tracestate carried on; W3C asks to propagate at least
// 512 characters, and a longer one is dropped (the traceparent is kept).
const MaxStateLen = 512

// Context is a validated trace context as its two header values. The zero
// value is no trace context.
type Context struct {
	Parent string // 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
	State  string // vendor entries, "" when none
}

// IsZero reports whether there is no trace context.
func (c Context) IsZero() bool { return c.Parent == "" }

// Parse validates a traceparent (and its tracestate). An invalid traceparent
// gives the zero Context; an invalid tracestate is dropped, as W3C says. A
// traceparent of a later version is read as version 00 and carried on as
// one.
func Parse(traceparent, tracestate string) Context {
	p, ok := parseParent(traceparent)
	if !ok {
		return Context{}
	}
	c := Context{Parent: p}
	if validState(tracestate) {
		c.State = tracestate
	}
	return c
}

func parseParent(s string) (string, bool) {
	// version "-" trace-id "-" parent-id "-" flags
	const n = 2 + 1 + 32 + 1 + 16 + 1 + 2
	if len(s) < n || s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return "", false
	}
	v, ok := hexByte(s[0], s[1])
	if !ok || v == 0xff || v == 0 && len(s) != n || len(s) > n && s[n] != '-' {
		return "", false
	}
	if _, ok := hexByte(s[53], s[54]); !ok {
		return "", false
	}
	if _, err := trace.TraceIDFromHex(s[3:35]); err != nil {
		return "", false
	}
	if _, err := trace.SpanIDFromHex(s[36:52]); err != nil {
		return "", false
	}
	if v != 0 {
		return "00" + s[2:n], true
	}
	return s, true
}

func hexByte(a, b byte) (byte, bool) {
	x, ok1 := hexDigit(a)
	y, ok2 := hexDigit(b)
	return x<<4 | y, ok1 && ok2
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// validState accepts what can be carried on as a header value: bounded,
// printable ASCII. Its list syntax is checked only when converting to
// OpenTelemetry (SpanContext).
func validState(s string) bool {
	if len(s) > MaxStateLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// FromHeader reads the trace context of request or message headers (any
// case of the names). More than one traceparent is invalid; several
// tracestate headers are one list.
func FromHeader(h map[string][]string) Context {
	if len(h) == 0 {
		return Context{}
	}
	parent := lookup(h, "Traceparent", Traceparent)
	if len(parent) != 1 {
		return Context{}
	}
	state := lookup(h, "Tracestate", Tracestate)
	switch len(state) {
	case 0:
		return Parse(parent[0], "")
	case 1:
		return Parse(parent[0], state[0])
	}
	return Parse(parent[0], strings.Join(state, ","))
}

// lookup finds a header by its canonical (HTTP) or lower-case (NATS) name
// without allocating, and by any other case as a last resort.
func lookup(h map[string][]string, canonical, lower string) []string {
	if v, ok := h[canonical]; ok {
		return v
	}
	if v, ok := h[lower]; ok {
		return v
	}
	for k, v := range h {
		if len(k) == len(lower) && strings.EqualFold(k, lower) {
			return v
		}
	}
	return nil
}

// FromEvent reads the event's distributed-tracing extension.
func FromEvent(ev *event.Event) Context {
	exts := extensions(ev)
	if len(exts) == 0 {
		return Context{}
	}
	p, ok := exts[Traceparent]
	if !ok {
		return Context{}
	}
	parent, err := types.ToString(p)
	if err != nil {
		return Context{}
	}
	var state string
	if s, ok := exts[Tracestate]; ok {
		state, _ = types.ToString(s)
	}
	return Parse(parent, state)
}

// extensions reads the extensions without the copy Event.Extensions makes.
func extensions(ev *event.Event) map[string]any {
	if ev == nil || ev.Context == nil {
		return nil
	}
	if c, ok := ev.Context.(*event.EventContextV1); ok {
		return c.Extensions
	}
	return ev.Extensions()
}

// SetHeader writes c as the traceparent and tracestate headers, unless h
// already has a traceparent (a script's own choice wins).
func (c Context) SetHeader(h map[string][]string) {
	if c.IsZero() || h == nil || lookup(h, "Traceparent", Traceparent) != nil {
		return
	}
	h[Traceparent] = []string{c.Parent}
	if c.State != "" {
		h[Tracestate] = []string{c.State}
	}
}

// SetExtension writes c as the event's distributed-tracing extension, unless
// the event already carries one: the CloudEvents extension names the context
// in which the event was made, which a hop must not replace.
func (c Context) SetExtension(ev *event.Event) {
	if c.IsZero() || ev == nil || ev.Context == nil {
		return
	}
	if _, ok := extensions(ev)[Traceparent]; ok {
		return
	}
	ev.SetExtension(Traceparent, c.Parent)
	if c.State != "" {
		ev.SetExtension(Tracestate, c.State)
	}
}

// SpanContext is c as a remote OpenTelemetry span context, to start a span
// under; invalid when c is zero. A tracestate that is not a valid list is
// left out.
func (c Context) SpanContext() trace.SpanContext {
	if c.IsZero() {
		return trace.SpanContext{}
	}
	tid, _ := trace.TraceIDFromHex(c.Parent[3:35])
	sid, _ := trace.SpanIDFromHex(c.Parent[36:52])
	flags, _ := hexByte(c.Parent[53], c.Parent[54])
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags), Remote: true}
	if c.State != "" {
		if ts, err := trace.ParseTraceState(c.State); err == nil {
			cfg.TraceState = ts
		}
	}
	return trace.NewSpanContext(cfg)
}

// FromSpanContext is the trace context that continues under sc (a span of
// ours); zero when sc is not valid.
func FromSpanContext(sc trace.SpanContext) Context {
	if !sc.IsValid() {
		return Context{}
	}
	var b [55]byte
	b[0], b[1], b[2] = '0', '0', '-'
	tid, sid := sc.TraceID(), sc.SpanID()
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return Context{Parent: string(b[:]), State: sc.TraceState().String()}
}
