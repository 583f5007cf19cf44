// Package function is rgw-nats as a Knative function: New returns a value
// with Handle(w, r) and the lifecycle hooks Start, Stop, Ready and Alive that
// Knative's func-go scaffolding and this project's own binary both call.
//
// It is the HTTP shell only: method, ingress auth, body limit, health, and
// the status code that makes RGW or Knative do the right thing (2xx only
// once NATS has every event), looked up in adapter's one table. It reads the configuration, and it is where the
// service is observed from: the Prometheus metrics (metrics.go) and the
// OpenTelemetry SDK with its OTLP exporter (tracing.go). Decoding, mapping, Lua
// and NATS live in package adapter and its sub-packages, assembled by
// adapter/service from the settings Config embeds; the answer to each
// outcome is adapter's table (adapter.AnswerFor). It must not import
// package main, anything under cmd/, or nats-server.
package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/service"
)

// Function is the Knative function. Its zero value is not usable: get one
// from New. All methods are safe for concurrent use.
type Function struct {
	cfg    *Config // nil: read from the environment in Start
	log    *slog.Logger
	natsOp []natsout.Option

	startOnce sync.Once
	started   atomic.Pointer[running] // nil until Start has finished
	stopping  atomic.Bool
	early     *throttle // failure log until Start has built the real one
}

// running is everything Start builds; it is never changed afterwards, so a
// request reads it without locks.
type running struct {
	cfg      Config
	log      *slog.Logger
	failures *throttle
	svc      *service.Service // the pipeline and its parts
	pipe     *adapter.Pipeline
	pub      *natsout.Publisher
	engine   *lua.Engine // nil without LUA_SCRIPT
	auth     authenticator
	inFlight atomic.Int64 // body bytes reserved by requests being processed

	metrics     *metrics // nil: METRICS_ADDRESS=off
	metricsHere bool     // served by Handle on the main port
	metricsSrv  *metricsServer
	tp          *sdktrace.TracerProvider // nil without an OTLP endpoint
	tracer      trace.Tracer             // nil without an OTLP endpoint
}

// Option configures a Function.
type Option func(*Function)

// WithConfig uses c instead of reading the environment in Start.
func WithConfig(c Config) Option { return func(f *Function) { f.cfg = &c } }

// WithLogger sets the logger; by default one is built from LOG_LEVEL and
// LOG_FORMAT, writing to standard error.
func WithLogger(l *slog.Logger) Option { return func(f *Function) { f.log = l } }

// New returns a Function that is not started yet. Knative's scaffolding calls
// New() and then Start; so does cmd/rgw-nats.
func New(opts ...Option) *Function {
	f := &Function{}
	for _, o := range opts {
		o(f)
	}
	l := f.log
	if l == nil {
		l = slog.Default()
	}
	f.early = newThrottle(l, failureLogRate)
	return f
}

// Start reads the configuration, unless given with WithConfig, from env
// (what func-go hands over: the environment as a map) or, when env is nil,
// from the process environment. It builds the pipeline with its NATS
// connection, Lua scripts and RGW table (adapter/service, the one builder). It does not wait for NATS to be
// reachable: Ready says when the function can publish. NATS_URL is required
// here; the rgw-nats binary starts an embedded server when it is unset.
func (f *Function) Start(ctx context.Context, env map[string]string) error {
	err := errors.New("function: already started")
	f.startOnce.Do(func() { err = f.start(ctx, env) })
	return err
}

