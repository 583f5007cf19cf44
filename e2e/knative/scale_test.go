package knativee2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// stream sends distinct RGW notifications from workers until ctx ends,
// each until acknowledged (RGW-style resends on any failure), and with
// probability resend sends an acknowledged one once more, as RGW does when
// it lost the answer. It returns the acknowledged ids.
type stream struct {
	s       *sender
	bucket  string
	key     func(seq int64) string
	resend  float64
	pause   time.Duration
	seq     atomic.Int64
	mu      sync.Mutex
	acked   map[string]bool
	resends int
}

func (st *stream) run(ctx context.Context, workers int) {
	st.acked = map[string]bool{}
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				n := st.seq.Add(1)
				id := fmt.Sprintf("%s-%d-%s", st.bucket, n, randHex(3))
				body := rgwBody(st.bucket, st.key(n), "ObjectCreated:Put", id)
				// Each delivery may take as long as a rollout or a scale-out.
				dctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				ok := st.s.deliver(dctx, body)
				if ok && rand.Float64() < st.resend {
					ok = st.s.deliver(dctx, body)
					st.mu.Lock()
					st.resends++
					st.mu.Unlock()
				}
				cancel()
				if ok {
					st.mu.Lock()
					st.acked[ceID(id)] = true
					st.mu.Unlock()
				}
				if st.pause > 0 {
					time.Sleep(st.pause)
				}
			}
		}()
	}
	wg.Wait()
}

// uploadsKV is the shipped uploads overlay on a single NATS server.
func uploadsBuild(nl *natsLab) build {
	return build{base: "knative/overlays/uploads", secret: nl.secret(),
		config: map[string]string{"LUA_RGW_TABLE_KV_REPLICAS": "1"}}
}

