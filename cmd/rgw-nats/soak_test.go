package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// soakScript passes ordinary events through and, for a bucket named
// hostile-N, runs hostile probe N: every built-in that can allocate, asked
// for far more than the string bound, and the loops a deadline must stop.
const soakScript = `
local rn = require("rgwnats")
local big = string.rep("x", 1000000)
local bigs = {}
for i = 1, 100 do bigs[i] = big end
local probes = {
  function(ev) return string.pack("c2000000000", "") end,
  function(ev) return string.pack("s4s4", big, big) end,
  function(ev) return string.format(string.rep("%s", 100), table.unpack(bigs)) end,
  function(ev) return string.format("%q", big) end,
  function(ev) return os.date(string.rep("%c", 500000)) end,
  function(ev) return string.rep(big, 1000) end,
  function(ev) return string.rep("x", 1000, big) end,
  function(ev) return big .. big end,
  function(ev) return table.concat(bigs) end,
  function(ev) return string.gsub(big, "x", "xxxx") end,
  function(ev) return rn.base64_encode(big) end,
  function(ev) return rn.token(big) end,
  function(ev) return rn.json.encode(bigs) end,
  function(ev) local s = ev.id while true do s = s .. s end end,
  function(ev) local t = {} while true do t[#t+1] = string.rep("y", 1000000) end end,
  function(ev) local l = {} for i = 1, 20000 do l[i] = ev:clone() end return l end,
  function(ev) ev.nats.subject = string.rep("a", 5000) return ev end,
}
function transform(ev)
  local k = tonumber(string.match(ev.ext.bucket or "", "^hostile%-(%d+)$"))
  if k then
    local r = probes[k](ev)
    if type(r) == "table" then return r end
    return ev
  end
  return ev
end
`

const soakProbes = 17

// soakCounts is what the soak saw.
type soakCounts struct {
	mu         sync.Mutex
	codes      map[string]map[int]int // kind -> status -> count
	acked      map[string]string      // event id -> kind, answered 2xx
	worst      map[string]time.Duration
	firstTryOK map[string]int
	sent       map[string]int
	// goodFailedUp counts good requests not answered 2xx while NATS was up.
	goodFailedUp int
}

func (c *soakCounts) answer(kind string, code int, took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.codes[kind] == nil {
		c.codes[kind] = map[int]int{}
	}
	c.codes[kind][code]++
	c.worst[kind] = max(c.worst[kind], took)
}

