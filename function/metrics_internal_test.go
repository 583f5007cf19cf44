package function

import (
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
)

// BenchmarkMetricsObserve is what the metrics add to one request of one
// event: the request and event counters and one observation of each
// histogram.
func BenchmarkMetricsObserve(b *testing.B) {
	m := newMetrics()
	res := adapter.Result{Mode: ingress.Raw, Outcomes: []adapter.Outcome{{Status: adapter.Published}}}
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		m.observeLua(time.Since(start))
		m.publish.Observe(time.Since(start).Seconds())
		m.request(ingress.Raw, 202)
		m.result(&res)
	}
}

// The request path's metrics allocate nothing.
func TestMetricsObserveAllocs(t *testing.T) {
	m := newMetrics()
	res := adapter.Result{Mode: ingress.Raw, Outcomes: []adapter.Outcome{
		{Status: adapter.Published}, {Status: adapter.DeadLettered, Reason: adapter.ReasonScript}, {Status: adapter.Failed, Reason: adapter.ReasonNATS},
	}}
	if n := testing.AllocsPerRun(100, func() {
		m.request(ingress.Batch, 503)
		m.result(&res)
		m.observeLua(time.Millisecond)
	}); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}
