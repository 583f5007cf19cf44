// Package service assembles rgw-nats: New takes one typed Settings and
// returns the running pipeline with its parts: the one NATS connection
// (natsout), the compiled Lua scripts (lua), the RGW table in NATS KV
// (kvtable) and the adapter.Pipeline over them. It is the one place where
// settings become parts: the Knative function and the binary's serve
// (package function), `rgw-nats lua test`, `tail` and `replay` all build
// through it, so a setting is mapped once.
//
// Like the rest of adapter, it knows nothing of HTTP servers or Knative: it
// must not import net/http, package function or cmd, nor link nats-server.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/kvtable"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// Options are what the host adds to the settings: how it observes and
// tests the service, nothing an operator sets.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
	// Tracer records the pipeline's spans (adapter.Config.Tracer).
	Tracer trace.Tracer
	// NATSOptions are passed to natsout.Connect (tests shorten reconnect
	// waits with them).
	NATSOptions []natsout.Option
	// LuaOptions are added to the engine's (a call observer for metrics).
	LuaOptions []lua.Option
	// Wrap, when set, wraps the publisher the pipeline publishes through
	// (metrics time each publish).
	Wrap func(adapter.Publisher) adapter.Publisher
	// Publisher, when set, is published to instead of NATS: nothing is
	// connected and the RGW table stays in memory (`rgw-nats lua test`
	// records what would be published).
	Publisher adapter.Publisher
}

// Service is the running pipeline and its parts. Close it.
type Service struct {
	Pipeline *adapter.Pipeline
	NATS     *natsout.Publisher // nil with Options.Publisher
	Engine   *lua.Engine        // nil without LUA_SCRIPT
	Table    *kvtable.Table     // nil: the RGW table is in memory

	// tableConn is the connection the table was opened on: it lives there,
	// and does not follow the publisher to a new connection.
	tableConn *nats.Conn
	settings  Settings
	log       *slog.Logger
}

// New opens the NATS connection (without waiting for NATS to be reachable:
// NATS.Ready says when it is), opens the RGW table when it is kept in NATS
// KV, compiles the Lua scripts and builds the pipeline.
func New(ctx context.Context, s Settings, o Options) (*Service, error) {
	svc := &Service{settings: s, log: o.Logger}
	if svc.log == nil {
		svc.log = slog.Default()
	}
	pub := o.Publisher
	if pub == nil {
		var err error
		if svc.NATS, err = natsout.Connect(ctx, s.natsConfig(svc.log), o.NATSOptions...); err != nil {
			return nil, fmt.Errorf("NATS: %w", err)
		}
		pub = svc.NATS
	}
	var tr adapter.Transformer
	if s.LuaScript != "" {
		opts := append(s.luaOptions(svc.log), o.LuaOptions...)
		if svc.NATS != nil {
			opts = append(opts, lua.WithOnLoad(svc.checkSubjects))
		}
		if s.LuaRGWTableKV != "" && svc.NATS != nil {
			// The RGW table in NATS KV, over the one connection; the
			// bucket is created when streams may be.
			topts := []kvtable.Option{kvtable.WithLogger(svc.log)}
			if s.NATSStreamCreate {
				topts = append(topts, kvtable.WithCreate(s.LuaRGWTableKVReplicas))
			}
			var err error
			svc.tableConn = svc.NATS.Conn()
			if svc.Table, err = kvtable.New(svc.tableConn, s.LuaRGWTableKV, topts...); err != nil {
				svc.Close(ctx)
				return nil, fmt.Errorf("LUA_RGW_TABLE_KV: %w", err)
			}
			opts = append(opts, lua.WithTable(svc.Table))
		}
		var err error
		if svc.Engine, err = lua.New(ctx, s.LuaScript, opts...); err != nil {
			svc.Close(ctx)
			return nil, fmt.Errorf("LUA_SCRIPT: %w", err)
		}
		tr = svc.Engine
		// One line per load: this one, then the engine's at every reload.
		svc.log.Info("lua: scripts loaded", "path", s.LuaScript, "scripts", svc.Engine.Scripts())
	}
	if o.Wrap != nil {
		pub = o.Wrap(pub)
	}
	pc := s.pipelineConfig()
	pc.Tracer = o.Tracer
	var err error
	if svc.Pipeline, err = adapter.New(pc, pub, tr); err != nil {
		svc.Close(ctx)
		return nil, err
	}
	return svc, nil
}

// Connect opens a NATS connection with the connection settings alone (URL,
// credentials, TLS), for tools that read or send rather than run the
// pipeline (`rgw-nats tail`, `replay`): no stream is created or required.
func Connect(ctx context.Context, s Settings, name string, log *slog.Logger) (*natsout.Publisher, error) {
	return natsout.Connect(ctx, s.natsConnection(name, log))
}

// Alive reports whether the service can still work some day by itself:
// false only when its NATS connection was closed for good and could not be
// replaced, or the RGW table's connection in NATS KV was (the table lives on
// the connection it was opened on); only a restart repairs that.
func (svc *Service) Alive() bool {
	if svc.NATS == nil {
		return true
	}
	return svc.NATS.Alive() && (svc.tableConn == nil || !svc.tableConn.IsClosed())
}

// Close closes the Lua engine, the RGW table and the NATS connection
// (drained: everything published is flushed), bounded by ctx.
func (svc *Service) Close(ctx context.Context) error {
	var errs []error
	if svc.Engine != nil {
		errs = append(errs, svc.Engine.Close())
	}
	if svc.Table != nil {
		errs = append(errs, svc.Table.Close())
	}
	if svc.NATS != nil {
		errs = append(errs, svc.NATS.Close(ctx))
	}
	return errors.Join(errs...)
}

// checkSubjects says, for each literal subject of a newly loaded script
// version, when it cannot be published to: not a valid subject, or, in
// JetStream mode, no stream captures it (Ceph's own nats_adapter.lua
// publishes to Bucket_Notification). Such events would be dead-lettered;
// the operator learns it at load, not from the first failure. It runs in the
// background: at start NATS may not be reachable yet.
func (svc *Service) checkSubjects(l lua.Loaded) {
	if len(l.Subjects) == 0 {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, subj := range l.Subjects {
			if !subject.Valid(subj) {
				svc.log.Warn("a script publishes to an invalid NATS subject; those events will be dead-lettered", "subject", subj, "scripts", l.Scripts)
				continue
			}
			if svc.settings.NATSMode != natsout.JetStream || svc.NATS.WaitReady(ctx) != nil {
				continue
			}
			if _, err := svc.NATS.StreamFor(ctx, subj); errors.Is(err, natsout.ErrNoStream) {
				svc.log.Warn("a script publishes to a subject no JetStream stream captures; those events will be dead-lettered",
					"subject", subj, "stream", svc.settings.NATSStream, "scripts", l.Scripts)
			}
		}
	}()
}
