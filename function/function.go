// Package function is rgw-nats as a Knative function: New returns a value
// with Handle(w, r) and the lifecycle hooks Start, Stop, Ready and Alive that
// Knative's func-go scaffolding and this project's own binary both call.
//
// It is the HTTP shell only: method, ingress auth, body limit, health, and
// the one table from what the adapter pipeline made of a request to the
// status code that makes RGW or Knative do the right thing (2xx only once
// NATS has every event). It reads the configuration, and it is where the
// service is observed from: the Prometheus metrics (metrics.go) and the
// OpenTelemetry SDK with its OTLP exporter (tracing.go). Decoding, mapping, Lua
// and NATS live in package adapter and its sub-packages. It must not import
// package main, anything under cmd/, or nats-server.
package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/kvtable"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
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
	pipe     *adapter.Pipeline
	pub      *natsout.Publisher
	engine   *lua.Engine
	table    *kvtable.Table // nil: the RGW table is in memory
	auth     authenticator
	inFlight atomic.Int64 // body bytes reserved by requests being processed

	// tableConn is the connection the table was opened on: it lives there,
	// and does not follow the publisher to a new connection.
	tableConn *nats.Conn

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

// WithNATSOptions passes extra options to the NATS publisher (tests use it to
// shorten reconnect waits).
func WithNATSOptions(opts ...natsout.Option) Option {
	return func(f *Function) { f.natsOp = append(f.natsOp, opts...) }
}

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
// from the process environment. It opens the one NATS connection, compiles
// the Lua scripts and builds the pipeline. It does not wait for NATS to be
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
	if r.pub, err = natsout.Connect(ctx, natsConfig(cfg, log), f.natsOp...); err != nil {
		r.close(ctx)
		return fmt.Errorf("NATS: %w", err)
	}
	var tr adapter.Transformer
	if cfg.LuaScript != "" {
		opts := append(LuaOptions(cfg, log), lua.WithOnLoad(r.checkSubjects))
		if cfg.LuaRGWTableKV != "" {
			// The RGW table in NATS KV, over the one connection; the
			// bucket is created when streams may be.
			topts := []kvtable.Option{kvtable.WithLogger(log)}
			if cfg.NATSStreamCreate {
				topts = append(topts, kvtable.WithCreate(cfg.LuaRGWTableKVReplicas))
			}
			r.tableConn = r.pub.Conn()
			if r.table, err = kvtable.New(r.tableConn, cfg.LuaRGWTableKV, topts...); err != nil {
				r.close(ctx)
				return fmt.Errorf("LUA_RGW_TABLE_KV: %w", err)
			}
			opts = append(opts, lua.WithTable(r.table))
		}
		if r.metrics != nil {
			opts = append(opts, lua.WithCallObserver(r.metrics.observeLua))
		}
		if r.engine, err = lua.New(ctx, cfg.LuaScript, opts...); err != nil {
			r.close(ctx)
			return fmt.Errorf("LUA_SCRIPT: %w", err)
		}
		tr = r.engine
		// One line per load: this one, then the engine's at every reload.
		log.Info("lua: scripts loaded", "path", cfg.LuaScript, "scripts", r.engine.Scripts())
	}
	pc := PipelineConfig(cfg)
	pc.Tracer = r.tracer
	var pub adapter.Publisher = r.pub
	if r.metrics != nil {
		r.metrics.collect(r.pub, r.engine)
		pub = timedPublisher{pub: r.pub, hist: r.metrics.publish}
	}
	if r.pipe, err = adapter.New(pc, pub, tr); err != nil {
		r.close(ctx)
		return err
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

// MetricsAddr is the address of the metrics' own listener (METRICS_ADDRESS),
// nil when they are served on the main port or not at all.
func (f *Function) MetricsAddr() net.Addr {
	if r := f.started.Load(); r != nil && r.metricsSrv != nil {
		return r.metricsSrv.addr
	}
	return nil
}

// PipelineConfig is the adapter configuration the service configuration
// asks for; `rgw-nats lua test` builds its pipeline from it too.
func PipelineConfig(cfg *Config) adapter.Config {
	pc := adapter.Config{
		Mapping:         cloudevent.Options{Envelope: cfg.CEData == cloudevent.DataEnvelope, Extensions: cfg.CEOverrides},
		Subject:         &cfg.NATSSubject,
		Encoding:        cfg.CEMode,
		DedupWindow:     cfg.DedupWindow,
		DedupMaxIDs:     cfg.DedupMaxIDs,
		PoisonAttempts:  cfg.PoisonAttempts,
		PoisonWindow:    cfg.PoisonWindow,
		MaxRequestBytes: cfg.MaxRequestBytes,
	}
	if cfg.LuaScript != "" {
		pc.EventTimeout = cfg.LuaTimeout
	}
	if cfg.DeadLetter {
		pc.DeadLetter = &cfg.DeadLetterSubject
	}
	return pc
}

func natsConfig(cfg *Config, log *slog.Logger) natsout.Config {
	c := natsout.Config{
		URL:             cfg.NATSURL,
		Name:            cfg.NATSClientName,
		CredsFile:       cfg.NATSCreds,
		NkeySeedFile:    cfg.NATSNkey,
		User:            cfg.NATSUser,
		Password:        cfg.NATSPassword,
		Token:           cfg.NATSToken,
		TLSCA:           cfg.NATSTLSCA,
		TLSCert:         cfg.NATSTLSCert,
		TLSKey:          cfg.NATSTLSKey,
		Mode:            cfg.NATSMode,
		Stream:          cfg.NATSStream,
		StreamCreate:    cfg.NATSStreamCreate,
		StreamSubjects:  cfg.streamSubjects(),
		DuplicateWindow: cfg.NATSStreamDupWindow,
		Replicas:        cfg.NATSStreamReplicas,
		AckTimeout:      cfg.NATSAckTimeout,
		Logger:          log,
	}
	if cfg.DeadLetter {
		dl := cfg.DeadLetterSubject.StreamSubjects()
		c.StreamSubjects = append(c.StreamSubjects, dl)
		c.MustCapture = []string{dl}
	}
	return c
}

// LuaOptions are the Lua engine options the configuration asks for; the
// offline `rgw-nats lua test` uses the same ones as the service.
func LuaOptions(cfg *Config, log *slog.Logger) []lua.Option {
	pool := cfg.LuaPoolSize
	if pool <= 0 {
		pool = 2 * runtime.GOMAXPROCS(0)
	}
	opts := []lua.Option{
		lua.WithFunction(cfg.LuaFunction),
		lua.WithTimeout(cfg.LuaTimeout),
		lua.WithOnError(cfg.LuaOnError),
		lua.WithPoolSize(pool),
		lua.WithLogger(log),
	}
	if !cfg.LuaReload {
		opts = append(opts, lua.WithReload(0))
	}
	if cfg.LuaHMACKey != "" {
		opts = append(opts, lua.WithHMACKey([]byte(cfg.LuaHMACKey)))
	}
	if cfg.LuaModules != "" {
		opts = append(opts, lua.WithModuleDirs(filepath.SplitList(cfg.LuaModules)...))
	}
	opts = append(opts,
		lua.WithMaxOutputs(cfg.LuaMaxOutputs),
		lua.WithMaxOutputBytes(cfg.LuaMaxOutputBytes),
		lua.WithMaxStates(cfg.LuaMaxStates),
		lua.WithStateWait(cfg.LuaStateWait),
		lua.WithMemoryLimit(cfg.LuaMemoryLimit),
	)
	return opts
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

// checkSubjects says, for each literal subject of a newly loaded script
// version, when it cannot be published to: not a valid subject, or, in
// JetStream mode, no stream captures it (Ceph's own nats_adapter.lua
// publishes to Bucket_Notification). Such events would be dead-lettered;
// the operator learns it at load, not from the first failure. It runs in the
// background: at start NATS may not be reachable yet.
func (r *running) checkSubjects(l lua.Loaded) {
	if len(l.Subjects) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, subj := range l.Subjects {
			if !subject.Valid(subj) {
				r.log.Warn("a script publishes to an invalid NATS subject; those events will be dead-lettered", "subject", subj, "scripts", l.Scripts)
				continue
			}
			if r.cfg.NATSMode != natsout.JetStream || r.pub.WaitReady(ctx) != nil {
				continue
			}
			if _, err := r.pub.StreamFor(ctx, subj); errors.Is(err, natsout.ErrNoStream) {
				r.log.Warn("a script publishes to a subject no JetStream stream captures; those events will be dead-lettered",
					"subject", subj, "stream", r.cfg.NATSStream, "scripts", l.Scripts)
			}
		}
	}()
}

func (r *running) close(ctx context.Context) error {
	var errs []error
	if r.engine != nil {
		errs = append(errs, r.engine.Close())
	}
	if r.table != nil {
		errs = append(errs, r.table.Close())
	}
	if r.pub != nil {
		errs = append(errs, r.pub.Close(ctx))
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
	if r.table != nil && !r.table.Ready() {
		return false, errors.New("the RGW table (LUA_RGW_TABLE_KV) is not loaded yet")
	}
	return true, nil
}

// Alive reports whether the process works. It stays true while NATS is away:
// restarting the container would not bring NATS back, and Ready already takes
// the function out of rotation. It fails only when the process cannot
// recover by itself: its NATS connection was closed for good and could not
// be replaced, or the RGW table's connection in NATS KV was (the table lives
// on the connection it was opened on).
func (f *Function) Alive(context.Context) (bool, error) {
	r := f.started.Load()
	if r == nil {
		return true, nil
	}
	return r.pub.Alive() && (r.tableConn == nil || !r.tableConn.IsClosed()), nil
}

// Logger is the function's logger (available after Start).
func (f *Function) Logger() *slog.Logger {
	if r := f.started.Load(); r != nil {
		return r.log
	}
	if f.log == nil {
		return slog.Default()
	}
	return f.log
}
