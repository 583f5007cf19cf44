// Command coldstart measures what scripts/bench-coldstart.sh reports about
// one rgw-nats binary against a NATS server that runs in another process:
// time from exec to the first readiness 200, time from exec to the first
// event on NATS, resident memory when idle, and resident memory and
// throughput under a bounded load from loopback. Linux only (it reads
// /proc). It is a benchmark driver for people, not part of the service: it
// imports nothing of this repository.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rgw-nats/rgw-nats/scripts/internal/procstat"

	"github.com/nats-io/nats.go"
)

func main() {
	bin := flag.String("bin", "", "rgw-nats binary")
	natsURL := flag.String("nats", "nats://127.0.0.1:4222", "NATS server (a separate process)")
	payload := flag.String("payload", "samples/events/pacific-16.2.15/persistent-put.json", "RGW notification to POST")
	runs := flag.Int("runs", 20, "cold starts to time")
	mode := flag.String("mode", "core", "NATS_MODE of the adapter: core or jetstream")
	requests := flag.Int("requests", 20000, "requests of the load phase")
	concurrency := flag.Int("c", 32, "concurrent clients of the load phase")
	maxLoad := flag.Duration("max-load", 30*time.Second, "stop the load phase after this long")
	idle := flag.Duration("idle", 2*time.Second, "wait before reading the idle RSS")
	flag.Parse()
	if *bin == "" {
		fmt.Fprintln(os.Stderr, "coldstart: -bin is required")
		os.Exit(2)
	}
	body, err := os.ReadFile(*payload)
	if err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(2)
	}
	b := bench{bin: *bin, natsURL: *natsURL, body: body, mode: *mode, out: os.Stdout}
	if err := b.run(*runs, *requests, *concurrency, *maxLoad, *idle); err != nil {
		fmt.Fprintln(os.Stderr, "coldstart:", err)
		os.Exit(1)
	}
}

type bench struct {
	bin, natsURL, mode string
	body               []byte
	out                io.Writer
}

// adapter is one running rgw-nats process.
type adapter struct {
	cmd    *exec.Cmd
	base   string
	start  time.Time
	exited chan error
	logs   bytes.Buffer
}

func (b *bench) launch() (*adapter, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	l.Close()
	a := &adapter{base: "http://" + addr, exited: make(chan error, 1)}
	a.cmd = exec.Command(b.bin, "serve")
	a.cmd.Env = append(os.Environ(),
		"LISTEN_ADDRESS="+addr,
		"NATS_URL="+b.natsURL,
		"NATS_MODE="+b.mode,
		"NATS_STREAM_CREATE=true",
		"LUA_SCRIPT=",
		"LOG_LEVEL=warn",
	)
	a.cmd.Stdout, a.cmd.Stderr = &a.logs, &a.logs
	a.start = time.Now()
	if err := a.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { a.exited <- a.cmd.Wait() }()
	return a, nil
}

// stop sends SIGTERM and waits for the exit.
func (a *adapter) stop() error {
	a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.exited:
		return err
	case <-time.After(60 * time.Second):
		a.cmd.Process.Kill()
		return errors.New("no exit 60 s after SIGTERM")
	}
}

var client = &http.Client{
	Timeout:   10 * time.Second,
	Transport: &http.Transport{MaxIdleConnsPerHost: 256},
}

// waitReady polls the readiness path every millisecond and returns the time
// from exec to the first 200.
func (a *adapter) waitReady() (time.Duration, error) {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := client.Get(a.base + "/health/readiness")
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(a.start), nil
			}
		}
		select {
		case err := <-a.exited:
			return 0, fmt.Errorf("exited before ready: %v\n%s", err, a.logs.String())
		case <-time.After(time.Millisecond):
		}
	}
	return 0, fmt.Errorf("not ready within 30 s\n%s", a.logs.String())
}

func (a *adapter) post(body []byte) error {
	resp, err := client.Post(a.base+"/", "application/json", bytes.NewReader(body))
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("POST: %s", resp.Status)
	}
	return nil
}

// rssKiB reads VmRSS and VmHWM (peak) of pid from /proc.
func rssKiB(pid int) (rss, hwm int, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		name, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(value), " kB"))
		switch name {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm, nil
}

