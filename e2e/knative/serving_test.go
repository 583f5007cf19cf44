package knativee2e

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// minTimeout is what a full run needs: each test waits for Knative
// (readiness, scale to zero, rollouts) and for RGW's persistent queues.
const minTimeout = 45 * time.Minute

func TestMain(m *testing.M) {
	flag.Parse()
	if f := flag.Lookup("test.timeout"); os.Getenv("KNATIVE_LAB") != "" && f != nil {
		if d, err := time.ParseDuration(f.Value.String()); err == nil && d > 0 && d < minTimeout {
			fmt.Fprintf(os.Stderr, "e2e/knative: -timeout %s is too short for the lab tests: run with -timeout 60m\n", d)
			os.Exit(2)
		}
	}
	code := m.Run()
	stopCeph()
	os.Exit(code)
}

// readyTimeout covers a cold pull of the image and a first start on a
// loaded two-core node.
const readyTimeout = 4 * time.Minute

// serviceSpec is the part of the Service and its pods the tests look at.
type podSpec struct {
	Spec struct {
		TerminationGracePeriodSeconds int
		Containers                    []struct {
			Name           string
			ReadinessProbe *struct {
				HTTPGet       *struct{ Path string }
				PeriodSeconds int
			}
			LivenessProbe *struct {
				HTTPGet          *struct{ Path string }
				PeriodSeconds    int
				FailureThreshold int
			}
			Lifecycle *struct {
				PreStop *struct {
					HTTPGet *struct {
						Path string
						Port any
					}
				}
			}
		}
	}
}

// TestServing: the shipped knative/base becomes Ready; one RGW POST
// through the Service's URL is published once, and its resend is not
// published again; the pod has the probes and grace period the README
// promises.
func TestServing(t *testing.T) {
	l := needLab(t)
	ns := l.namespace(t, "serving")
	nl := l.startNATS(t)
	l.apply(t, ns, build{base: "knative/base", secret: nl.secret()})
	svc := l.waitReady(t, ns, "rgw-nats", readyTimeout)
	nc := nl.conn(t)

	c := newClient(4, 60*time.Second)
	id := "ke2e-serving-" + randHex(6)
	body := rgwBody("ke2e-serving", "hello.txt", "ObjectCreated:Put", id)
	code, answer, err := l.post(context.Background(), c, svc.host, body, nil)
	if err != nil || code != http.StatusAccepted {
		t.Fatalf("POST through the ingress: %d %q %v", code, answer, err)
	}
	got := readStream(t, nc, "RGW", 1, 10*time.Second)
	// The same notification again, as RGW resends one whose answer it lost.
	if code, answer, err = l.post(context.Background(), c, svc.host, body, nil); err != nil || code/100 != 2 {
		t.Fatalf("resend: %d %q %v", code, answer, err)
	}
	time.Sleep(3 * time.Second)
	got = readStream(t, nc, "RGW", 0, 0)
	r, bad := exactlyOnce(map[string]bool{ceID(id): true}, got)
	t.Logf("one POST and its resend: %s", r)
	if r.lost+r.dup+r.extra != 0 || len(got) != 1 {
		t.Fatalf("%s: %v", r, bad)
	}
	if got[0].Subject != "rgw.ke2e-serving.created" {
		t.Errorf("subject %s, want rgw.ke2e-serving.created (route.lua)", got[0].Subject)
	}

	// Bad input through Knative, as RGW would send it: with the dead letter
	// on (the default) a raw POST that cannot be a notification is answered
	// 202 and kept on rgwnats.deadletter.<bucket>, never published as an
	// event.
	xml := http.Header{"Content-Type": {"application/xml"}}
	if code, answer, err = l.post(context.Background(), c, svc.host, []byte("<Event/>"), xml); err != nil || code != http.StatusAccepted {
		t.Errorf("raw XML POST: %d %q %v, want 202 and a dead letter", code, answer, err)
	}
	if code, answer, err = l.post(context.Background(), c, svc.host, []byte(`{"Records":[`), nil); err != nil || code != http.StatusAccepted {
		t.Errorf("truncated JSON POST: %d %q %v, want 202 and a dead letter", code, answer, err)
	}
	var letters int
	for _, p := range readStream(t, nc, "RGW", 3, 10*time.Second) {
		switch {
		case strings.HasPrefix(p.Subject, "rgwnats.deadletter."):
			letters++
		case p.ID != ceID(id):
			t.Errorf("published %s on %s", p.ID, p.Subject)
		}
	}
	if letters != 2 {
		t.Errorf("%d dead letters for the two bad POSTs, want 2", letters)
	}

	// What the README says about probes and the grace period, on the pod
	// Knative made.
	var pods struct{ Items []podSpec }
	l.jsonOf(t, &pods, "get", "pods", "-n", ns, "-l", "serving.knative.dev/service=rgw-nats")
	if len(pods.Items) == 0 {
		t.Fatal("no pod")
	}
	p := pods.Items[0]
	if p.Spec.TerminationGracePeriodSeconds != 60 {
		t.Errorf("terminationGracePeriodSeconds %d, want timeoutSeconds (60)", p.Spec.TerminationGracePeriodSeconds)
	}
	var user, queue bool
	for _, ctr := range p.Spec.Containers {
		switch ctr.Name {
		case "rgw-nats":
			user = true
			// Knative moves the user container's readiness probe into the
			// queue-proxy, which probes aggressively during a cold start.
			if ctr.LivenessProbe == nil || ctr.LivenessProbe.HTTPGet == nil || ctr.LivenessProbe.HTTPGet.Path != "/health/liveness" {
				t.Errorf("liveness probe %+v", ctr.LivenessProbe)
			}
			if ctr.Lifecycle == nil || ctr.Lifecycle.PreStop == nil {
				t.Errorf("no preStop hook: the queue-proxy cannot drain before SIGTERM")
			}
		case "queue-proxy":
			queue = true
		}
	}
	if !user || !queue {
		t.Errorf("containers: user %v, queue-proxy %v", user, queue)
	}
	// Knative hands the user container's readiness probe to the
	// queue-proxy (SERVING_READINESS_PROBE), which probes it itself.
	if raw := l.k(t, "get", "pods", "-n", ns, "-l", "serving.knative.dev/service=rgw-nats", "-o", "json"); !strings.Contains(raw, "/health/readiness") {
		t.Errorf("the readiness path /health/readiness is nowhere in the pod")
	}
}

