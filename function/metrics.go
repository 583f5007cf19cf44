package function

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/internal/buildinfo"
)

// MetricsPath is where the Prometheus metrics are served, on the main port
// or on METRICS_ADDRESS.
const MetricsPath = "/metrics"

// metricsOff is the METRICS_ADDRESS that turns the metrics off.
const metricsOff = "off"

// metrics are the Prometheus metrics of one Function, in a registry of its
// own. What only the HTTP shell sees (requests, what became of each event)
// and the two latency histograms are counted as requests pass; what the
// publisher and the Lua engine count anyway is read from their Stats when
// scraped (statsCollector), never counted twice.
type metrics struct {
	reg     *prometheus.Registry
	handler http.Handler

	requests  *prometheus.CounterVec
	byCode    map[int]*[len(ingress.Modes)]prometheus.Counter // the codes Handle answers, resolved once
	events    *prometheus.CounterVec
	byOutcome [len(adapter.Statuses)][len(adapter.Reasons) + 1]prometheus.Counter // [status][reason], ReasonNone: no reason
	publish   prometheus.Histogram
	luaCall   prometheus.Histogram
}

func newMetrics() *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rgwnats_requests_total",
		Help: "HTTP requests answered, by ingress mode (raw, binary, structured, batch) and status code.",
	}, []string{"mode", "code"})
	m.events = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rgwnats_events_total",
		Help: "Events received, by what became of them (published, dropped, duplicate, deadlettered, failed) and, for deadlettered and failed, the reason.",
	}, []string{"outcome", "reason"})
	m.publish = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rgwnats_publish_duration_seconds",
		Help:    "Time to publish one request's messages until NATS confirmed them (core: the flush round trip; JetStream: every ack), failures included.",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	})
	m.luaCall = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rgwnats_lua_call_duration_seconds",
		Help:    "Duration of one Lua script call (one per event and script), failed calls included.",
		Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
	})
	m.reg.MustRegister(m.requests, m.events, m.publish,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	m.byCode = map[int]*[len(ingress.Modes)]prometheus.Counter{}
	codes := []int{http.StatusOK} // a reply (REPLY), and every answer of the table
	for _, r := range append([]adapter.Reason{adapter.ReasonNone}, adapter.Reasons[:]...) {
		for _, s := range []adapter.Sender{adapter.FromCloudEvents, adapter.FromRGW} {
			if c := adapter.AnswerFor(r.Class(), r, s).Status; !slices.Contains(codes, c) {
				codes = append(codes, c)
			}
		}
	}
	for _, code := range codes {
		var cs [len(ingress.Modes)]prometheus.Counter
		for _, mode := range ingress.Modes {
			cs[mode] = m.requests.WithLabelValues(mode.String(), strconv.Itoa(code))
		}
		m.byCode[code] = &cs
	}
	for _, st := range adapter.Statuses {
		m.byOutcome[st][0] = m.events.WithLabelValues(st.String(), "")
		if st != adapter.Failed && st != adapter.DeadLettered {
			continue
		}
		for _, r := range adapter.Reasons {
			m.byOutcome[st][r] = m.events.WithLabelValues(st.String(), r.String())
		}
	}
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
	return m
}

// request counts one answered request.
func (m *metrics) request(mode ingress.Mode, code int) {
	if cs, ok := m.byCode[code]; ok && int(mode) < len(cs) {
		cs[mode].Inc()
		return
	}
	m.requests.WithLabelValues(mode.String(), strconv.Itoa(code)).Inc()
}

// result counts what became of a request's events; a request that went to
// the dead letter whole (it did not decode) counts as one event.
func (m *metrics) result(res *adapter.Result) {
	if res.DeadLettered {
		m.outcome(adapter.DeadLettered, res.Reason)
	}
	for i := range res.Outcomes {
		o := &res.Outcomes[i]
		m.outcome(o.Status, o.Reason)
	}
}

func (m *metrics) outcome(st adapter.Status, reason adapter.Reason) {
	if int(st) >= len(m.byOutcome) || int(reason) >= len(m.byOutcome[st]) {
		return
	}
	if st != adapter.Failed && st != adapter.DeadLettered {
		reason = adapter.ReasonNone
	}
	m.byOutcome[st][reason].Inc()
}

// observeLua is the Lua engine's call observer.
func (m *metrics) observeLua(d time.Duration) { m.luaCall.Observe(d.Seconds()) }

// collect registers what is read at scrape time: the publisher's and the
// engine's counters (engine may be nil) and the build.
func (m *metrics) collect(pub *natsout.Publisher, engine *lua.Engine) {
	if engine != nil {
		m.reg.MustRegister(m.luaCall)
	}
	m.reg.MustRegister(&statsCollector{pub: pub, engine: engine, build: buildInfo()})
}

// timedPublisher observes how long each Publish takes.
type timedPublisher struct {
	pub  adapter.Publisher
	hist prometheus.Histogram
}

