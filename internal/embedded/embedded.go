//go:build !nonatsserver

// Package embedded runs the real nats-server inside the rgw-nats binary, so
// that a first run on a bare machine (no NATS_URL) works: JetStream on, its
// store in a given or a temporary directory.
//
// Only cmd/rgw-nats imports it: the function and adapter packages must not
// link nats-server, which is two thirds of the binary. Build with the tag
// nonatsserver to leave it out of cluster images.
package embedded

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is a nats-server running inside this process, with JetStream on.
type Server struct {
	srv     *server.Server
	url     string
	tempDir string // removed at Shutdown; empty when the caller chose the store
}

// Start starts the real nats-server in-process, listening on listen
// ("host:port"; port 0 picks a free port), with its JetStream store in
// storeDir, or in a temporary directory removed by Shutdown when storeDir is
// empty. It returns once the server accepts connections. The server logs
// only its warnings and errors, through slog.
func Start(listen, storeDir string) (*Server, error) {
	host, portText, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("embedded server address %q: %w", listen, err)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 0 || port > 65535 {
		return nil, fmt.Errorf("embedded server address %q: bad port", listen)
	}
	if port == 0 {
		port = server.RANDOM_PORT
	} else {
		// The server only logs a failed listen; find out here, with a clear
		// error, instead of waiting for it to never become ready.
		l, err := net.Listen("tcp", listen)
		if err != nil {
			return nil, fmt.Errorf("embedded server: %w", err)
		}
		l.Close()
	}
	e := &Server{}
	if storeDir == "" {
		if e.tempDir, err = os.MkdirTemp("", "rgw-nats-jetstream-"); err != nil {
			return nil, fmt.Errorf("embedded server store: %w", err)
		}
		storeDir = e.tempDir
	}
	opts := &server.Options{
		ServerName: "rgw-nats-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   storeDir,
		NoSigs:     true, // the process owns its signals
		NoLog:      true, // replaced by the slog logger below
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		e.removeTemp()
		return nil, fmt.Errorf("embedded server: %w", err)
	}
	srv.SetLoggerV2(serverLog{slog.Default().With("component", "nats-server")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		e.removeTemp()
		return nil, fmt.Errorf("embedded server on %s did not become ready (port in use?)", listen)
	}
	e.srv = srv
	// A server listening on all interfaces is reached on loopback.
	addr := srv.Addr().(*net.TCPAddr)
	h := host
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		h = "127.0.0.1"
	}
	e.url = "nats://" + net.JoinHostPort(h, strconv.Itoa(addr.Port))
	return e, nil
}

// URL is the client URL of the server.
func (e *Server) URL() string { return e.url }

// Shutdown stops the server and removes a temporary store.
func (e *Server) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
	e.removeTemp()
}

func (e *Server) removeTemp() {
	if e.tempDir != "" {
		if err := os.RemoveAll(e.tempDir); err != nil {
			slog.Default().Warn("embedded nats-server: removing its store", "dir", e.tempDir, "error", err)
		}
		e.tempDir = ""
	}
}

// serverLog routes the server's warnings and errors to slog; its notices
// (start-up banner, JetStream summary) go to debug.
type serverLog struct{ log *slog.Logger }

func (l serverLog) Noticef(format string, v ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug(fmt.Sprintf(format, v...))
	}
}
func (l serverLog) Warnf(format string, v ...any)  { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l serverLog) Fatalf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLog) Errorf(format string, v ...any) { l.log.Error(fmt.Sprintf(format, v...)) }
func (l serverLog) Debugf(string, ...any)          {}
func (l serverLog) Tracef(string, ...any)          {}
