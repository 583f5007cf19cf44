package adapter

import (
	"context"
	"sync"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
)

// Recorder is a Publisher that keeps what it is given instead of sending it,
// and confirms everything: `rgw-nats lua test` runs the real pipeline on it
// to show what the service would publish. Its zero value is ready to use.
type Recorder struct {
	mu   sync.Mutex
	msgs []binding.Message
}

// Publish records msgs.
func (r *Recorder) Publish(_ context.Context, msgs []binding.Message) []error {
	r.mu.Lock()
	r.msgs = append(r.msgs, msgs...)
	r.mu.Unlock()
	return make([]error, len(msgs))
}

// Take returns the messages recorded since the last Take.
func (r *Recorder) Take() []binding.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.msgs
	r.msgs = nil
	return m
}