func (t timedPublisher) Publish(ctx context.Context, msgs []binding.Message) []error {
	start := time.Now()
	errs := t.pub.Publish(ctx, msgs)
	t.hist.Observe(time.Since(start).Seconds())
	return errs
}

var (
	descAcks      = prometheus.NewDesc("rgwnats_jetstream_acks_total", "JetStream acks received; duplicate=\"true\": the stream already had the message (Nats-Msg-Id) and did not store it again.", []string{"duplicate"}, nil)
	descMessages  = prometheus.NewDesc("rgwnats_nats_messages_total", "NATS messages published (confirmed by a flush or an ack) or failed, dead letters included.", []string{"result"}, nil)
	descConnected = prometheus.NewDesc("rgwnats_nats_connected", "1 while the NATS connection is up.", nil, nil)
	descReconn    = prometheus.NewDesc("rgwnats_nats_reconnects_total", "Reconnects of the NATS connection.", nil, nil)
	descServer    = prometheus.NewDesc("rgwnats_nats_server_info", "1 for the NATS server the connection is on.", []string{"server"}, nil)
	descLuaCalls  = prometheus.NewDesc("rgwnats_lua_calls_total", "Lua script calls finished, by result: ok, error, timeout (the deadline LUA_TIMEOUT).", []string{"result"}, nil)
	descLuaStates = prometheus.NewDesc("rgwnats_lua_states", "Lua states: live (running a call now) and idle (kept ready).", []string{"state"}, nil)
	descLuaNew    = prometheus.NewDesc("rgwnats_lua_states_created_total", "Lua states created (a state whose call failed is closed and replaced).", nil, nil)
	descReloads   = prometheus.NewDesc("rgwnats_script_reloads_total", "Changed script versions: ok (swapped in) or rejected (the previous version kept serving).", []string{"result"}, nil)
	descBuild     = prometheus.NewDesc("rgwnats_build_info", "1, labelled with the module version, the VCS revision and the Go version of the build.", []string{"version", "revision", "goversion"}, nil)
)

// statsCollector reads the counters that the publisher and the Lua engine
// keep, at scrape time.
type statsCollector struct {
	pub    *natsout.Publisher
	engine *lua.Engine
	build  [3]string
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAcks, descMessages, descConnected, descReconn, descServer, descBuild} {
		ch <- d
	}
	if c.engine != nil {
		for _, d := range []*prometheus.Desc{descLuaCalls, descLuaStates, descLuaNew, descReloads} {
			ch <- d
		}
	}
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	s := c.pub.Stats()
	counter(descAcks, s.Acks-s.Duplicates, "false")
	counter(descAcks, s.Duplicates, "true")
	counter(descMessages, s.Published, "published")
	counter(descMessages, s.Failed, "failed")
	counter(descReconn, s.Reconnects)
	nc := c.pub.Conn()
	if nc.IsConnected() {
		gauge(descConnected, 1)
		if name := nc.ConnectedServerName(); name != "" {
			gauge(descServer, 1, name)
		}
	} else {
		gauge(descConnected, 0)
	}
	gauge(descBuild, 1, c.build[:]...)
	if c.engine == nil {
		return
	}
	l := c.engine.Stats()
	counter(descLuaCalls, l.OK, "ok")
	counter(descLuaCalls, l.Errors-l.Timeouts, "error")
	counter(descLuaCalls, l.Timeouts, "timeout")
	gauge(descLuaStates, float64(l.Live), "live")
	gauge(descLuaStates, float64(l.Idle), "idle")
	counter(descLuaNew, l.States)
	counter(descReloads, l.Reloads, "ok")
	counter(descReloads, l.ReloadErrors, "rejected")
}

// buildInfo is the version, revision and Go version for metrics and spans
// (internal/buildinfo, as the CLI prints it; the revision linked in by
// scripts/build.sh when the toolchain stamped none).
func buildInfo() [3]string {
	i := buildinfo.Read()
	return [3]string{orUnknown(i.Version), orUnknown(i.Revision), orUnknown(i.GoVersion)}
}

func orUnknown(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// metricsServer serves the metrics on their own address (METRICS_ADDRESS).
type metricsServer struct {
	srv  *http.Server
	addr net.Addr
	done chan error
	once sync.Once
}

func serveMetrics(addr string, h http.Handler) (*metricsServer, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("METRICS_ADDRESS=%s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET "+MetricsPath, h)
	s := &metricsServer{
		srv:  &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second},
		addr: ln.Addr(),
		done: make(chan error, 1),
	}
	go func() { s.done <- s.srv.Serve(ln) }()
	return s, nil
}

// close stops the listener; later calls do nothing (Stop may be called
// more than once).
func (s *metricsServer) close(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		err = s.srv.Shutdown(ctx)
		if served := <-s.done; !errors.Is(served, http.ErrServerClosed) {
			err = errors.Join(err, served)
		}
	})
	return err
}
