package function

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/tracecontext"
)

// tracerName names the spans' instrumentation scope.
const tracerName = "github.com/rgw-nats/rgw-nats"

// tracesURL is where spans are sent: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as
// it is, or OTEL_EXPORTER_OTLP_ENDPOINT with the signal path /v1/traces, as
// the OpenTelemetry specification says; "" when tracing is off.
func (c *Config) tracesURL() string {
	switch {
	case c.OTELDisabled:
		return ""
	case c.OTELTracesEndpoint != "":
		return c.OTELTracesEndpoint
	case c.OTELEndpoint != "":
		return strings.TrimSuffix(c.OTELEndpoint, "/") + "/v1/traces"
	}
	return ""
}

// newTracing starts the OpenTelemetry SDK with an OTLP/HTTP exporter when
// an endpoint is configured. Without one it returns nil and nothing of the
// SDK runs: no tracer provider, no span, no exporter goroutine.
//
// The exporter reads its other settings (OTEL_EXPORTER_OTLP_HEADERS,
// _TIMEOUT, _COMPRESSION, _CERTIFICATE), the sampler (OTEL_TRACES_SAMPLER)
// and the batching (OTEL_BSP_*) from the process environment itself.
func newTracing(ctx context.Context, cfg *Config, log *slog.Logger) (*sdktrace.TracerProvider, error) {
	url := cfg.tracesURL()
	if url == "" {
		return nil, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(url))
	if err != nil {
		return nil, fmt.Errorf("OTLP trace exporter for %s: %w", url, err)
	}
	// resource.Default holds the SDK's attributes and OTEL_RESOURCE_ATTRIBUTES;
	// OTEL_SERVICE_NAME wins over the latter, as the specification says.
	b := buildInfo()
	res, err := resource.Merge(resource.Default(),
		resource.NewSchemaless(attribute.String("service.name", cfg.OTELServiceName), attribute.String("service.version", b[0])))
	if err != nil {
		res = resource.Default()
	}
	// Export failures (a collector away) are logged, never block a request:
	// the batch processor drops spans when its queue is full.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Warn("trace export failed", "endpoint", url, "error", err)
	}))
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res)), nil
}

// startRequest starts the span of one request, under the trace context of
// its traceparent header when it has one.
func startRequest(tracer trace.Tracer, r *http.Request) (context.Context, trace.Span) {
	ctx := r.Context()
	if tc := tracecontext.FromHeader(r.Header); !tc.IsZero() {
		ctx = trace.ContextWithRemoteSpanContext(ctx, tc.SpanContext())
	}
	return tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", r.URL.Path),
		attribute.String("server.address", r.Host)))
}

// endRequest ends the request's span with its answer.
func endRequest(span trace.Span, mode ingress.Mode, a adapter.Answer, res *adapter.Result) {
	span.SetAttributes(attribute.Int("http.response.status_code", a.Status), attribute.String("rgwnats.ingress_mode", mode.String()))
	if res != nil {
		span.SetAttributes(attribute.Int("rgwnats.events", len(res.Outcomes)))
	}
	if !a.Delivered() {
		span.SetAttributes(attribute.String("error.type", a.Reason.String()), attribute.String("rgwnats.failure", a.Class.String()))
	}
	if a.SpanError {
		span.SetStatus(codes.Error, http.StatusText(a.Status))
	}
	span.End()
}