// TestServingProbesAndDrain: a NATS outage makes the pod unready but never
// restarts it (liveness does not depend on NATS); a pod deleted while
// requests flow drains (queue-proxy first, then rgw-nats on SIGTERM) and
// exits on its own within timeoutSeconds, losing nothing.
func TestServingProbesAndDrain(t *testing.T) {
	l := needLab(t)
	ns := l.namespace(t, "drain")
	nl := l.startNATS(t)
	l.apply(t, ns, build{base: "knative/base", secret: nl.secret()})
	svc := l.waitReady(t, ns, "rgw-nats", readyTimeout)
	nc := nl.conn(t)
	s := l.newSender(svc.host, 8)
	if !s.deliver(ctxFor(t, time.Minute), rgwBody("ke2e-drain", "warm.txt", "ObjectCreated:Put", "warm-"+randHex(6))) {
		t.Fatalf("first POST: %s", s)
	}

	t.Run("NATS outage: unready, not restarted", func(t *testing.T) {
		ps := l.pods(t, ns, "rgw-nats")
		if readyPods(ps) != 1 {
			t.Fatalf("pods: %+v", ps)
		}
		nl.stop()
		down := time.Now()
		if !waitUntil(60*time.Second, time.Second, func() bool { return readyPods(l.pods(t, ns, "rgw-nats")) == 0 }) {
			nl.start()
			t.Fatalf("the pod stayed ready for 60 s without NATS")
		}
		t.Logf("unready %s after NATS stopped", time.Since(down).Round(time.Second))
		// Three liveness periods of 10 s and a margin.
		time.Sleep(40*time.Second - time.Since(down))
		nl.start()
		up := time.Now()
		if !waitUntil(90*time.Second, time.Second, func() bool { return readyPods(l.pods(t, ns, "rgw-nats")) == 1 }) {
			t.Fatalf("not ready again 90 s after NATS came back: %+v", l.pods(t, ns, "rgw-nats"))
		}
		t.Logf("ready again %s after NATS came back", time.Since(up).Round(time.Second))
		for _, p := range l.pods(t, ns, "rgw-nats") {
			if p.Restarts != 0 {
				t.Errorf("pod %s: rgw-nats restarted %d times during a NATS outage", p.Name, p.Restarts)
			}
		}
	})

	t.Run("drain on SIGTERM", func(t *testing.T) {
		ps := l.pods(t, ns, "rgw-nats")
		if len(ps) == 0 {
			t.Fatal("no pod")
		}
		pod := ps[0].Name
		// Follow the container's log to its end: the shutdown lines and
		// when they came.
		logs := exec.Command(l.kubectl, "logs", "-f", "-n", ns, pod, "-c", "rgw-nats", "--timestamps")
		logs.Env = l.cmd().Env
		out, _ := logs.StdoutPipe()
		if err := logs.Start(); err != nil {
			t.Fatal(err)
		}
		var lines []string
		var lmu sync.Mutex
		logDone := make(chan struct{})
		go func() {
			defer close(logDone)
			sc := bufio.NewScanner(out)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				lmu.Lock()
				lines = append(lines, sc.Text())
				lmu.Unlock()
			}
		}()

		ctx, stop := context.WithCancel(context.Background())
		acked := map[string]bool{}
		var amu sync.Mutex
		var n atomic.Int64
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					id := fmt.Sprintf("drain-%d-%d-%s", w, i, randHex(3))
					if s.deliver(context.Background(), rgwBody("ke2e-drain", fmt.Sprintf("k%d-%d", w, i), "ObjectCreated:Put", id)) {
						amu.Lock()
						acked[ceID(id)] = true
						amu.Unlock()
					}
					n.Add(1)
					time.Sleep(50 * time.Millisecond)
				}
			}()
		}
		time.Sleep(3 * time.Second)
		deleted := time.Now()
		go l.kubectlOut("delete", "pod", "-n", ns, pod, "--wait=false")
		select {
		case <-logDone:
		case <-time.After(120 * time.Second):
			t.Errorf("the pod's container still runs 120 s after its deletion")
			logs.Process.Kill()
		}
		gone := time.Since(deleted)
		logs.Wait()
		time.Sleep(5 * time.Second) // and the stream goes on against the new pod
		stop()
		wg.Wait()
		lmu.Lock()
		tail := lines[max(0, len(lines)-5):]
		var shutting, stopped time.Time
		for _, line := range lines {
			ts, msg, _ := strings.Cut(line, " ")
			at, _ := time.Parse(time.RFC3339Nano, ts)
			if strings.Contains(msg, "shutting down") {
				shutting = at
			}
			if strings.Contains(msg, "rgw-nats stopped") {
				stopped = at
			}
		}
		lmu.Unlock()
		t.Logf("deleted the pod with %d POSTs under way: its rgw-nats log ended %s later; %s", n.Load(), gone.Round(100*time.Millisecond), s)
		if shutting.IsZero() || stopped.IsZero() {
			t.Fatalf("no clean shutdown in the container's log (SIGKILL after the grace period?); last lines:\n%s", strings.Join(tail, "\n"))
		}
		t.Logf("SIGTERM reached rgw-nats %s after the deletion (the queue-proxy's drain), it stopped %s later",
			shutting.Sub(deleted).Round(100*time.Millisecond), stopped.Sub(shutting).Round(time.Millisecond))
		if d := stopped.Sub(deleted); d > 60*time.Second {
			t.Errorf("stopped %s after the deletion: beyond timeoutSeconds (60 s)", d)
		}
		amu.Lock()
		defer amu.Unlock()
		got := readStream(t, nc, "RGW", len(acked)+1, 30*time.Second)
		acked2 := map[string]bool{}
		for id := range acked {
			acked2[id] = true
		}
		for _, p := range got {
			if strings.HasPrefix(p.ID, "warm-") {
				acked2[p.ID] = true
			}
		}
		r, bad := exactlyOnce(acked2, got)
		t.Logf("stream across the pod's deletion: %s", r)
		if r.lost+r.dup+r.extra != 0 {
			t.Errorf("%s: %v", r, bad)
		}
	})
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// retentionZero is a test-only patch: the shipped Service keeps its last
// pod for 5 minutes (scale-to-zero-pod-retention-period), which ten cold
// starts cannot wait for.
const retentionZero = `- target:
    group: serving.knative.dev
    kind: Service
    name: rgw-nats
  patch: |-
    - op: replace
      path: /spec/template/metadata/annotations/autoscaling.knative.dev~1scale-to-zero-pod-retention-period
      value: "0s"
`

