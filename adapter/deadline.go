package adapter

import (
	"context"
	"sync"
	"time"
)

// eventContext is the context of one event's transform: the request's,
// ending at the event's deadline (Config.EventTimeout).
//
// context.WithTimeout would start a timer and register with the request's
// context for every event, and stop and unregister both after: about
// 1.5 µs of an event's CPU in the service's profile and three allocations,
// for a deadline that nearly nothing waits on. The Lua engine only reads Deadline (it keeps a timer of
// its own) and the pipeline asks Err between outputs. So the timer is made
// only when something asks for Done (the RGW table waiting on the network),
// and Err compares the clock with the deadline until then.
type eventContext struct {
	context.Context // the request's
	deadline        time.Time

	mu       sync.Mutex
	timed    context.Context // with the timer, once made
	cancel   context.CancelFunc
	released bool
}

// closed is the Done of a released event context that never made a timer.
var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func newEventContext(parent context.Context, timeout time.Duration) *eventContext {
	return &eventContext{Context: parent, deadline: time.Now().Add(timeout)}
}

// Deadline is the sooner of the request's and the event's.
func (c *eventContext) Deadline() (time.Time, bool) {
	if d, ok := c.Context.Deadline(); ok && d.Before(c.deadline) {
		return d, true
	}
	return c.deadline, true
}

// Done is closed when the request is done, the event's deadline passes or
// the pipeline released the context.
func (c *eventContext) Done() <-chan struct{} {
	if t := c.withTimer(); t != nil {
		return t.Done()
	}
	return closed
}

// Err is nil while Done is open, as context.WithDeadline's: once the
// deadline passed, the context with the timer is made (canceled at once,
// Done closed) and answers.
func (c *eventContext) Err() error {
	t, released := c.made()
	switch {
	case t != nil:
		return t.Err()
	case released:
		return context.Canceled
	case !time.Now().Before(c.deadline):
		if t := c.withTimer(); t != nil {
			return t.Err()
		}
		return context.Canceled // released meanwhile
	}
	return c.Context.Err()
}

// Value answers for the context with the timer once there is one, so that
// context.Cause sees the deadline's cause.
func (c *eventContext) Value(key any) any {
	if t, _ := c.made(); t != nil {
		return t.Value(key)
	}
	if !time.Now().Before(c.deadline) {
		if t := c.withTimer(); t != nil {
			return t.Value(key)
		}
	}
	return c.Context.Value(key)
}

func (c *eventContext) made() (context.Context, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.timed, c.released
}

// withTimer returns the context with the timer, made now if need be; nil
// once released without one.
func (c *eventContext) withTimer() context.Context {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timed == nil && !c.released {
		c.timed, c.cancel = context.WithDeadline(c.Context, c.deadline)
	}
	return c.timed
}

// release ends the context, as the CancelFunc of context.WithTimeout does:
// the timer stops, if there is one, and Done is closed after.
func (c *eventContext) release() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.released = true
	if c.cancel != nil {
		c.cancel()
	}
}
