package adapter_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// panicky's first call blocks until released, then panics: a bug in a
// transform. Later calls drop the event.
type panicky struct {
	calls            *atomic.Int32
	entered, release chan struct{}
}

func (p panicky) Transform(context.Context, *event.Event) ([]lua.Output, error) {
	if p.calls.Add(1) > 1 {
		return nil, nil
	}
	close(p.entered)
	<-p.release
	panic("transform bug")
}

// TestFlightOfPanickedRequest: a request that panics while it holds an
// event id in flight lets the requests waiting for it go, with a transient
// failure (a retry), instead of leaving them waiting for ever.
func TestFlightOfPanickedRequest(t *testing.T) {
	tmpl, err := subject.Parse("rgw.{bucket}.{event}")
	if err != nil {
		t.Fatal(err)
	}
	tr := panicky{calls: new(atomic.Int32), entered: make(chan struct{}), release: make(chan struct{})}
	p, err := adapter.New(adapter.Config{Subject: tmpl, DedupWindow: time.Minute, DedupMaxIDs: 10}, &adapter.Recorder{}, tr)
	if err != nil {
		t.Fatal(err)
	}
	req := adapter.Request{Header: ingress.Header{"Content-Type": {"application/json"}}, Body: events.Read("reef-put-capture.json")}
	panicked := make(chan any, 1)
	go func() {
		defer func() { panicked <- recover() }()
		p.Handle(context.Background(), req)
	}()
	<-tr.entered
	second := make(chan adapter.Result, 1)
	go func() { second <- p.Handle(context.Background(), req) }()
	time.Sleep(200 * time.Millisecond) // the second request is waiting for the first's flight
	close(tr.release)
	if r := <-panicked; r == nil {
		t.Fatal("the first request did not panic")
	}
	select {
	case res := <-second:
		if o := res.Outcomes[0]; o.Status != adapter.Failed || o.Class != adapter.Transient || res.Class != adapter.Transient {
			t.Errorf("the waiting request: %+v", o)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the waiting request is still waiting")
	}
}