// TestServingBurst: a burst in JetStream mode scales the Service out to at
// least three replicas; nothing acknowledged is lost, nothing is published
// twice though some notifications are sent twice, and the KV-backed RGW
// table of uploads.lua counts every upload exactly once, resends included.
func TestServingBurst(t *testing.T) {
	l := needLab(t)
	ns := l.namespace(t, "burst")
	nl := l.startNATS(t)
	l.apply(t, ns, uploadsBuild(nl))
	svc := l.waitReady(t, ns, "rgw-nats", readyTimeout)
	nc := nl.conn(t)

	const workers = 150
	resend := 0.05 // KNATIVE_E2E_BURST_RESEND overrides it, for diagnosis
	if v := os.Getenv("KNATIVE_E2E_BURST_RESEND"); v != "" {
		fmt.Sscan(v, &resend)
	}
	st := &stream{s: l.newSender(svc.host, workers), bucket: "ke2e-burst", resend: resend,
		key: func(n int64) string { return fmt.Sprintf("k/%d", (n+1)/2) }} // every key uploaded twice
	ctx, stop := context.WithCancel(context.Background())
	var maxReady atomic.Int64
	watchDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		for ctx.Err() == nil {
			ps := l.pods(t, ns, "rgw-nats")
			if n := int64(readyPods(ps)); n > maxReady.Load() {
				maxReady.Store(n)
			}
			time.Sleep(time.Second)
		}
	}()
	start := time.Now()
	done := make(chan struct{})
	go func() { st.run(ctx, workers); close(done) }()
	// Long enough for the autoscaler's stable window to see the load; stop
	// early once three replicas served for a while.
	var reached time.Time
	for time.Since(start) < 150*time.Second {
		time.Sleep(2 * time.Second)
		if maxReady.Load() >= 3 && reached.IsZero() {
			reached = time.Now()
		}
		if !reached.IsZero() && time.Since(reached) > 20*time.Second {
			break
		}
	}
	stop()
	<-done
	<-watchDone
	elapsed := time.Since(start)
	l.figure(t, "burst: %d workers for %s -> at most %d ready replicas (%d events acknowledged, %d sent twice; %s)",
		workers, elapsed.Round(time.Second), maxReady.Load(), len(st.acked), st.resends, st.s)
	if f := l.failures(t, ns, "rgw-nats"); len(f) > 0 {
		t.Logf("rgw-nats' failure log lines (rate-limited) by status and reason: %v", f)
	}
	if maxReady.Load() < 3 {
		t.Errorf("scaled to %d ready replicas, want at least 3", maxReady.Load())
	}

	got := readStream(t, nc, "RGW", len(st.acked), time.Minute)
	time.Sleep(3 * time.Second)
	got = readStream(t, nc, "RGW", 0, 0)
	r, bad := exactlyOnce(st.acked, got)
	l.figure(t, "burst: %s", r)
	if r.lost+r.dup != 0 {
		t.Errorf("%s: %v", r, bad)
	}
	// Every notification started was delivered until acknowledged (each
	// has its own deadline, past the burst's end): the table must hold
	// exactly one count per notification, resends not counted again.
	if sent := st.seq.Load(); int64(len(st.acked)) != sent {
		t.Errorf("%d notifications sent, %d acknowledged: the table cannot be checked exactly", sent, len(st.acked))
	}
	tbl := readTable(t, nc, "rgw-uploads")
	perKey, keys := 0, 0
	for k, v := range tbl {
		if strings.HasPrefix(k, "key/"+st.bucket+"/") {
			perKey += v
			keys++
		}
	}
	total := tbl["count/"+st.bucket]
	l.figure(t, "burst: RGW table in KV after the burst: count/%s = %d, %d keys counting %d uploads, for %d notifications acknowledged (%d sent twice)",
		st.bucket, total, keys, perKey, len(st.acked), st.resends)
	if total != len(st.acked) || perKey != len(st.acked) || keys != (len(st.acked)+1)/2 {
		t.Errorf("the KV-backed upload count is not exact: count %d and %d per-key counts over %d keys, want %d and %d over %d",
			total, perKey, keys, len(st.acked), len(st.acked), (len(st.acked)+1)/2)
	}
	// What the scripts saw: each published event carries the count its
	// script got. A resend whose first run stored its increments but was
	// not published gets the first run's count while that is still the
	// key's latest revision, else the key's current count (the bucket keeps
	// one revision): that count is then carried twice, and the first
	// run's never. Counted, not asserted; per key, two firsts would be a
	// double count.
	counts := map[int]int{}
	firsts := map[string]int{}
	var first, again int
	for _, p := range got {
		n, _ := strconv.Atoi(fmt.Sprint(p.Ext["uploads"]))
		counts[n]++
		switch {
		case strings.HasSuffix(p.Subject, ".first"):
			first++
			firsts[fmt.Sprint(p.Ext["objectkey"])]++
		case strings.HasSuffix(p.Subject, ".again"):
			again++
		}
	}
	twice := 0
	for n, c := range counts {
		if n < 1 || n > total {
			t.Errorf("a published event carries the count %d, outside 1..%d", n, total)
		}
		twice += c - 1
	}
	l.figure(t, "burst: %d published events carry %d distinct counts of 1..%d (%d carry a count another carries: resends after a failed first run); %d first uploads, %d again",
		len(got), len(counts), total, twice, first, again)
	for k, n := range firsts {
		if n > 1 {
			t.Errorf("key %s routed as a first upload %d times", k, n)
		}
	}
	if first+again != len(got) {
		t.Errorf("%d first and %d again of %d", first, again, len(got))
	}
}

// readTable reads every number of the RGW table in KV bucket (values are
// stored as i:<n>).
func readTable(t *testing.T, nc *nats.Conn, bucket string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bucket)
	if err != nil {
		t.Fatalf("KV bucket %s: %v", bucket, err)
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatalf("KV bucket %s keys: %v", bucket, err)
	}
	out := map[string]int{}
	for k := range lister.Keys() {
		e, err := kv.Get(ctx, k)
		if err != nil {
			t.Fatalf("KV %s %s: %v", bucket, k, err)
		}
		n, err := strconv.Atoi(strings.TrimPrefix(string(e.Value()), "i:"))
		if err != nil {
			t.Fatalf("KV %s %s holds %q, not a count", bucket, k, e.Value())
		}
		out[k] = n
	}
	return out
}

