package natsout

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// flusher shares one PING/PONG round trip among all core-mode publishes
// that wait at the same time (group commit). A caller publishes its
// messages first and then queues itself; the flusher takes everything
// queued, sends one PING behind all of it and, when the PONG comes back,
// tells each caller the outcome. Since a caller's messages are in the
// connection's write buffer before it is queued, the PING follows them and
// its PONG proves that the server has read them. Callers that queue while a
// round trip is under way wait for the next one: its PING is written after
// their messages.
//
// One goroutine per Publisher, not per request; under load 32 concurrent
// requests cost one round trip instead of 32.
type flusher struct {
	nc      *nats.Conn
	timeout time.Duration
	queue   chan *flushWait
	stop    <-chan struct{}
	rounds  atomic.Uint64
}

// flushWait is one caller's place in the queue; done is buffered so that
// the flusher never blocks on a caller that gave up.
type flushWait struct{ done chan error }

var flushWaits = sync.Pool{New: func() any { return &flushWait{done: make(chan error, 1)} }}

// errFlusherStopped is what waiting callers learn when the Publisher
// closes: nothing proves that their messages arrived.
var errFlusherStopped = errors.New("publisher closed before the flush was answered")

// maxFlushBatch bounds how many callers one round trip answers; more wait
// for the next one.
const maxFlushBatch = 1024

func newFlusher(nc *nats.Conn, timeout time.Duration, stop <-chan struct{}) *flusher {
	return &flusher{nc: nc, timeout: timeout, queue: make(chan *flushWait, maxFlushBatch), stop: stop}
}

func (f *flusher) run() {
	batch := make([]*flushWait, 0, 64)
	for {
		select {
		case w := <-f.queue:
			batch = append(batch[:0], w)
		case <-f.stop:
			f.fail(errFlusherStopped)
			return
		}
	gather:
		for len(batch) < maxFlushBatch {
			select {
			case w := <-f.queue:
				batch = append(batch, w)
			default:
				break gather
			}
		}
		err := f.nc.FlushTimeout(f.timeout)
		f.rounds.Add(1)
		for i, w := range batch {
			w.done <- err
			batch[i] = nil
		}
	}
}

// fail answers whoever is still queued.
func (f *flusher) fail(err error) {
	for {
		select {
		case w := <-f.queue:
			w.done <- err
		default:
			return
		}
	}
}

// wait returns once a PING written after the caller's messages has been
// answered (nil), or why not.
func (f *flusher) wait(ctx context.Context) error {
	w := flushWaits.Get().(*flushWait)
	select {
	case f.queue <- w:
	case <-ctx.Done():
		flushWaits.Put(w)
		return ctx.Err()
	case <-f.stop:
		flushWaits.Put(w)
		return errFlusherStopped
	}
	select {
	case err := <-w.done:
		flushWaits.Put(w)
		return err
	case <-ctx.Done():
		// w stays out of the pool: the flusher will still answer it.
		return ctx.Err()
	case <-f.stop:
		return errFlusherStopped
	}
}
