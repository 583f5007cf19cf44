package function_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// cpuTime is the CPU time this process has used (user + system). Note that
// the in-process nats-server of a benchmark counts too.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1e3, "cpu-µs/op")
}

// BenchmarkDecodeMapEncode is the adapter's own work per RGW POST without any
// I/O: decode the request, map the record, name the subject, encode the NATS
// message.
func BenchmarkDecodeMapEncode(b *testing.B) {
	body := fixture(b, putFixture)
	h := ingress.Header{"Content-Type": {"application/json"}}
	tmpl, _ := subject.Parse("rgw.{bucket}.{event}")
	for _, enc := range []binding.Encoding{binding.Structured, binding.Binary} {
		b.Run(enc.String(), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req, err := ingress.Decode(h, body, cloudevent.Options{})
				if err != nil {
					b.Fatal(err)
				}
				evs := req.Events
				if _, err := binding.EncodeChecked(&evs[0], tmpl.Execute(&evs[0]), enc, nil); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkHandle is one RGW POST through Handle, published to a real
// nats-server: core mode (publish + flush round trip) and JetStream (ack).
// The recorder stands in for the network, so the numbers are the adapter's
// path plus NATS.
func BenchmarkHandle(b *testing.B) {
	body := fixture(b, putFixture)
	for _, mode := range []natsout.Mode{natsout.Core, natsout.JetStream} {
		b.Run(mode.String(), func(b *testing.B) {
			s := runNATS(b)
			cfg := testConfig(b, s.ClientURL())
			cfg.NATSMode = mode
			a := startAdapter(b, cfg, s.ClientURL())
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				a.f.Handle(w, req)
				if w.Code != http.StatusAccepted {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			reportCPU(b, start)
		})
	}
}

// BenchmarkHTTPParallel is the whole path over loopback HTTP with 8
// concurrent senders per CPU, like RGW posting the queued entries of a
// persistent topic at once; everything shares the one NATS connection.
// "close" answers every POST with Connection: close, as the adapter does for
// RGW by default; "keepalive" reuses connections.
func BenchmarkHTTPParallel(b *testing.B) {
	body := fixture(b, putFixture)
	for _, c := range []struct {
		mode  natsout.Mode
		close bool
	}{{natsout.Core, true}, {natsout.Core, false}, {natsout.JetStream, false}} {
		name := c.mode.String() + "/keepalive"
		if c.close {
			name = c.mode.String() + "/close"
		}
		b.Run(name, func(b *testing.B) {
			s := runNATS(b)
			cfg := testConfig(b, s.ClientURL())
			cfg.NATSMode, cfg.CloseRGW = c.mode, c.close
			a := startAdapter(b, cfg, s.ClientURL())
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
			b.SetParallelism(8)
			b.ReportAllocs()
			start := cpuTime()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req, _ := http.NewRequest(http.MethodPost, a.url, bytes.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					resp, err := client.Do(req)
					if err != nil {
						b.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusAccepted {
						b.Fatalf("status %d", resp.StatusCode)
					}
				}
			})
			reportCPU(b, start)
		})
	}
}

// BenchmarkMetricsCost is BenchmarkHandle (core mode, with a Lua script so
// that every metric on the request path is touched: requests, events, the
// publish and Lua histograms) with the metrics off and on, in one binary:
// compare with `benchstat -col /metrics`.
func BenchmarkMetricsCost(b *testing.B) {
	body := fixture(b, putFixture)
	for _, addr := range []string{"off", ""} {
		name := "metrics=on"
		if addr == "off" {
			name = "metrics=off"
		}
		b.Run(name, func(b *testing.B) {
			s := runNATS(b)
			cfg := testConfig(b, s.ClientURL())
			cfg.MetricsAddress = addr
			cfg.LuaScript = benchScript(b)
			a := startAdapter(b, cfg, s.ClientURL())
			b.ReportAllocs()
			start := cpuTime()
			for b.Loop() {
				req := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				a.f.Handle(w, req)
				if w.Code != http.StatusAccepted {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
			reportCPU(b, start)
		})
	}
}

func benchScript(b *testing.B) string {
	b.Helper()
	path := filepath.Join(b.TempDir(), "transform.lua")
	if err := os.WriteFile(path, []byte(`function transform(ev) ev.ext.seen = "yes" return ev end`), 0o644); err != nil {
		b.Fatal(err)
	}
	return path
}