// shortScaleDown shortens the autoscaler's windows (config-autoscaler) so
// that an idle Service reaches zero within seconds.
func shortScaleDown(t *testing.T, l *klab) {
	l.autoscaler(t, map[string]string{"stable-window": "6s", "scale-to-zero-grace-period": "5s"})
}

// waitZero waits until the Service has no pod left that could answer.
func (l *klab) waitZero(t *testing.T, ns string, d time.Duration) {
	t.Helper()
	if !waitUntil(d, 500*time.Millisecond, func() bool {
		for _, p := range l.pods(t, ns, "rgw-nats") {
			if !p.Terminating {
				return false
			}
		}
		return true
	}) {
		t.Fatalf("not at zero after %s: %+v", d, l.pods(t, ns, "rgw-nats"))
	}
}

// TestServingScaleToZero: with the autoscaler's windows shortened, the
// Service goes to zero; a real RGW persistent topic pushes while it is at
// zero and every event arrives exactly once; ten cold starts through the
// activator are timed beside ten of the bare process.
func TestServingScaleToZero(t *testing.T) {
	l := needLab(t)
	bareBin := make(chan string, 1)
	go func() { bareBin <- buildBare(t) }()
	cephReady := make(chan *ceph, 1)
	go func() {
		cephOnce.Do(func() { theCeph, cephErr = startCeph() })
		cephReady <- theCeph
	}()
	shortScaleDown(t, l)
	ns := l.namespace(t, "zero")
	nl := l.startNATS(t)
	l.apply(t, ns, build{base: "knative/base", secret: nl.secret(), patches: []string{retentionZero}})
	svc := l.waitReady(t, ns, "rgw-nats", readyTimeout)
	nc := nl.conn(t)
	c := newClient(1, 120*time.Second)
	acked := map[string]bool{}

	// A cold start is one where the POST made Knative start a pod: a
	// request the activator could still hand to a pod that is draining (the
	// queue-proxy serves for 30 s after its scale-down) is counted apart.
	var cold []time.Duration
	warm := 0
	for i := 0; len(cold) < 10 && i < 20; i++ {
		l.waitZero(t, ns, 3*time.Minute)
		id := fmt.Sprintf("cold-%d-%s", i, randHex(4))
		start := time.Now()
		code, answer, err := l.post(context.Background(), c, svc.host, rgwBody("ke2e-zero", fmt.Sprintf("cold-%d.txt", i), "ObjectCreated:Put", id), nil)
		d := time.Since(start)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("cold start %d: %d %q %v", i, code, answer, err)
		}
		acked[ceID(id)] = true
		started := false
		for _, p := range l.pods(t, ns, "rgw-nats") {
			started = started || !p.Terminating
		}
		if started {
			cold = append(cold, d)
		} else {
			warm++
			t.Logf("request %d answered in %s by a draining pod, no pod started: not a cold start", i, d.Round(time.Millisecond))
		}
		c.CloseIdleConnections()
	}
	if len(cold) < 10 {
		t.Fatalf("only %d cold starts in %d tries", len(cold), len(cold)+warm)
	}
	slices.Sort(cold)
	bare := bareColdStarts(t, <-bareBin, nl, 10)
	slices.Sort(bare)
	l.figure(t, "cold start, POST at zero -> 202 through ingress+activator: p50 %s p95 %s (n=%d, min %s, max %s; %d more answered by a draining pod)",
		percentile(cold, .5).Round(time.Millisecond), percentile(cold, .95).Round(time.Millisecond), len(cold),
		cold[0].Round(time.Millisecond), cold[len(cold)-1].Round(time.Millisecond), warm)
	l.figure(t, "cold start, bare process exec -> 202 on 127.0.0.1: p50 %s p95 %s (n=%d)",
		percentile(bare, .5).Round(time.Millisecond), percentile(bare, .95).Round(time.Millisecond), len(bare))

	// RGW pushes while the Service is at zero.
	cph := <-cephReady
	if cph == nil {
		t.Fatalf("Pacific Ceph lab: %v", cephErr)
	}
	fwd := l.forwarder(t, l.ingress, svc.host)
	bucket := "ke2e-zero-" + randHex(3)
	cph.persistentTopic(t, "ke2e-zero-"+randHex(3), "http://"+fwd+"/", bucket)
	// Truly at zero: no pod left, not even one still draining (the
	// queue-proxy serves for 30 s after a scale-down).
	if !waitUntil(3*time.Minute, time.Second, func() bool { return len(l.pods(t, ns, "rgw-nats")) == 0 }) {
		t.Fatalf("pods left 3 minutes after scaling to zero: %+v", l.pods(t, ns, "rgw-nats"))
	}
	const uploads = 10
	start := time.Now()
	for i := range uploads {
		cph.put(t, bucket, fmt.Sprintf("at-zero/%02d.txt", i))
	}
	t.Logf("%d uploads made in %s", uploads, time.Since(start).Round(100*time.Millisecond))
	var fromRGW []published
	waitUntil(firstPersistent+time.Minute, time.Second, func() bool {
		fromRGW = fromRGW[:0]
		for _, p := range readStream(t, nc, "RGW", 0, 0) {
			if p.Ext["bucket"] == bucket {
				fromRGW = append(fromRGW, p)
			}
		}
		return len(fromRGW) >= uploads
	})
	l.figure(t, "RGW persistent topic pushing at zero: %d of %d uploads on NATS %s after the first upload", len(fromRGW), uploads, time.Since(start).Round(time.Second))
	time.Sleep(5 * time.Second) // time for a duplicate to show
	keys := map[string]int{}
	all := readStream(t, nc, "RGW", 0, 0)
	for _, p := range all {
		if p.Ext["bucket"] == bucket {
			keys[fmt.Sprint(p.Ext["objectkey"])]++
		}
	}
	for i := range uploads {
		k := fmt.Sprintf("at-zero/%02d.txt", i)
		if keys[k] != 1 {
			t.Errorf("%s published %d times, want exactly once", k, keys[k])
		}
	}
	if len(keys) != uploads {
		t.Errorf("keys published: %v", keys)
	}
	// The cold starts' own events too.
	var own []published
	for _, p := range all {
		if p.Ext["bucket"] == "ke2e-zero" {
			own = append(own, p)
		}
	}
	if r, bad := exactlyOnce(acked, own); r.lost+r.dup+r.extra != 0 {
		t.Errorf("cold-start events: %s %v", r, bad)
	}
}

