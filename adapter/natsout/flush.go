package natsout

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// flusher publishes core-mode messages in batches and shares one PING/PONG
// round trip among everything it published (group commit). A caller hands
// over its messages and waits; the flusher takes every caller queued,
// publishes all their messages back to back, sends one PING behind them
// and, when the PONG comes back, tells each caller the outcome. The PONG
// proves that the server has read everything written before the PING.
//
// Publishing from the flusher rather than from each caller is what makes
// the batch cheap: a caller's own publish wakes nats.go's write loop, which
// then writes each request's messages in a syscall of their own; published
// back to back, a batch goes out in one or two writes with its PING.
//
// One goroutine per Publisher, not per request; under load 32 concurrent
// requests cost one round trip instead of 32.
type flusher struct {
	conn    func() *nats.Conn // the connection in use
	timeout time.Duration
	queue   chan *flushWait
	stop    <-chan struct{}
	rounds  atomic.Uint64
	// classify turns a publish error into the caller's error.
	classify func(m *Message, err error) error
	denied   *denials
}

// flushWait is one caller's place in the queue. The flusher publishes msgs
// holding mu, unless the caller abandoned them first; so once a caller that
// gave up holds mu, the flusher no longer touches its messages. done is
// buffered so that the flusher never blocks on a caller that gave up.
type flushWait struct {
	mu        sync.Mutex
	msgs      []Message
	errs      []error
	abandoned bool
	done      chan error
}

var flushWaits = sync.Pool{New: func() any { return &flushWait{done: make(chan error, 1)} }}

// errFlusherStopped is what waiting callers learn when the Publisher
// closes: nothing proves that their messages arrived.
var errFlusherStopped = errors.New("publisher closed before the flush was answered")

// maxFlushBatch bounds how many callers one round trip answers; more wait
// for the next one.
const maxFlushBatch = 1024

func newFlusher(conn func() *nats.Conn, timeout time.Duration, stop <-chan struct{}, classify func(*Message, error) error, denied *denials) *flusher {
	return &flusher{conn: conn, timeout: timeout, queue: make(chan *flushWait, maxFlushBatch), stop: stop, classify: classify, denied: denied}
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
		// A flush answered after a reconnect proves nothing about messages
		// written before the disconnect: count reconnects around the round.
		nc := f.conn()
		before := nc.Stats().Reconnects
		lastErr, start := nc.LastError(), time.Now()
		sent := 0
		for _, w := range batch {
			sent += f.publish(nc, w)
		}
		var err error
		if sent > 0 {
			err = nc.FlushTimeout(f.timeout)
			if err == nil && nc.Stats().Reconnects != before {
				err = errors.New("reconnected before the flush was answered")
			}
			// A denied publish is answered with an -ERR read before the
			// PONG: the flush succeeds, the message is not in NATS.
			if e := nc.LastError(); err == nil && e != lastErr && deniedSubject(e) != "" {
				f.denied.await(e, time.Second)
				for _, w := range batch {
					f.refuseDenied(w, start)
				}
			}
			f.rounds.Add(1)
		}
		for i, w := range batch {
			w.done <- err
			batch[i] = nil
		}
	}
}

// publish writes one caller's messages into the connection's buffer and
// returns how many it wrote.
func (f *flusher) publish(nc *nats.Conn, w *flushWait) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.abandoned {
		return 0
	}
	var nm nats.Msg
	sent := 0
	for i := range w.msgs {
		m := &w.msgs[i]
		if w.errs[i] != nil {
			continue
		}
		nm.Subject, nm.Header, nm.Data = m.Subject, m.Header, m.Data
		if err := nc.PublishMsg(&nm); err != nil {
			w.errs[i] = f.classify(m, err)
			continue
		}
		sent++
	}
	return sent
}

// refuseDenied fails the messages of w whose subject the server denied
// since start.
func (f *flusher) refuseDenied(w *flushWait, start time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.abandoned {
		return
	}
	for i := range w.msgs {
		if m := &w.msgs[i]; w.errs[i] == nil && f.denied.since(m.Subject, start) {
			w.errs[i] = f.classify(m, deniedError(m.Subject))
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

// send publishes msgs (those whose errs entry is nil) and returns once a
// PING written after them has been answered. A message that could not be
// published gets its error in errs; the error returned is the flush's, for
// every message that was published.
func (f *flusher) send(ctx context.Context, msgs []Message, errs []error) error {
	w := flushWaits.Get().(*flushWait)
	w.msgs, w.errs, w.abandoned = msgs, errs, false
	select {
	case f.queue <- w:
	case <-ctx.Done():
		w.msgs, w.errs = nil, nil
		flushWaits.Put(w)
		return ctx.Err()
	case <-f.stop:
		w.msgs, w.errs = nil, nil
		flushWaits.Put(w)
		return errFlusherStopped
	}
	var err error
	select {
	case err = <-w.done:
		w.msgs, w.errs = nil, nil
		flushWaits.Put(w)
		return err
	case <-ctx.Done():
		err = ctx.Err()
	case <-f.stop:
		err = errFlusherStopped
	}
	// Given up: after this the flusher leaves the messages alone (they may
	// already be written; nothing says they arrived). w stays out of the
	// pool, since the flusher will still answer it.
	w.mu.Lock()
	w.abandoned = true
	w.mu.Unlock()
	return err
}
