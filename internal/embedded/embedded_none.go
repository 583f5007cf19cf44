//go:build nonatsserver

package embedded

import "errors"

// Server does not exist in builds made with the nonatsserver tag: they
// leave nats-server's code, about two thirds of the binary, out of images
// that always get a NATS_URL (Kubernetes, Knative).
type Server struct{}

// ErrNoEmbedded is returned by Start in a nonatsserver build.
var ErrNoEmbedded = errors.New("natsout: this binary was built without the embedded NATS server (tag nonatsserver): set NATS_URL")

// Start always fails in a nonatsserver build.
func Start(listen, storeDir string) (*Server, error) { return nil, ErrNoEmbedded }

// URL is empty: there is no embedded server.
func (e *Server) URL() string { return "" }

// Shutdown does nothing: there is no embedded server.
func (e *Server) Shutdown() {}
