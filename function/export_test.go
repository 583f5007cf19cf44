package function

import (
	"net"

	"github.com/rgw-nats/rgw-nats/adapter/natsout"
)

// WithNATSOptions passes extra options to the NATS publisher: the tests
// shorten reconnect waits with it.
func WithNATSOptions(opts ...natsout.Option) Option {
	return func(f *Function) { f.natsOp = append(f.natsOp, opts...) }
}

// MetricsAddr is the address of the metrics' own listener (METRICS_ADDRESS),
// nil when they are served on the main port or not at all.
func (f *Function) MetricsAddr() net.Addr {
	if r := f.started.Load(); r != nil && r.metricsSrv != nil {
		return r.metricsSrv.addr
	}
	return nil
}