func (f *Function) start(ctx context.Context, env map[string]string) error {
	cfg := f.cfg
	if cfg == nil {
		var c Config
		var err error
		if env != nil {
			c, err = ConfigFromMap(env)
		} else {
			c, err = LoadConfig()
		}
		if err != nil {
			return err
		}
		cfg = &c
	} else if err := cfg.Validate(); err != nil {
		return err
	}
	if err := cfg.CheckFiles(); err != nil {
		return err
	}
	if cfg.NATSURL == "" {
		return errors.New("configuration: NATS_URL is not set (the rgw-nats binary starts an embedded NATS server without it; a function needs a server)")
	}
	log := f.log
	if log == nil {
		log = NewLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	}
	logStart(log, cfg)
	auth, err := newAuthenticator(cfg)
	if err != nil {
		return err
	}
	auth.prefetch(log)
	r := &running{cfg: *cfg, log: log, failures: newThrottle(log, failureLogRate), auth: auth}
	if cfg.MetricsAddress != metricsOff {
		r.metrics = newMetrics()
		r.metricsHere = cfg.MetricsAddress == ""
	}
	if r.tp, err = newTracing(ctx, cfg, log); err != nil {
		return err
	}
	if r.tp != nil {
		r.tracer = r.tp.Tracer(tracerName)
	}
	// The pipeline and its parts, from the one builder.
	o := service.Options{Logger: log, Tracer: r.tracer, NATSOptions: f.natsOp}
	if r.metrics != nil {
		o.LuaOptions = []lua.Option{lua.WithCallObserver(r.metrics.observeLua)}
		o.Wrap = func(p adapter.Publisher) adapter.Publisher { return timedPublisher{pub: p, hist: r.metrics.publish} }
	}
	if r.svc, err = service.New(ctx, cfg.Settings, o); err != nil {
		r.close(ctx)
		return err
	}
	r.pipe, r.pub, r.engine = r.svc.Pipeline, r.svc.NATS, r.svc.Engine
	if r.metrics != nil {
		r.metrics.collect(r.pub, r.engine)
	}
	if r.metrics != nil && !r.metricsHere {
		if r.metricsSrv, err = serveMetrics(cfg.MetricsAddress, r.metrics.handler); err != nil {
			r.close(ctx)
			return err
		}
		log.Info("metrics listening", "address", r.metricsSrv.addr.String(), "path", MetricsPath)
	}
	f.started.Store(r)
	return nil
}

// Stop stops accepting events, closes the Lua engine, drains the NATS
// connection (everything published is flushed) and stops the embedded server.
// Call it after the HTTP server has finished its in-flight requests.
func (f *Function) Stop(ctx context.Context) error {
	f.stopping.Store(true)
	r := f.started.Load()
	if r == nil {
		return nil
	}
	return r.close(ctx)
}

func (r *running) close(ctx context.Context) error {
	var errs []error
	if r.svc != nil {
		errs = append(errs, r.svc.Close(ctx))
	}
	if r.tp != nil {
		// Exports the spans still queued, bounded by ctx.
		if err := r.tp.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("trace export at shutdown: %w", err))
		}
	}
	if r.metricsSrv != nil {
		errs = append(errs, r.metricsSrv.close(ctx))
	}
	return errors.Join(errs...)
}

// Ready reports whether the function can publish now: started, not stopping,
// connected to NATS (with its stream in place when it creates one), and with
// the RGW table loaded when it is kept in NATS KV.
// When it is not, the error says why in one line (the readiness probe's
// answer).
func (f *Function) Ready(context.Context) (bool, error) {
	r := f.started.Load()
	switch {
	case r == nil:
		return false, errors.New("not started")
	case f.stopping.Load():
		return false, errors.New("stopping")
	}
	if why := r.pub.NotReady(); why != "" {
		return false, errors.New(why)
	}
	if r.svc.Table != nil && !r.svc.Table.Ready() {
		return false, errors.New("the RGW table (LUA_RGW_TABLE_KV) is not loaded yet")
	}
	return true, nil
}

// Alive reports whether the process works. It stays true while NATS is away:
// restarting the container would not bring NATS back, and Ready already takes
// the function out of rotation. It fails only when the process cannot
// recover by itself (service.Service.Alive).
func (f *Function) Alive(context.Context) (bool, error) {
	r := f.started.Load()
	if r == nil {
		return true, nil
	}
	return r.svc.Alive(), nil
}
