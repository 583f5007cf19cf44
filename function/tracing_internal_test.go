package function

import (
	"context"
	"testing"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// TestNoTracingWithoutEndpoint: without an OTLP endpoint (or with the SDK
// disabled) nothing of the OpenTelemetry SDK is set up: no tracer provider,
// no exporter, no tracer in the pipeline, so a request starts no span.
func TestNoTracingWithoutEndpoint(t *testing.T) {
	s := testutil.NATS(t)
	for name, env := range map[string]map[string]string{
		"unset":    {"NATS_URL": s.ClientURL()},
		"disabled": {"NATS_URL": s.ClientURL(), "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_SDK_DISABLED": "true"},
	} {
		t.Run(name, func(t *testing.T) {
			f := New(WithLogger(testutil.Logger(t)))
			if err := f.Start(context.Background(), env); err != nil {
				t.Fatal(err)
			}
			defer f.Stop(context.Background())
			r := f.started.Load()
			if r.tp != nil || r.tracer != nil || r.pipe == nil {
				t.Errorf("tracer provider %v, tracer %v", r.tp, r.tracer)
			}
		})
	}
	t.Run("set", func(t *testing.T) {
		f := New(WithLogger(testutil.Logger(t)))
		if err := f.Start(context.Background(), map[string]string{"NATS_URL": s.ClientURL(), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:1/traces"}); err != nil {
			t.Fatal(err)
		}
		defer f.Stop(context.Background())
		if r := f.started.Load(); r.tp == nil || r.tracer == nil {
			t.Error("no tracer with an endpoint set")
		}
	})
}

func TestTracesURL(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{OTELEndpoint: "http://collector:4318"}, "http://collector:4318/v1/traces"},
		{Config{OTELEndpoint: "http://collector:4318/"}, "http://collector:4318/v1/traces"},
		{Config{OTELEndpoint: "http://a:4318", OTELTracesEndpoint: "https://b/custom"}, "https://b/custom"},
		{Config{OTELEndpoint: "http://a:4318", OTELDisabled: true}, ""},
	} {
		if got := c.cfg.tracesURL(); got != c.want {
			t.Errorf("%+v: %q, want %q", c.cfg, got, c.want)
		}
	}
	for _, env := range []map[string]string{
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "collector:4318"},
		{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
	} {
		if _, err := ConfigFromMap(env); err == nil {
			t.Errorf("%v accepted", env)
		}
	}
}
