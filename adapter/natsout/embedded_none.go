//go:build nonatsserver

package natsout

import "errors"

// Embedded does not exist in builds made with the nonatsserver tag: they
// leave nats-server's code, about two thirds of the binary, out of images
// that always get a NATS_URL (Kubernetes, Knative).
type Embedded struct{}

// ErrNoEmbedded is returned by StartEmbedded in a nonatsserver build.
var ErrNoEmbedded = errors.New("natsout: this binary was built without the embedded NATS server (tag nonatsserver): set NATS_URL")

// StartEmbedded always fails in a nonatsserver build.
func StartEmbedded(listen, storeDir string) (*Embedded, error) { return nil, ErrNoEmbedded }

// URL is empty: there is no embedded server.
func (e *Embedded) URL() string { return "" }

// Shutdown does nothing: there is no embedded server.
func (e *Embedded) Shutdown() {}
