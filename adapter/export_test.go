package adapter

import (
	"context"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/tracecontext"
)

// Process runs events, already decoded, through the pipeline as Handle
// does, without dead-lettering (a dead letter carries the request's bytes),
// and returns one Outcome per event: the tests' way to give events
// directly.
func (p *Pipeline) Process(ctx context.Context, events []event.Event) []Outcome {
	outcomes := make([]Outcome, len(events))
	defer p.abandon(outcomes)
	p.process(ctx, events, outcomes, tracecontext.Context{}, false, false)
	p.finish(ctx, outcomes)
	return outcomes
}

// len is the number of ids held.
func (w *idWindow) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entries)
}

// contains reports whether id was added within the window.
func (w *idWindow) contains(id string, now time.Time) bool {
	if w.max == 0 {
		return false
	}
	k := w.key(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	_, ok := w.lookup(k, now)
	return ok
}
