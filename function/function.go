// Package function is rgw-nats as a Knative function: New returns a value
// with Handle(w, r) and the lifecycle hooks Start, Stop, Ready and Alive that
// Knative's func-go scaffolding and this project's own binary both call.
// Handle decodes an HTTP request (a raw RGW POST or CloudEvents in binary,
// structured or batch mode) into events, runs them through the adapter
// pipeline and answers with the status code that makes RGW or Knative do the
// right thing: 2xx only once NATS has every event.
//
// It holds the HTTP and Knative side only; everything about RGW, CloudEvents
// mapping, Lua and NATS lives in package adapter and its sub-packages. It
// must not import package main or anything under cmd/.
package function

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
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
	failures  *throttle
}

// running is everything Start builds.
type running struct {
	cfg      Config
	pipe     *adapter.Pipeline
	pub      *natsout.Publisher
	embedded *natsout.Embedded
	engine   *lua.Engine
	mapping  cloudevent.Options
	auth     authenticator
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
	return f
}

// Start reads the configuration (unless given with WithConfig), starts the
// embedded NATS server when no NATS_URL is set, opens the one NATS connection,
// compiles the Lua scripts and builds the pipeline. It does not wait for NATS
// to be reachable: Ready says when the function can publish. The env argument
// is what func-go passes (the environment as a map); this package reads
// os.Environ itself through envconfig, so it is unused.
func (f *Function) Start(ctx context.Context, _ map[string]string) error {
	err := errors.New("function: already started")
	f.startOnce.Do(func() { err = f.start(ctx) })
	return err
}

func (f *Function) start(ctx context.Context) error {
	cfg := f.cfg
	if cfg == nil {
		c, err := LoadConfig()
		if err != nil {
			return err
		}
		cfg = &c
	} else if err := cfg.Validate(); err != nil {
		return err
	}
	if f.log == nil {
		f.log = NewLogger(os.Stderr, cfg.LogLevel, cfg.LogFormat)
	}
	f.failures = newThrottle(f.log, failureLogRate)

	r := &running{cfg: *cfg, auth: newAuthenticator(cfg)}
	overrides, err := cloudevent.ParseOverrides(cfg.CEOverrides)
	if err != nil {
		return err
	}
	r.mapping = cloudevent.Options{Envelope: cfg.CEData == "envelope", Extensions: overrides}

	tmpl, err := subject.Parse(cfg.NATSSubject)
	if err != nil {
		return fmt.Errorf("NATS_SUBJECT: %w", err)
	}
	ncfg := natsConfig(cfg, tmpl, f.log)
	if cfg.NATSURL == "" {
		r.embedded, err = natsout.StartEmbedded(cfg.NATSEmbeddedListen, cfg.NATSStoreDir)
		if err != nil {
			return fmt.Errorf("embedded NATS server: %w", err)
		}
		ncfg.URL = r.embedded.URL()
		ncfg.StreamCreate = true
		f.log.Info("embedded NATS server started (set NATS_URL to use your own)", "url", ncfg.URL, "stream", ncfg.Stream, "subjects", strings.Join(ncfg.StreamSubjects, ","))
	}
	if r.pub, err = natsout.Connect(ctx, ncfg, f.natsOp...); err != nil {
		r.close(ctx)
		return fmt.Errorf("NATS: %w", err)
	}

	enc := natsout.Structured
	if cfg.CEMode == "binary" {
		enc = natsout.Binary
	}
	r.pipe = &adapter.Pipeline{Publisher: r.pub, Subject: tmpl, Encoding: enc}
	if cfg.LuaScript != "" {
		if r.engine, err = lua.New(ctx, cfg.LuaScript, LuaOptions(cfg, f.log)...); err != nil {
			r.close(ctx)
			return fmt.Errorf("LUA_SCRIPT: %w", err)
		}
		r.pipe.Transformer = r.engine
	}
	f.started.Store(r)
	return nil
}

func natsConfig(cfg *Config, tmpl *subject.Template, log *slog.Logger) natsout.Config {
	c := natsout.Config{
		URL:          cfg.NATSURL,
		Name:         cfg.NATSClientName,
		CredsFile:    cfg.NATSCreds,
		NkeySeedFile: cfg.NATSNkey,
		User:         cfg.NATSUser,
		Password:     cfg.NATSPassword,
		Token:        cfg.NATSToken,
		TLSCA:        cfg.NATSTLSCA,
		TLSCert:      cfg.NATSTLSCert,
		TLSKey:       cfg.NATSTLSKey,
		Stream:       cfg.NATSStream,
		StreamCreate: cfg.NATSStreamCreate,
		AckTimeout:   cfg.NATSAckTimeout,
		Logger:       log,
	}
	if cfg.NATSMode == "jetstream" {
		c.Mode = natsout.JetStream
	}
	if cfg.NATSStreamSubjects != "" {
		for s := range strings.SplitSeq(cfg.NATSStreamSubjects, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.StreamSubjects = append(c.StreamSubjects, s)
			}
		}
	} else {
		c.StreamSubjects = []string{tmpl.StreamSubjects()}
	}
	return c
}

// LuaOptions are the Lua engine options the configuration asks for; the
// offline `rgw-nats lua test` uses the same ones as the service.
func LuaOptions(cfg *Config, log *slog.Logger) []lua.Option {
	policy, _ := lua.ParsePolicy(cfg.LuaOnError) // Validate has checked it
	pool := cfg.LuaPoolSize
	if pool <= 0 {
		pool = 2 * runtime.GOMAXPROCS(0)
	}
	opts := []lua.Option{
		lua.WithFunction(cfg.LuaFunction),
		lua.WithTimeout(cfg.LuaTimeout),
		lua.WithOnError(policy),
		lua.WithPoolSize(pool),
		lua.WithLogger(log),
	}
	if !cfg.LuaReload {
		opts = append(opts, lua.WithReload(0))
	}
	if cfg.LuaHMACKey != "" {
		opts = append(opts, lua.WithHMACKey([]byte(cfg.LuaHMACKey)))
	}
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

func (r *running) close(ctx context.Context) error {
	var errs []error
	if r.engine != nil {
		errs = append(errs, r.engine.Close())
	}
	if r.pub != nil {
		errs = append(errs, r.pub.Close(ctx))
	}
	if r.embedded != nil {
		r.embedded.Shutdown()
	}
	return errors.Join(errs...)
}

// Ready reports whether the function can publish now: started, not stopping,
// and connected to NATS (with its stream in place when it creates one).
func (f *Function) Ready(context.Context) (bool, error) {
	r := f.started.Load()
	return r != nil && !f.stopping.Load() && r.pub.Ready(), nil
}

// Alive reports whether the process works. It stays true while NATS is away:
// restarting the container would not bring NATS back, and Ready already takes
// the function out of rotation.
func (f *Function) Alive(context.Context) (bool, error) { return true, nil }

// NATSURL is the URL of the NATS server in use (the embedded one's when no
// NATS_URL is configured), or "" before Start.
func (f *Function) NATSURL() string {
	r := f.started.Load()
	if r == nil {
		return ""
	}
	if r.embedded != nil {
		return r.embedded.URL()
	}
	return r.cfg.NATSURL
}

// Logger is the function's logger (available after Start).
func (f *Function) Logger() *slog.Logger {
	if f.log == nil {
		return slog.Default()
	}
	return f.log
}