// TestSoak runs the probes of issue 17 together against the built binary
// for RGWNATS_SOAK (a duration, e.g. 15m): a steady good load that resends
// until 2xx as RGW does, abusive requests (subjects NATS cannot read, bodies
// at and over the limits, compressed bodies, two framings, bad JSON), 16
// slow uploads at a time, events whose script runs each hostile probe
// (every allocating built-in past its bound, runaway loops, 20,000 clones),
// and nats-server restarts every minute. It then reads the stream: every
// event answered 2xx must be in it exactly once (good events) or have
// exactly one dead letter (hostile ones), liveness must never fail, and the
// process's peak RSS is reported.
func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("RGWNATS_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("a long soak: set RGWNATS_SOAK to a duration (e.g. 15m) to run it")
	}
	port := testutil.FreePort(t)
	store := t.TempDir()
	s := testutil.NATSOn(t, port, store)
	var srv atomic.Pointer[server.Server]
	srv.Store(s)
	script := filepath.Join(t.TempDir(), "soak.lua")
	if err := os.WriteFile(script, []byte(soakScript), 0o644); err != nil {
		t.Fatal(err)
	}
	url := s.ClientURL()
	p := startBinary(t, map[string]string{
		"NATS_URL": url, "NATS_MODE": "jetstream", "NATS_STREAM_CREATE": "true",
		"LUA_SCRIPT": script, "LUA_RELOAD": "false", "GOMEMLIMIT": "100MiB", "LOG_LEVEL": "warn",
	})
	pid := p.cmd.Process.Pid
	c := &soakCounts{codes: map[string]map[int]int{}, acked: map[string]string{}, worst: map[string]time.Duration{},
		firstTryOK: map[string]int{}, sent: map[string]int{}}
	var natsDown atomic.Bool // between a restart's stop and its reconnect
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 60 * time.Second}
	post := func(kind, ct string, body []byte, hdr map[string]string) int {
		req, _ := http.NewRequest(http.MethodPost, p.base+"/", bytes.NewReader(body))
		req.Header.Set("Content-Type", ct)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		t0 := time.Now()
		resp, err := client.Do(req)
		code := 0
		if err == nil {
			code = resp.StatusCode
			resp.Body.Close()
		}
		c.answer(kind, code, time.Since(t0))
		if kind == "good" && code/100 != 2 && !natsDown.Load() {
			c.mu.Lock()
			c.goodFailedUp++
			c.mu.Unlock()
		}
		return code
	}
	// sendUntilOK resends as RGW does, until 2xx (or the run is long over).
	sendUntilOK := func(kind, id string, body []byte) {
		c.mu.Lock()
		c.sent[kind]++
		c.mu.Unlock()
		for try := 0; ; try++ {
			code := post(kind, "application/json", body, nil)
			if code/100 == 2 {
				c.mu.Lock()
				c.acked[id] = kind
				if try == 0 {
					c.firstTryOK[kind]++
				}
				c.mu.Unlock()
				return
			}
			if try > 3000 {
				t.Errorf("%s %s: no 2xx after %d tries", kind, id, try)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	every := func(interval time.Duration, fn func(i int)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(interval)
			defer tick.Stop()
			for i := 0; ; i++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				wg.Add(1)
				go func() { defer wg.Done(); fn(i) }()
			}
		}()
	}
	// Good load: 20 events a second, each its own id.
	every(50*time.Millisecond, func(i int) {
		id := fmt.Sprintf("soak-good-%d", i)
		sendUntilOK("good", id+".HTTPNotification", rgwBody(t, id, nil))
	})
	// Hostile scripts: 2 events a second, each probe in turn.
	every(500*time.Millisecond, func(i int) {
		id := fmt.Sprintf("soak-hostile-%d", i)
		sendUntilOK("hostile", id+".HTTPNotification", rgwBody(t, id, setBucket(fmt.Sprintf("hostile-%d", i%soakProbes+1))))
	})
	// Abuse: 4 requests a second, each kind in turn.
	long := strings.Repeat("b", 5000)
	every(250*time.Millisecond, func(i int) {
		id := fmt.Sprintf("soak-abuse-%d", i)
		switch i % 7 {
		case 0:
			sendUntilOK("abuse", id+".HTTPNotification", rgwBody(t, id, setBucket(long)))
		case 1:
			sendUntilOK("abuse", id+".HTTPNotification", rgwBody(t, id, func(r map[string]any) { r["eventName"] = "s3:" + long }))
		case 2:
			body := rgwBody(t, id, func(r map[string]any) { r["opaqueData"] = "" })
			body = rgwBody(t, id, func(r map[string]any) { r["opaqueData"] = strings.Repeat("p", 1<<20-len(body)) })
			sendUntilOK("abuse", id+".HTTPNotification", body)
		case 3:
			body := rgwBody(t, id, func(r map[string]any) { r["opaqueData"] = strings.Repeat("p", 1<<20) })
			sendUntilOK("abuse-oversize", id, body)
		case 4:
			var gz bytes.Buffer
			zw := gzip.NewWriter(&gz)
			zw.Write(rgwBody(t, id, nil))
			zw.Close()
			post("abuse-gzip", "application/json", gz.Bytes(), map[string]string{"Content-Encoding": "gzip"})
		case 5:
			post("abuse-garbage", "application/json", []byte(`{"Records":[{"eventName":`), nil)
		case 6:
			body := rgwBody(t, id, nil)
			conn, err := net.Dial("tcp", strings.TrimPrefix(p.base, "http://"))
			if err != nil {
				return
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(30 * time.Second))
			fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n", len(body), body)
			buf := make([]byte, 64)
			n, _ := conn.Read(buf)
			code := 0
			if f := strings.Fields(string(buf[:n])); len(f) > 1 {
				code, _ = strconv.Atoi(f[1])
			}
			c.answer("abuse-two-framings", code, 0)
			if code/100 == 2 {
				c.mu.Lock()
				c.acked[id+".HTTPNotification"] = "good-framing"
				c.mu.Unlock()
			}
		}
	})
	// 16 slow uploads at any time.
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				a, took := slowSender(p.base, i%2 == 1, ctx.Done())
				if took < time.Second {
					time.Sleep(time.Second) // refused at once (NATS down): no spinning
				}
				code := 0
				if f := strings.Fields(a); len(f) > 1 {
					code, _ = strconv.Atoi(f[1])
				}
				c.answer("slow", code, 0)
			}
		}()
	}
	// nats-server restarts: down 3 s every minute.
	restarts := 0
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(57 * time.Second):
			}
			natsDown.Store(true)
			testutil.StopNATS(srv.Load())
			time.Sleep(3 * time.Second)
			srv.Store(testutil.NATSOn(t, port, store))
			// Reconnected within a second or two; answers until then count
			// as the outage's.
			time.Sleep(2 * time.Second)
			natsDown.Store(false)
			restarts++
		}
	}()
	// Health and memory.
	var liveFail, readyFail, samples int
	var peakRSS int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			time.Sleep(200 * time.Millisecond)
			samples++
			if p.health("/health/liveness") != 200 {
				liveFail++
			}
			if p.health("/health/readiness") != 200 {
				readyFail++
			}
			peakRSS = max(peakRSS, procStatus(pid, "VmRSS:"))
		}
	}()
	wg.Wait()
	hwm := procStatus(pid, "VmHWM:")

	// What the stream holds, by message id.
	stored := soakStored(t, srv.Load().ClientURL())
	var lost, twice, deadLost, deadTwice []string
	byKind := map[string]int{}
	for id, kind := range c.acked {
		byKind[kind]++
		switch kind {
		case "good", "good-framing":
			if n := stored[id]; n == 0 {
				lost = append(lost, id)
			} else if n > 1 {
				twice = append(twice, id)
			}
		case "hostile", "abuse":
			if n := stored["deadletter."+id]; n == 0 {
				deadLost = append(deadLost, id)
			} else if n > 1 {
				deadTwice = append(deadTwice, id)
			}
		}
		if kind != "hostile" && stored["deadletter."+id] > 1 {
			deadTwice = append(deadTwice, id)
		}
	}
	sort.Strings(lost)
	t.Logf("soak of %v against the built binary (JetStream, GOMEMLIMIT=100MiB), nats-server restarted %d times", d, restarts)
	kinds := make([]string, 0, len(c.codes))
	for k := range c.codes {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		t.Logf("  %-20s answers %v, slowest %v, sent %d, 2xx at the first try %d", k, c.codes[k], c.worst[k].Round(time.Millisecond), c.sent[k], c.firstTryOK[k])
	}
	t.Logf("  acknowledged: %v; stream messages: %d; good requests not answered 2xx while NATS was up: %d", byKind, len(stored), c.goodFailedUp)
	t.Logf("  lost %d, published twice %d; hostile without dead letter %d, dead letters twice %d", len(lost), len(twice), len(deadLost), len(deadTwice))
	t.Logf("  liveness failed %d of %d probes, readiness %d; peak RSS %d MiB sampled, VmHWM %d MiB", liveFail, samples, readyFail, peakRSS>>20, hwm>>20)
	if len(lost) > 0 || len(twice) > 0 || len(deadLost) > 0 || len(deadTwice) > 0 {
		t.Errorf("lost %v, twice %v, hostile without dead letter %v, dead letters twice %v", first(lost), first(twice), first(deadLost), first(deadTwice))
	}
	if liveFail > 0 {
		t.Errorf("liveness failed %d times", liveFail)
	}
	if c.acked == nil || byKind["good"] == 0 {
		t.Error("no good request answered")
	}
}

func first(ids []string) []string {
	return ids[:min(5, len(ids))]
}

// soakStored counts the messages of stream RGW by Nats-Msg-Id.
func soakStored(t *testing.T, url string) map[string]int {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	st, err := js.Stream(ctx, "RGW")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for n := uint64(0); n < info.State.Msgs; n++ {
		m, err := cons.Next(jetstream.FetchMaxWait(10 * time.Second))
		if err != nil {
			t.Fatalf("reading message %d of %d: %v", n, info.State.Msgs, err)
		}
		counts[m.Headers().Get("Nats-Msg-Id")]++
	}
	return counts
}
