package function_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// scrape GETs the metrics at url and returns every sample as
// `name{label="value",...}` -> value (histograms as name_count and
// name_sum), labels sorted by name, empty labels left out.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("GET %s: %d %s", url, resp.StatusCode, b)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("the scrape does not parse: %v", err)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			key := name + labels(m.GetLabel())
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"+labels(m.GetLabel())] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"+labels(m.GetLabel())] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

func labels(ls []*dto.LabelPair) string {
	var parts []string
	for _, l := range ls {
		if l.GetValue() != "" {
			parts = append(parts, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// series returns the samples whose key starts with prefix.
func series(all map[string]float64, prefix string) map[string]float64 {
	out := map[string]float64{}
	for k, v := range all {
		if strings.HasPrefix(k, prefix) && v != 0 {
			out[k] = v
		}
	}
	return out
}

func wantSeries(t *testing.T, all map[string]float64, prefix string, want map[string]float64) {
	t.Helper()
	got := series(all, prefix)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
		delete(got, k)
	}
	for k, v := range got {
		t.Errorf("unexpected %s = %v", k, v)
	}
}

// metricsScript drops the events of bucket nb-main and fails for
// xraylab-0001 (the dead letter); everything else passes.
const metricsScript = `
function transform(ev)
  if ev.ext.bucket == "xraylab-0001" then error("cannot handle x-rays") end
  if ev.ext.bucket == "nb-main" then return nil end
  return ev
end`

// TestMetricsAfterKnownTraffic scrapes /metrics on the main port after a
// good event, a duplicate of it, a dropped one, a dead-lettered one, a NATS
// outage and the reconnect, and checks the exact values.
func TestMetricsAfterKnownTraffic(t *testing.T) {
	port, store := freePort(t), t.TempDir()
	s := runNATSOn(t, port, store)
	cfg := testConfig(t, s.ClientURL())
	cfg.NATSMode = natsout.JetStream
	cfg.DedupWindow = time.Minute
	cfg.LuaScript = writeScript(t, metricsScript)
	a := startAdapter(t, cfg, s.ClientURL())
	metricsURL := a.url + function.MetricsPath

	good := fixture(t, "reef-put-capture.json")
	for _, c := range []struct {
		name string
		body []byte
	}{
		{"good", good},
		{"duplicate", good},
		{"dropped", fixture(t, "pacific-16.2.15/copy.json")},
		{"dead-lettered", fixture(t, "downstream-xraylab-put-capture.json")},
	} {
		if resp := post(t, a.url, nil, c.body); resp.code != http.StatusAccepted {
			t.Fatalf("%s: %d %s", c.name, resp.code, resp.body)
		}
	}
	before := scrape(t, metricsURL)
	wantSeries(t, before, "rgwnats_nats_", map[string]float64{
		"rgwnats_nats_connected":                              1,
		`rgwnats_nats_server_info{server="` + s.Name() + `"}`: 1,
		`rgwnats_nats_messages_total{result="published"}`:     2, // the good event and the dead letter
	})

	testutil.StopNATS(s)
	testutil.WaitFor(t, func() bool { ok, _ := a.f.Ready(context.Background()); return !ok })
	if resp := post(t, a.url, nil, good); resp.code != http.StatusServiceUnavailable {
		t.Fatalf("during the outage: %d %s", resp.code, resp.body)
	}

	got := scrape(t, metricsURL)
	wantSeries(t, got, "rgwnats_requests_total", map[string]float64{
		`rgwnats_requests_total{code="202",mode="raw"}`: 4,
		`rgwnats_requests_total{code="503",mode="raw"}`: 1,
	})
	// The 503 came before anything was decoded: no event counted for it.
	wantSeries(t, got, "rgwnats_events_total", map[string]float64{
		`rgwnats_events_total{outcome="published"}`:                    1,
		`rgwnats_events_total{outcome="duplicate"}`:                    1,
		`rgwnats_events_total{outcome="dropped"}`:                      1,
		`rgwnats_events_total{outcome="deadlettered",reason="script"}`: 1,
	})
	wantSeries(t, got, "rgwnats_jetstream_acks_total", map[string]float64{
		`rgwnats_jetstream_acks_total{duplicate="false"}`: 2,
	})
	// Two publishes: the good event's and the dead letter's.
	wantSeries(t, got, "rgwnats_publish_duration_seconds_count", map[string]float64{
		"rgwnats_publish_duration_seconds_count": 2,
	})
	// Three script calls (the duplicate never reached Lua): the drop is a
	// call that returned normally.
	wantSeries(t, got, "rgwnats_lua_calls_total", map[string]float64{
		`rgwnats_lua_calls_total{result="ok"}`:    2,
		`rgwnats_lua_calls_total{result="error"}`: 1,
	})
	wantSeries(t, got, "rgwnats_lua_call_duration_seconds_count", map[string]float64{
		"rgwnats_lua_call_duration_seconds_count": 3,
	})
	if got["rgwnats_lua_states{state=\"live\"}"] != 0 || got["rgwnats_lua_states{state=\"idle\"}"] < 1 {
		t.Errorf("lua states live %v idle %v", got[`rgwnats_lua_states{state="live"}`], got[`rgwnats_lua_states{state="idle"}`])
	}
	wantSeries(t, got, "rgwnats_script_reloads_total", nil)
	wantSeries(t, got, "rgwnats_nats_connected", nil) // 0
	if _, ok := got["rgwnats_nats_connected"]; !ok {
		t.Error("rgwnats_nats_connected missing while disconnected")
	}
	for k := range got {
		if strings.HasPrefix(k, "rgwnats_nats_server_info") {
			t.Errorf("%s while disconnected", k)
		}
	}
	build := fmt.Sprintf(`rgwnats_build_info{goversion=%q,revision="unknown",version=`, runtime.Version())
	if len(series(got, build)) != 1 {
		t.Errorf("no %s...} in %v", build, series(got, "rgwnats_build_info"))
	}
	if got["go_goroutines"] == 0 || got["process_resident_memory_bytes"] == 0 {
		t.Error("the Go and process collectors are missing")
	}

	// Every metric the Grafana dashboard queries is exported.
	dash, err := os.ReadFile("../knative/grafana/rgw-nats.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range regexp.MustCompile(`rgwnats_[a-z_]*[a-z]`).FindAllString(string(dash), -1) {
		name = strings.TrimSuffix(name, "_bucket")
		found := false
		for k := range got {
			if k == name || strings.HasPrefix(k, name+"{") || strings.HasPrefix(k, name+"_count") {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("the dashboard queries %s, which the service does not export", name)
		}
	}

	// NATS comes back on the same port: one reconnect.
	s2 := runNATSOn(t, port, store)
	waitReady(t, a.f)
	after := scrape(t, metricsURL)
	wantSeries(t, after, "rgwnats_nats_", map[string]float64{
		"rgwnats_nats_connected":                               1,
		"rgwnats_nats_reconnects_total":                        1,
		`rgwnats_nats_server_info{server="` + s2.Name() + `"}`: 1,
		`rgwnats_nats_messages_total{result="published"}`:      2,
	})
}

// TestMetricsAddress: the metrics on a listener of their own, or off; the
// main port then does not answer GET /metrics.
func TestMetricsAddress(t *testing.T) {
	s := runNATS(t)
	t.Run("own listener", func(t *testing.T) {
		cfg := testConfig(t, s.ClientURL())
		cfg.MetricsAddress = "127.0.0.1:0"
		a := startAdapter(t, cfg, s.ClientURL())
		addr := a.f.MetricsAddr()
		if addr == nil {
			t.Fatal("no metrics listener")
		}
		post(t, a.url, nil, fixture(t, putFixture))
		got := scrape(t, "http://"+addr.String()+function.MetricsPath)
		if got[`rgwnats_requests_total{code="202",mode="raw"}`] != 1 {
			t.Errorf("requests %v", series(got, "rgwnats_requests_total"))
		}
		if _, ok := got["rgwnats_lua_calls_total"]; ok {
			t.Error("Lua metrics without a script")
		}
		if resp := get(t, a.url+function.MetricsPath); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("main port GET /metrics: %d", resp.StatusCode)
		}
		a.f.Stop(context.Background())
		if c, err := net.Dial("tcp", addr.String()); err == nil {
			c.Close()
			t.Error("the metrics listener is still open after Stop")
		}
	})
	t.Run("off", func(t *testing.T) {
		cfg := testConfig(t, s.ClientURL())
		cfg.MetricsAddress = "off"
		a := startAdapter(t, cfg, s.ClientURL())
		if a.f.MetricsAddr() != nil {
			t.Error("a metrics listener with METRICS_ADDRESS=off")
		}
		if resp := get(t, a.url+function.MetricsPath); resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("GET /metrics with metrics off: %d", resp.StatusCode)
		}
		if resp := post(t, a.url, nil, fixture(t, putFixture)); resp.code != http.StatusAccepted {
			t.Errorf("POST with metrics off: %d %s", resp.code, resp.body)
		}
	})
	t.Run("busy port names the variable", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		cfg := testConfig(t, s.ClientURL())
		cfg.MetricsAddress = ln.Addr().String()
		f := function.New(function.WithConfig(cfg), function.WithLogger(testutil.Logger(t)))
		err = f.Start(context.Background(), nil)
		if err == nil || !strings.Contains(err.Error(), "METRICS_ADDRESS="+cfg.MetricsAddress) {
			t.Fatalf("start with a busy metrics port: %v", err)
		}
	})
	t.Run("bad values", func(t *testing.T) {
		for _, v := range []string{"9090", "on"} {
			_, err := function.ConfigFromMap(map[string]string{"METRICS_ADDRESS": v})
			if err == nil || !strings.Contains(err.Error(), "METRICS_ADDRESS") {
				t.Errorf("METRICS_ADDRESS=%s: %v", v, err)
			}
		}
	})
}

// TestMetricsBeforeStart: a scrape before Start is answered 503, like every
// other request then.
func TestMetricsBeforeStart(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(function.New().Handle))
	defer srv.Close()
	if resp := get(t, srv.URL+function.MetricsPath); resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("status %d", resp.StatusCode)
	}
}

func get(t *testing.T, url string) *http.Response {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}