// TestServingRollout: a new revision (an environment variable changed)
// rolls out while a stream of notifications flows: nothing acknowledged is
// lost, nothing is published twice.
func TestServingRollout(t *testing.T) {
	l := needLab(t)
	ns := l.namespace(t, "rollout")
	nl := l.startNATS(t)
	l.apply(t, ns, build{base: "knative/base", secret: nl.secret()})
	svc := l.waitReady(t, ns, "rgw-nats", readyTimeout)
	nc := nl.conn(t)
	first := l.revision(t, ns)

	st := &stream{s: l.newSender(svc.host, 8), bucket: "ke2e-rollout", pause: 20 * time.Millisecond,
		key: func(n int64) string { return fmt.Sprintf("r/%d", n) }}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { st.run(ctx, 8); close(done) }()
	time.Sleep(10 * time.Second)

	patched := time.Now()
	second := l.patchRevision(t, ns,
		`[{"op":"add","path":"/spec/template/spec/containers/0/env/-","value":{"name":"RETRY_AFTER","value":"2"}}]`)
	readyAt := time.Since(patched)
	// Until the route sends everything to the new revision, and then until
	// the old revision's pods are gone (drained and stopped while the stream
	// goes on); its last pod may stay for the retention period (5m).
	if !waitUntil(2*time.Minute, time.Second, func() bool {
		tr := l.k(t, "get", "-n", ns, "ksvc/rgw-nats", "-o", `jsonpath={range .status.traffic[*]}{.revisionName}={.percent} {end}`)
		return strings.TrimSpace(tr) == second+"=100"
	}) {
		t.Errorf("the route does not send 100%% to %s", second)
	}
	allNew := time.Since(patched)
	if !waitUntil(6*time.Minute, time.Second, func() bool {
		for _, p := range l.pods(t, ns, "rgw-nats") {
			if p.Revision == first {
				return false
			}
		}
		return true
	}) {
		t.Errorf("revision %s still has pods 6 minutes after the rollout", first)
	}
	oldGone := time.Since(patched)
	time.Sleep(10 * time.Second)
	stop()
	<-done

	got := readStream(t, nc, "RGW", len(st.acked), time.Minute)
	time.Sleep(3 * time.Second)
	got = readStream(t, nc, "RGW", 0, 0)
	r, bad := exactlyOnce(st.acked, got)
	l.figure(t, "rollout %s -> %s during a stream: new revision Ready %s after the change, all traffic on it after %s, old pods gone after %s; %s; %s",
		first, second, readyAt.Round(time.Second), allNew.Round(time.Second), oldGone.Round(time.Second), r, st.s)
	if r.lost+r.dup != 0 {
		t.Errorf("%s: %v", r, bad)
	}
}

// TestServingThroughput: RGW-style POSTs through the ingress and the
// activator with RGW_CLOSE_CONNECTIONS on and off (both Services at one
// warm pod), alternated twice. RGW never talks to the pod behind Knative:
// the figures decide what the default should be there.
func TestServingThroughput(t *testing.T) {
	l := needLab(t)
	nl := l.startNATS(t)
	hosts := map[string]string{}
	for _, close := range []string{"true", "false"} {
		ns := l.namespace(t, "tput-"+close)
		l.apply(t, ns, build{base: "knative/base", secret: nl.secret(), config: map[string]string{"RGW_CLOSE_CONNECTIONS": close}})
		hosts[close] = l.waitReady(t, ns, "rgw-nats", readyTimeout).host
	}
	const clients, window = 16, 15 * time.Second
	rates := map[string][]float64{}
	for round := range 2 {
		for _, close := range []string{"true", "false"} {
			st := &stream{s: l.newSender(hosts[close], clients), bucket: fmt.Sprintf("ke2e-tput-%s-%d", close, round),
				key: func(n int64) string { return fmt.Sprintf("t/%d", n) }}
			// Warm up (and out of zero) first.
			st.s.deliver(ctxFor(t, 2*time.Minute), rgwBody("ke2e-warm", "w", "ObjectCreated:Put", "warm-"+randHex(6)))
			ctx, cancel := context.WithTimeout(context.Background(), window)
			start := time.Now()
			st.run(ctx, clients)
			cancel()
			rate := float64(len(st.acked)) / time.Since(start).Seconds()
			rates[close] = append(rates[close], rate)
			t.Logf("RGW_CLOSE_CONNECTIONS=%s round %d: %.0f events/s (%s)", close, round+1, rate, st.s)
			if st.s.answers[http.StatusAccepted] == 0 {
				t.Errorf("no 202 at all: %s", st.s)
			}
		}
	}
	l.figure(t, "throughput through ingress+activator, %d keep-alive clients, %s windows: RGW_CLOSE_CONNECTIONS=true %.0f/%.0f events/s, false %.0f/%.0f events/s",
		clients, window, rates["true"][0], rates["true"][1], rates["false"][0], rates["false"][1])
}
