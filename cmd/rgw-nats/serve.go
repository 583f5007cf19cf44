package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/internal/embedded"
)

// serve hosts the function with its own HTTP server: listen first (so the
// readiness probe answers during start), or take the socket systemd hands
// over, start the function, serve until SIGTERM/SIGINT, then let in-flight
// requests finish and drain NATS.
func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: rgw-nats [serve]\n\nConfigured by environment variables:")
		function.PrintUsage(fs.Output())
	}
	if help, err := parseFlags(fs, args, stdout, stderr); help || err != nil {
		return err
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return fmt.Errorf("%w: serve takes no arguments", errUsage)
	}
	cfg, err := function.LoadConfig()
	if err != nil {
		// The configuration may be what is wrong with the log settings:
		// the line is JSON unless LOG_FORMAT asks for text.
		return fatal(function.NewLogger(stderr, "error", os.Getenv("LOG_FORMAT")), err)
	}
	log := function.NewLogger(stderr, cfg.LogLevel, cfg.LogFormat)
	if err := serveConfig(ctx, cfg, log, nil); err != nil {
		return fatal(log, err)
	}
	return nil
}

// loggedError is an error serve has logged already, in the configured
// format: main does not print it again.
type loggedError struct{ error }

func (e loggedError) Unwrap() error { return e.error }

// fatal logs the error that ends serve as one line of its log.
func fatal(log *slog.Logger, err error) error {
	log.Error("rgw-nats stopped", "error", err)
	return loggedError{err}
}

// endpoints is where a started adapter can be reached.
type endpoints struct {
	HTTP string // host:port of the HTTP listener
	NATS string // URL of the NATS server in use
}

// serveConfig runs the adapter until ctx ends. When ready is not nil it
// receives the endpoints once the function can publish (tests use it).
func serveConfig(ctx context.Context, cfg function.Config, log *slog.Logger, ready chan<- endpoints) error {
	// Every file the configuration names is checked before anything starts
	// (the listener, the embedded NATS server).
	if err := cfg.CheckFiles(); err != nil {
		return err
	}
	tcp, err := activatedListener()
	if err != nil {
		return err
	}
	activated := tcp != nil
	if !activated {
		tcp, err = net.Listen("tcp", cfg.Addr())
		if err != nil {
			return fmt.Errorf("listen on %s: %w (set PORT or LISTEN_ADDRESS to change it)", cfg.Addr(), err)
		}
	}
	ln, err := tlsListener(tcp, cfg.TLSCertFile, cfg.TLSKeyFile, log)
	if err != nil {
		tcp.Close()
		return err
	}
	httpLn := ln
	if ln == tcp {
		// Plain HTTP, where a proxy may sit in front: a head with two
		// framings closes its connection (framing.go). With TLS the
		// listener must hand *tls.Conn to the server as it is.
		httpLn = framingListener{ln}
	}
	if cfg.NATSURL == "" {
		srv, err := embedded.Start(cfg.NATSEmbeddedListen, cfg.NATSStoreDir)
		if err != nil {
			ln.Close()
			return fmt.Errorf("embedded NATS server on %s: %w (set NATS_EMBEDDED_LISTEN to change it, or NATS_URL to use a running nats-server)", cfg.NATSEmbeddedListen, err)
		}
		defer srv.Shutdown()
		cfg.NATSURL, cfg.NATSStreamCreate = srv.URL(), true
		log.Info("embedded NATS server started (set NATS_URL to use your own)", "url", cfg.NATSURL, "stream", cfg.NATSStream)
	}
	f := function.New(function.WithConfig(cfg), function.WithLogger(log))
	var draining atomic.Bool
	srv := &http.Server{
		Handler:           closeAmbiguous(newMux(f, &draining)),
		ConnContext:       framingContext,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		IdleTimeout:       90 * time.Second,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(httpLn) }()

	if err := f.Start(ctx, nil); err != nil {
		ln.Close()
		srv.Close()
		return err
	}
	log.Info("rgw-nats listening", "address", ln.Addr().String(), "tls", ln != tcp, "socket_activation", activated,
		"nats", natsout.RedactURL(cfg.NATSURL))
	if ready != nil {
		go func() {
			for {
				if ok, _ := f.Ready(ctx); ok {
					ready <- endpoints{HTTP: ln.Addr().String(), NATS: cfg.NATSURL}
					return
				}
				select {
				case <-ctx.Done():
					return
				case <-time.After(5 * time.Millisecond):
				}
			}
		}()
	}

	select {
	case err := <-served:
		f.Stop(context.Background())
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	if cfg.ShutdownDelay > 0 {
		// What a preStop sleep does for a plain Deployment: the endpoints
		// controller sees readiness fail and stops routing here, while
		// requests already on their way are still served. Without
		// keep-alive, clients open new connections, which the Service
		// routes to the other pods.
		draining.Store(true)
		srv.SetKeepAlivesEnabled(false)
		log.Info("shutting down: readiness fails from now on, still serving", "delay", cfg.ShutdownDelay)
		time.Sleep(cfg.ShutdownDelay)
	}
	log.Info("shutting down: finishing in-flight requests, then draining NATS")
	stopCtx, cancel := context.WithTimeout(context.Background(), cfg.Shutdown)
	defer cancel()
	shutdownErr := srv.Shutdown(stopCtx)
	stopErr := f.Stop(stopCtx)
	if err := <-served; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	if err := errors.Join(shutdownErr, stopErr); err != nil {
		return err
	}
	log.Info("rgw-nats stopped")
	return nil
}

// newMux routes the health paths to the probes and everything else to
// Handle. While draining is set, readiness fails whatever the function says.
func newMux(f *function.Function, draining *atomic.Bool) *http.ServeMux {
	ready := func(ctx context.Context) (bool, error) {
		if draining.Load() {
			return false, nil
		}
		return f.Ready(ctx)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/health/readiness", probe(ready))
	mux.HandleFunc("/health/liveness", probe(f.Alive))
	mux.HandleFunc("/", f.Handle)
	return mux
}

func probe(check func(context.Context) (bool, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ok, err := check(r.Context())
		if err != nil || !ok {
			msg := "not ready"
			if err != nil {
				msg += ": " + err.Error()
			}
			http.Error(w, msg, http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	}
}
