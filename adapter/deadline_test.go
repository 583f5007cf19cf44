package adapter

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func TestEventContext(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "request")
	soon, cancelSoon := context.WithTimeout(parent, time.Millisecond)
	defer cancelSoon()
	tests := []struct {
		name    string
		parent  context.Context
		timeout time.Duration
		run     func(t *testing.T, c *eventContext)
	}{
		{"deadline is the event's", parent, time.Hour, func(t *testing.T, c *eventContext) {
			if d, ok := c.Deadline(); !ok || time.Until(d) < 59*time.Minute {
				t.Errorf("Deadline %v %v", d, ok)
			}
			if c.Err() != nil || c.Value(ctxKey{}) != "request" {
				t.Errorf("Err %v, Value %v", c.Err(), c.Value(ctxKey{}))
			}
			if made, _ := c.made(); made != nil {
				t.Error("a timer was made without Done")
			}
		}},
		{"deadline is the request's when sooner", soon, time.Hour, func(t *testing.T, c *eventContext) {
			if d, _ := c.Deadline(); time.Until(d) > time.Second {
				t.Errorf("Deadline %v", d)
			}
			<-c.Done() // the request's deadline ends it
			if !errors.Is(c.Err(), context.DeadlineExceeded) {
				t.Errorf("Err %v", c.Err())
			}
		}},
		{"Done closes at the deadline", parent, 20 * time.Millisecond, func(t *testing.T, c *eventContext) {
			start := time.Now()
			select {
			case <-c.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("Done still open")
			}
			if time.Since(start) < 15*time.Millisecond {
				t.Errorf("Done closed after %v", time.Since(start))
			}
			if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(c), context.DeadlineExceeded) {
				t.Errorf("Err %v, Cause %v", c.Err(), context.Cause(c))
			}
		}},
		{"Err says so once the deadline passed, Done agrees", parent, time.Millisecond, func(t *testing.T, c *eventContext) {
			time.Sleep(5 * time.Millisecond)
			if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(context.Cause(c), context.DeadlineExceeded) {
				t.Fatalf("Err %v, Cause %v", c.Err(), context.Cause(c))
			}
			select {
			case <-c.Done():
			default:
				t.Error("Err is set, Done open")
			}
			if c.Value(ctxKey{}) != "request" {
				t.Error("lost the request's values")
			}
		}},
		{"a child ends with it", parent, 20 * time.Millisecond, func(t *testing.T, c *eventContext) {
			child, cancel := context.WithCancel(c)
			defer cancel()
			select {
			case <-child.Done():
			case <-time.After(10 * time.Second):
				t.Fatal("child still open")
			}
		}},
		{"release ends it, with or without a timer", parent, time.Hour, func(t *testing.T, c *eventContext) {
			other := newEventContext(parent, time.Hour)
			_ = other.Done() // the timer is made
			for _, c := range []*eventContext{c, other} {
				c.release()
				if !errors.Is(c.Err(), context.Canceled) {
					t.Errorf("Err %v", c.Err())
				}
				select {
				case <-c.Done():
				default:
					t.Error("released, Done open")
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newEventContext(tt.parent, tt.timeout)
			defer c.release()
			tt.run(t, c)
		})
	}
}

func TestEventContextCanceledRequest(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	c := newEventContext(parent, time.Hour)
	defer c.release()
	cancel()
	if !errors.Is(c.Err(), context.Canceled) {
		t.Errorf("Err %v", c.Err())
	}
	select {
	case <-c.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("Done still open")
	}
}

// What the pipeline does with it for an event whose transform only reads
// the deadline costs one allocation (context.WithTimeout: four).
func TestEventContextAllocations(t *testing.T) {
	parent, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := testing.AllocsPerRun(100, func() {
		c := newEventContext(parent, time.Minute)
		if _, ok := c.Deadline(); !ok || c.Err() != nil {
			t.Fatal("no deadline")
		}
		c.release()
	})
	if n > 1 {
		t.Errorf("%v allocations", n)
	}
}
