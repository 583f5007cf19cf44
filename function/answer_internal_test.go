package function

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// TestAnswerMetricSpanAgree walks every reason through every sender kind
// (raw RGW, RGW's binary CloudEvents, and binary, structured and batch
// CloudEvents from other senders), as a failure the pipeline reports and as
// a refusal of the HTTP shell: the status code and Retry-After written, the
// requests and events metrics and the request's span all say what the one
// table says.
func TestAnswerMetricSpanAgree(t *testing.T) {
	senders := []struct {
		name   string
		header http.Header
	}{
		{"raw RGW", http.Header{"Content-Type": {"application/json"}}},
		{"binary RGW", http.Header{"Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"ceph:s3.zone"}, "Ce-Type": {"t"}}},
		{"binary", http.Header{"Content-Type": {"application/json"}, "Ce-Specversion": {"1.0"}, "Ce-Id": {"1"}, "Ce-Source": {"/kafka"}, "Ce-Type": {"t"}}},
		{"structured", http.Header{"Content-Type": {"application/cloudevents+json"}}},
		{"batch", http.Header{"Content-Type": {"application/cloudevents-batch+json"}}},
	}
	reasons := append([]adapter.Reason{adapter.ReasonNone}, adapter.Reasons[:]...)
	f := New(WithLogger(testutil.Logger(t)))
	run := &running{cfg: Config{RetryAfter: 7}, log: f.early.logger, failures: f.early, metrics: newMetrics()}
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	t.Cleanup(func() { tp.Shutdown(context.Background()) })
	for _, s := range senders {
		mode, fromRGW := ingress.Sender(ingress.Header(s.header))
		for _, reason := range reasons {
			for _, shell := range []bool{false, true} {
				if reason == adapter.ReasonNone && shell {
					continue // the shell refuses; it never delivers
				}
				sender := adapter.FromCloudEvents
				if fromRGW {
					sender = adapter.FromRGW
				}
				res := adapter.Result{Mode: mode, Sender: sender, Class: reason.Class(), Reason: reason}
				if reason != adapter.ReasonNone {
					res.Outcomes = []adapter.Outcome{{EventID: "e", Status: adapter.Failed, Class: reason.Class(), Reason: reason}}
				}
				want := res.Answer()
				name := s.name + "/" + reason.String()
				r := httptest.NewRequest(http.MethodPost, "/", strings.NewReader("{}"))
				r.Header = s.header.Clone()
				ctx, span := startRequest(tp.Tracer("test"), r)
				r = r.WithContext(ctx)
				w := httptest.NewRecorder()
				var a adapter.Answer
				switch {
				case shell:
					a = f.refuse(w, r, run, reason, "refused")
				case reason == adapter.ReasonNone:
					a = res.Answer()
					w.WriteHeader(a.Status)
				default:
					a = f.answer(w, r, run, res.Answer(), "failed")
				}
				if a != want {
					t.Errorf("%s: answer %+v, the table says %+v", name, a, want)
				}
				if w.Code != want.Status {
					t.Errorf("%s: wrote %d, the table says %d", name, w.Code, want.Status)
				}
				if got := w.Header().Get("Retry-After"); (got == "7") != want.Retry {
					t.Errorf("%s: Retry-After %q with retry %v", name, got, want.Retry)
				}
				// Metrics: the answered code is a series made in advance, and
				// the event's reason is its label.
				if _, ok := run.metrics.byCode[w.Code]; !ok {
					t.Errorf("%s: code %d has no requests series made in advance", name, w.Code)
				}
				codeBefore := value(run.metrics.requests.WithLabelValues(mode.String(), strconv.Itoa(w.Code)))
				run.metrics.request(mode, w.Code)
				if d := value(run.metrics.requests.WithLabelValues(mode.String(), strconv.Itoa(w.Code))) - codeBefore; d != 1 {
					t.Errorf("%s: requests{code=%d} grew by %v", name, w.Code, d)
				}
				if !shell && reason != adapter.ReasonNone {
					ev := run.metrics.events.WithLabelValues("failed", reason.String())
					before := value(ev)
					run.metrics.result(&res)
					if d := value(ev) - before; d != 1 {
						t.Errorf("%s: events{outcome=failed,reason=%s} grew by %v", name, reason, d)
					}
				}
				// The span: the code, the reason and the status of the answer.
				n := len(rec.Ended())
				endRequest(span, mode, a, &res)
				got := rec.Ended()[n]
				attrs := map[string]string{}
				for _, kv := range got.Attributes() {
					attrs[string(kv.Key)] = kv.Value.Emit()
				}
				if attrs["http.response.status_code"] != strconv.Itoa(w.Code) {
					t.Errorf("%s: span status code %s, answered %d", name, attrs["http.response.status_code"], w.Code)
				}
				if reason == adapter.ReasonNone {
					if _, ok := attrs["error.type"]; ok || got.Status().Code == codes.Error {
						t.Errorf("%s: a delivered request's span says error %q %v", name, attrs["error.type"], got.Status())
					}
					continue
				}
				if attrs["error.type"] != reason.String() || attrs["rgwnats.failure"] != want.Class.String() {
					t.Errorf("%s: span error.type=%q rgwnats.failure=%q", name, attrs["error.type"], attrs["rgwnats.failure"])
				}
				if (got.Status().Code == codes.Error) != (w.Code >= 500) {
					t.Errorf("%s: span status %v for %d", name, got.Status(), w.Code)
				}
			}
		}
	}
}

func value(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}
