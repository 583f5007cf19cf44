package function_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
)

// otlpReceiver is an OTLP/HTTP trace receiver on a real loopback listener:
// it decodes what the exporter sends with the OTLP protobuf types and keeps
// every span with the service name of its resource.
type otlpReceiver struct {
	url   string
	spans chan receivedSpan
}

type receivedSpan struct {
	service string
	span    *tracepb.Span
}

func newOTLPReceiver(t *testing.T) *otlpReceiver {
	t.Helper()
	r := &otlpReceiver{spans: make(chan receivedSpan, 100)}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/traces", func(w http.ResponseWriter, req *http.Request) {
		if ct := req.Header.Get("Content-Type"); ct != "application/x-protobuf" {
			t.Errorf("OTLP export with Content-Type %q", ct)
		}
		var body io.Reader = req.Body
		if req.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(req.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = zr
		}
		b, err := io.ReadAll(body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var export coltracepb.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &export); err != nil {
			t.Errorf("OTLP body does not decode: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, rs := range export.GetResourceSpans() {
			service := attr(rs.GetResource().GetAttributes(), "service.name")
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					r.spans <- receivedSpan{service: service, span: s}
				}
			}
		}
		out, _ := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	r.url = srv.URL
	return r
}

// take returns the spans received until n have come or 10s have passed.
func (r *otlpReceiver) take(t *testing.T, n int) map[string]receivedSpan {
	t.Helper()
	got := map[string]receivedSpan{}
	timeout := time.After(10 * time.Second)
	for len(got) < n {
		select {
		case s := <-r.spans:
			got[s.span.GetName()] = s
		case <-timeout:
			t.Fatalf("received %d spans, want %d: %v", len(got), n, got)
		}
	}
	return got
}

func attr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() == key {
			if v, ok := kv.GetValue().GetValue().(*commonpb.AnyValue_IntValue); ok {
				return strconv.FormatInt(v.IntValue, 10)
			}
			return kv.GetValue().GetStringValue()
		}
	}
	return ""
}

// TestTraceOverHTTPToNATSAndOTLP: a traceparent sent over HTTP arrives on
// the NATS message, continued by our publish span, and the request, Lua and
// publish spans reach a real OTLP/HTTP receiver in that trace.
func TestTraceOverHTTPToNATSAndOTLP(t *testing.T) {
	const (
		traceID  = "4bf92f3577b34da6a3ce929d0e0e4736"
		parentID = "00f067aa0ba902b7"
		state    = "congo=t61rcWkgMzE"
	)
	for _, enc := range []binding.Encoding{binding.Structured, binding.Binary} {
		t.Run(enc.String(), func(t *testing.T) {
			rcv := newOTLPReceiver(t)
			s := runNATS(t)
			cfg := testConfig(t, s.ClientURL())
			cfg.NATSMode = natsout.JetStream
			cfg.CEMode = enc
			cfg.LuaScript = writeScript(t, `function transform(ev) ev.ext.seen = "yes" return ev end`)
			cfg.OTELEndpoint = rcv.url
			a := startAdapter(t, cfg, s.ClientURL())
			ch := a.subscribe(t, "rgw.>")

			resp := post(t, a.url, map[string]string{
				"Content-Type": "application/json",
				"Traceparent":  "00-" + traceID + "-" + parentID + "-01",
				"Tracestate":   state,
			}, fixture(t, putFixture))
			if resp.code != http.StatusAccepted {
				t.Fatalf("%d %s", resp.code, resp.body)
			}
			m := receive(t, ch, 1)[0]
			tp := m.Header.Get("traceparent")
			if len(tp) != 55 || tp[3:35] != traceID || tp[36:52] == parentID || tp[53:] != "01" {
				t.Fatalf("message traceparent %q: want trace %s continued under our span", tp, traceID)
			}
			if m.Header.Get("tracestate") != state {
				t.Errorf("tracestate %q", m.Header.Get("tracestate"))
			}
			ev := decode(t, m)
			if ev.Extensions()["traceparent"] != tp || ev.Extensions()["seen"] != "yes" {
				t.Errorf("extensions %v", ev.Extensions())
			}

			// Stop exports what is queued.
			if err := a.f.Stop(context.Background()); err != nil {
				t.Fatal(err)
			}
			spans := rcv.take(t, 3)
			req, luaSpan, pub := spans["POST"], spans["lua transform"], spans["publish"]
			if req.span == nil || luaSpan.span == nil || pub.span == nil {
				t.Fatalf("spans %v", spans)
			}
			for name, s := range spans {
				if got := hex.EncodeToString(s.span.GetTraceId()); got != traceID {
					t.Errorf("%s: trace %s, want %s", name, got, traceID)
				}
				if s.service != "rgw-nats" {
					t.Errorf("%s: service.name %q", name, s.service)
				}
			}
			if got := hex.EncodeToString(req.span.GetParentSpanId()); got != parentID || req.span.GetKind() != tracepb.Span_SPAN_KIND_SERVER {
				t.Errorf("request span: parent %s kind %v, want %s SERVER", got, req.span.GetKind(), parentID)
			}
			if code := attr(req.span.GetAttributes(), "http.response.status_code"); code != "202" {
				t.Errorf("request span status code %q", code)
			}
			for _, s := range []*tracepb.Span{luaSpan.span, pub.span} {
				if !bytes.Equal(s.GetParentSpanId(), req.span.GetSpanId()) {
					t.Errorf("%s: parent %x, want the request span %x", s.GetName(), s.GetParentSpanId(), req.span.GetSpanId())
				}
			}
			if got := hex.EncodeToString(pub.span.GetSpanId()); got != tp[36:52] || pub.span.GetKind() != tracepb.Span_SPAN_KIND_PRODUCER {
				t.Errorf("publish span %s kind %v; the message continues %s", got, pub.span.GetKind(), tp[36:52])
			}
		})
	}
}