func (b *bench) run(runs, requests, concurrency int, maxLoad, idle time.Duration) error {
	nc, err := nats.Connect(b.natsURL)
	if err != nil {
		return fmt.Errorf("NATS at %s: %w", b.natsURL, err)
	}
	defer nc.Close()
	msgs := make(chan *nats.Msg, 1<<16)
	sub, err := nc.ChanSubscribe("rgw.>", msgs)
	if err != nil {
		return err
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil {
		return err
	}

	var ready, firstEvent, postToEvent []time.Duration
	var lastIdleRSS int
	for i := range runs {
		a, err := b.launch()
		if err != nil {
			return err
		}
		r, err := a.waitReady()
		if err != nil {
			a.cmd.Process.Kill()
			return err
		}
		sent := time.Now()
		if err := a.post(b.withID("cold", int64(i))); err != nil {
			a.cmd.Process.Kill()
			return err
		}
		select {
		case <-msgs:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			return fmt.Errorf("run %d: no event on NATS", i)
		}
		ready = append(ready, r)
		firstEvent = append(firstEvent, time.Since(a.start))
		postToEvent = append(postToEvent, time.Since(sent))

		if i < runs-1 {
			if err := a.stop(); err != nil {
				return err
			}
			continue
		}
		// The last process stays for the memory and load measurements.
		time.Sleep(idle)
		rss, _, err := rssKiB(a.cmd.Process.Pid)
		if err != nil {
			return err
		}
		lastIdleRSS = rss
		fmt.Fprintf(b.out, "mode %s, %d cold starts against NATS at %s\n", b.mode, runs, b.natsURL)
		report(b.out, "exec -> readiness 200", ready)
		report(b.out, "exec -> first event on NATS", firstEvent)
		report(b.out, "POST -> event on NATS (first request)", postToEvent)
		fmt.Fprintf(b.out, "idle RSS after first event + %v: %.1f MiB\n", idle, float64(lastIdleRSS)/1024)
		err = b.load(a, msgs, requests, concurrency, maxLoad)
		if stopErr := a.stop(); err == nil {
			err = stopErr
		}
		return err
	}
	return nil
}

// load POSTs requests from concurrency clients (bounded by maxLoad),
// sampling RSS, and reports throughput, latency and memory.
func (b *bench) load(a *adapter, msgs chan *nats.Msg, requests, concurrency int, maxLoad time.Duration) error {
	for len(msgs) > 0 {
		<-msgs
	}
	var received atomic.Int64
	stopCount := make(chan struct{})
	go func() {
		for {
			select {
			case <-msgs:
				received.Add(1)
			case <-stopCount:
				return
			}
		}
	}()
	defer close(stopCount)

	ctx, cancel := context.WithTimeout(context.Background(), maxLoad)
	defer cancel()
	var next atomic.Int64
	var failed atomic.Int64
	lat := make([][]time.Duration, concurrency)
	peak := 0
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			if rss, _, err := rssKiB(a.cmd.Process.Pid); err == nil && rss > peak {
				peak = rss
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	cpu0, cpuErr := procstat.CPUTicks(a.cmd.Process.Pid)
	start := time.Now()
	var wg sync.WaitGroup
	for w := range concurrency {
		wg.Go(func() {
			for ctx.Err() == nil {
				n := next.Add(1)
				if n > int64(requests) {
					break
				}
				body := b.withID("load", n)
				t0 := time.Now()
				if err := a.post(body); err != nil {
					failed.Add(1)
					continue
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu1, cpuErr1 := procstat.CPUTicks(a.cmd.Process.Pid)
	cancel()
	<-sampled
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	// Give core NATS a moment to deliver the tail to our subscriber.
	for range 100 {
		if received.Load() >= int64(len(all)) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_, hwm, _ := rssKiB(a.cmd.Process.Pid)
	fmt.Fprintf(b.out, "load: %d requests (%d failed) from %d clients in %v: %.0f req/s, %d events received\n",
		len(all), failed.Load(), concurrency, elapsed.Round(time.Millisecond), float64(len(all))/elapsed.Seconds(), received.Load())
	report(b.out, "request latency under load", all)
	if cpuErr == nil && cpuErr1 == nil && len(all) > 0 {
		// The adapter process alone: HTTP server, decoding, mapping, Lua,
		// encoding and the NATS client, not the load generator or NATS.
		perReq := time.Duration(cpu1-cpu0) * (time.Second / procstat.TicksPerSecond) / time.Duration(len(all))
		fmt.Fprintf(b.out, "adapter CPU under load: %.1f µs per request (%.2f CPUs busy)\n",
			float64(perReq)/float64(time.Microsecond), float64(cpu1-cpu0)/procstat.TicksPerSecond/elapsed.Seconds())
	}
	fmt.Fprintf(b.out, "RSS under load: %.1f MiB sampled peak, %.1f MiB VmHWM\n", float64(peak)/1024, float64(hwm)/1024)
	if failed.Load() > 0 {
		return fmt.Errorf("%d requests failed", failed.Load())
	}
	return nil
}

func report(w io.Writer, name string, d []time.Duration) {
	if len(d) == 0 {
		return
	}
	s := slices.Clone(d)
	slices.Sort(s)
	q := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))] }
	fmt.Fprintf(w, "%-40s min %v  median %v  p90 %v  max %v  (n=%d)\n", name+":",
		s[0].Round(10*time.Microsecond), q(0.5).Round(10*time.Microsecond), q(0.9).Round(10*time.Microsecond), s[len(s)-1].Round(10*time.Microsecond), len(s))
}

// withID is the payload with its eventIds prefixed by what and n, so that
// every request is a new event: a repeated body is a duplicate, answered
// without publishing, and would measure the duplicate window instead.
func (b *bench) withID(what string, n int64) []byte {
	return bytes.ReplaceAll(b.body, []byte(`"eventId":"`), []byte(`"eventId":"`+what+strconv.FormatInt(n, 10)+`-`))
}