// buildBare builds the binary as it ships (scripts/build.sh); "" when that
// failed (reported).
func buildBare(t *testing.T) string {
	bin := filepath.Join(t.TempDir(), "rgw-nats")
	if out, err := exec.Command(filepath.Join(repoRoot, "scripts/build.sh"), bin).CombinedOutput(); err != nil {
		t.Errorf("scripts/build.sh: %v\n%s", err, out)
		return ""
	}
	return bin
}

// bareColdStarts times the shipped configuration as a plain process: exec
// until a POST is answered 202, against the same NATS server.
func bareColdStarts(t *testing.T, bin string, nl *natsLab, runs int) []time.Duration {
	t.Helper()
	if bin == "" {
		t.FailNow()
	}
	env := []string{"PATH=" + os.Getenv("PATH"), "LUA_SCRIPT=" + mustAbs(filepath.Join(repoRoot, "knative/config/lua"))}
	cfg, err := os.ReadFile(filepath.Join(repoRoot, "knative/config/config.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(cfg), "\n") {
		if strings.Contains(line, "=") && !strings.HasPrefix(line, "#") {
			env = append(env, line)
		}
	}
	for k, v := range nl.secret() {
		env = append(env, k+"="+v)
	}
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	var out []time.Duration
	for i := range runs {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		addr := ln.Addr().String()
		ln.Close()
		cmd := exec.Command(bin)
		cmd.Env = append(env, "LISTEN_ADDRESS="+addr)
		var logs strings.Builder
		cmd.Stderr = &logs
		body := rgwBody("ke2e-bare", "bare.txt", "ObjectCreated:Put", fmt.Sprintf("bare-%d-%s", i, randHex(4)))
		start := time.Now()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ok := waitUntil(20*time.Second, 2*time.Millisecond, func() bool {
			resp, err := c.Post("http://"+addr+"/", "application/json", strings.NewReader(string(body)))
			if err != nil {
				return false
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode == http.StatusAccepted
		})
		d := time.Since(start)
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if !ok {
			t.Fatalf("bare process never answered 202:\n%s", logs.String())
		}
		out = append(out, d)
	}
	return out
}
