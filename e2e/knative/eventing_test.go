package knativee2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// needEventing skips the Eventing tests on a lab without Knative Eventing.
func needEventing(t *testing.T) *klab {
	t.Helper()
	l := needLab(t)
	if l.env["KNATIVE_LAB_EVENTING"] != "1" {
		t.Skip("e2e/knative: the lab has no Knative Eventing (KNATIVE_LAB_EVENTING is not 1)")
	}
	return l
}

// receiver is an HTTP sink of the test on the lab's host address (a
// dead-letter sink, a Sequence step): it keeps every CloudEvent it gets and
// answers 202 with an empty body.
type receiver struct {
	url  string
	mu   sync.Mutex
	got  []received
	wait chan struct{}
}

type received struct {
	at     time.Time
	header http.Header
	body   []byte
}

func (r received) attr(name string) string {
	if v := r.header.Get("Ce-" + name); v != "" {
		return v
	}
	var m map[string]any
	if json.Unmarshal(r.body, &m) == nil {
		if v, ok := m[strings.ToLower(name)]; ok {
			return fmt.Sprint(v)
		}
	}
	return ""
}

func (l *klab) receiver(t *testing.T) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(l.hostIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{url: "http://" + ln.Addr().String() + "/"}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.got = append(r.got, received{at: time.Now(), header: req.Header.Clone(), body: b})
		r.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return r
}

func (r *receiver) all() []received {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]received(nil), r.got...)
}

// brokerURL is the address of the Broker rgw of ns at the broker ingress's
// ClusterIP: an address of the lab's service range, which the lab routes
// to its bridge (kubectl port-forward was seen to drop its connection in
// the middle of a test).
func (l *klab) brokerURL(t *testing.T, ns string) string {
	t.Helper()
	ip := strings.TrimSpace(l.k(t, "get", "svc", "-n", "knative-eventing", "broker-ingress", "-o", "jsonpath={.spec.clusterIP}"))
	if net.ParseIP(ip) == nil {
		t.Fatalf("broker-ingress ClusterIP %q", ip)
	}
	return "http://" + ip + "/" + ns + "/rgw"
}

// ce is a CloudEvent to put into a Broker, in binary mode.
type ce struct {
	id, source, typ, subject string
	ext                      map[string]string
	contentType              string
	data                     []byte
}

// rgwCE is an RGW notification as a CloudEvent: RGW's own (cloudevents=true:
// source and type only) or one that carries rgw-nats' extensions.
func rgwCE(id, bucket, key, eventName string, withExt bool) ce {
	e := ce{id: id, source: "ceph:s3.default." + bucket, typ: "com.amazonaws." + eventName, subject: key,
		contentType: "application/json", data: rgwBody(bucket, key, eventName, id)}
	if withExt {
		e.ext = map[string]string{"bucket": bucket, "eventname": eventName, "objectkey": key}
	}
	return e
}

func postCE(ctx context.Context, c *http.Client, url string, e ce) (int, error) {
	return postCEWith(ctx, c, url, e, nil)
}

// postCEWith is postCE with more headers (e.g. Authorization).
func postCEWith(ctx context.Context, c *http.Client, url string, e ce, h http.Header) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(e.data))
	if err != nil {
		return 0, err
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Ce-Specversion", "1.0")
	req.Header.Set("Ce-Id", e.id)
	req.Header.Set("Ce-Source", e.source)
	req.Header.Set("Ce-Type", e.typ)
	if e.subject != "" {
		req.Header.Set("Ce-Subject", e.subject)
	}
	for k, v := range e.ext {
		req.Header.Set("Ce-"+k, v)
	}
	req.Header.Set("Content-Type", e.contentType)
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}

// eventingBuild is the shipped eventing overlay with what this lab lacks
// replaced: there is no Kafka, so the KafkaSink goes and the Trigger's
// dead-letter sink is the test's receiver (the README: "without Kafka,
// point deadLetterSink elsewhere").
func eventingBuild(base string, nl *natsLab, dls *receiver) build {
	return build{base: base, secret: nl.secret(), patches: []string{
		`- patch: |-
    $patch: delete
    apiVersion: eventing.knative.dev/v1alpha1
    kind: KafkaSink
    metadata:
      name: rgw-nats-dead-letter
`,
		fmt.Sprintf(`- target:
    group: eventing.knative.dev
    kind: Trigger
    name: rgw-nats-xray-created
  patch: |-
    - op: replace
      path: /spec/delivery/deadLetterSink
      value:
        uri: %s
`, dls.url)}}
}

// waitResources waits for Knative resources to be Ready.
func (l *klab) waitResources(t *testing.T, ns string, d time.Duration, names ...string) {
	t.Helper()
	for _, n := range names {
		if out, err := l.kubectlOut("wait", "-n", ns, n, "--for=condition=Ready", fmt.Sprintf("--timeout=%ds", int(d.Seconds()))); err != nil {
			st, _ := l.kubectlOut("get", "-n", ns, n, "-o", "jsonpath={.status}")
			t.Fatalf("%s not Ready: %v %s\n%s", n, err, out, st)
		}
	}
}

// waitBound waits until the SinkBinding has put K_CE_OVERRIDES into the
// Service and the revision with it is Ready: events before that would lack
// the extensions.
func (l *klab) waitBound(t *testing.T, ns string) {
	t.Helper()
	l.waitResources(t, ns, 3*time.Minute, "sinkbinding/rgw-nats-ce-overrides")
	if !waitUntil(2*time.Minute, time.Second, func() bool {
		env, _ := l.kubectlOut("get", "-n", ns, "ksvc/rgw-nats", "-o", "jsonpath={.spec.template.spec.containers[0].env}")
		return strings.Contains(env, "K_CE_OVERRIDES")
	}) {
		t.Fatal("the SinkBinding did not inject K_CE_OVERRIDES into the Service in 2 minutes")
	}
	if !waitUntil(3*time.Minute, time.Second, func() bool {
		var s struct {
			Status struct{ LatestCreatedRevisionName, LatestReadyRevisionName string }
		}
		l.jsonOf(t, &s, "get", "-n", ns, "ksvc/rgw-nats")
		return s.Status.LatestReadyRevisionName != "" && s.Status.LatestReadyRevisionName == s.Status.LatestCreatedRevisionName
	}) {
		t.Fatal("the revision with K_CE_OVERRIDES did not become Ready")
	}
	l.waitReady(t, ns, "rgw-nats", time.Minute)
}

// poisonLua fails the event of any key under poison/: a permanent script
// error, answered 422 with DEAD_LETTER=false.
const poisonLua = `function transform(ev)
  if (ev.ext.objectkey or ""):find("^poison/") then error("poison object") end
  return ev
end
`

// TestEventing: the shipped eventing overlay behind a real Broker.
func TestEventing(t *testing.T) {
	l := needEventing(t)
	ns := l.namespace(t, "eventing")
	nl := l.startNATS(t)
	dls := l.receiver(t)
	b := eventingBuild("knative/overlays/eventing", nl, dls)
	b.config = map[string]string{"DEAD_LETTER": "false"}
	b.lua = map[string]string{"zz-poison.lua": poisonLua}
	l.apply(t, ns, b)
	l.waitResources(t, ns, 3*time.Minute, "broker/rgw")
	l.waitBound(t, ns)
	l.waitResources(t, ns, 3*time.Minute, "trigger/rgw-nats-xray-created")
	nc := nl.conn(t)
	broker := l.brokerURL(t, ns)
	c := newClient(4, 30*time.Second)
	send := func(t *testing.T, e ce) {
		t.Helper()
		for attempt := range 5 {
			code, err := postCE(context.Background(), c, broker, e)
			if err == nil && code/100 == 2 {
				return
			}
			t.Logf("broker ingress: %d %v (attempt %d)", code, err, attempt+1)
			time.Sleep(time.Second)
		}
		t.Fatalf("the broker ingress refused %s", e.id)
	}
	byKey := func() map[string]int {
		m := map[string]int{}
		for _, p := range readStream(t, nc, "RGW", 0, 0) {
			m[fmt.Sprint(p.Ext["objectkey"])]++
		}
		return m
	}
	run := randHex(3)

	t.Run("Trigger filter on bucket and eventname", func(t *testing.T) {
		match := []ce{
			rgwCE("f1-"+run, "xraylab-0001", "f/ext-put.jpeg", "ObjectCreated:Put", true),
			rgwCE("f2-"+run, "xraylab-0001", "f/rgw-ce-post.jpeg", "ObjectCreated:Post", false),
			rgwCE("f3-"+run, "xraylab-0001", "f/ext-copy.jpeg", "ObjectCreated:Copy", true),
		}
		other := []ce{
			rgwCE("f4-"+run, "other-bucket", "f/other-bucket.jpeg", "ObjectCreated:Put", true),
			rgwCE("f5-"+run, "other-bucket", "f/other-bucket-ce.jpeg", "ObjectCreated:Put", false),
			rgwCE("f6-"+run, "xraylab-0001", "f/removed.jpeg", "ObjectRemoved:Delete", true),
			rgwCE("f7-"+run, "xraylab-0001", "f/removed-ce.jpeg", "ObjectRemoved:Delete", false),
		}
		reply := rgwCE("f8-"+run, "xraylab-0001", "f/reply.jpeg", "ObjectCreated:Put", true)
		reply.typ += ".nats" // rgw-nats' own reply must not come back
		other = append(other, reply)
		for _, e := range append(append([]ce(nil), match...), other...) {
			send(t, e)
		}
		var seen map[string]int
		waitUntil(60*time.Second, time.Second, func() bool {
			seen = byKey()
			for _, e := range match {
				if seen[e.subject] == 0 {
					return false
				}
			}
			return true
		})
		time.Sleep(5 * time.Second)
		seen = byKey()
		for _, e := range match {
			if seen[e.subject] != 1 {
				t.Errorf("%s (%s, ext %v): published %d times, want once", e.subject, e.source, e.ext != nil, seen[e.subject])
			}
		}
		for _, e := range other {
			if seen[e.subject] != 0 {
				t.Errorf("%s (%s %s): published %d times, want never", e.subject, e.source, e.typ, seen[e.subject])
			}
		}
		t.Logf("matching published: %d of %d; others: none of %d", len(match), len(match), len(other))
	})

	t.Run("SinkBinding K_CE_OVERRIDES on every published event", func(t *testing.T) {
		e := rgwCE("sb-"+run, "xraylab-0001", "sb/one.jpeg", "ObjectCreated:Put", false)
		send(t, e)
		if !waitUntil(60*time.Second, time.Second, func() bool { return byKey()[e.subject] > 0 }) {
			t.Fatalf("%s was not published", e.subject)
		}
		got := readStream(t, nc, "RGW", 0, 0)
		for _, p := range got {
			if p.Ext["cephcluster"] != "ceph-a" {
				t.Errorf("%s on %s: cephcluster %v, want ceph-a", p.ID, p.Subject, p.Ext["cephcluster"])
			}
		}
		t.Logf("%d published events, each with cephcluster=ceph-a", len(got))
	})

	// Through a Broker every delivery is a CloudEvent: rgw-nats answers 415
	// only to a raw POST (TestServing checks that through the ingress); a
	// CloudEvent whose data is not JSON is published as it is.
	t.Run("400 and 422 go to the dead-letter sink once, not retried", func(t *testing.T) {
		badJSON := ce{id: "dl400-" + run, source: "ceph:s3.default.xraylab-0001", typ: "com.amazonaws.ObjectCreated:Put", subject: "dl/400.jpeg",
			ext: map[string]string{"bucket": "xraylab-0001", "eventname": "ObjectCreated:Put"}, contentType: "application/json",
			data: []byte(`{"Records":[{"eventName":`)}
		emptyRecords := badJSON
		emptyRecords.id, emptyRecords.subject, emptyRecords.data = "dl400e-"+run, "dl/400e.jpeg", []byte(`{"Records":[]}`)
		xml := badJSON
		xml.id, xml.subject, xml.contentType, xml.data = "xml-"+run, "dl/xml.jpeg", "application/xml", []byte(`<Event><Key>x</Key></Event>`)
		poison := rgwCE("dl422-"+run, "xraylab-0001", "poison/x.jpeg", "ObjectCreated:Put", true)
		want := map[string]string{badJSON.id: "400", emptyRecords.id: "400", poison.id: "422"}
		sent := time.Now()
		for _, e := range []ce{badJSON, emptyRecords, xml, poison} {
			send(t, e)
		}
		waitUntil(60*time.Second, 500*time.Millisecond, func() bool { return len(dls.all()) >= len(want) })
		// A retry would come after the Trigger's backoff (0.5 s, 1 s, 2 s,
		// ... ten times): wait for one to show.
		time.Sleep(10 * time.Second)
		count := map[string]int{}
		for _, r := range dls.all() {
			id := r.attr("id")
			if _, ok := want[id]; !ok {
				t.Errorf("dead letter of an unexpected event %s (%s)", id, r.attr("knativeerrorcode"))
				continue
			}
			count[id]++
			if got := r.attr("knativeerrorcode"); got != want[id] {
				t.Errorf("%s: knativeerrorcode %q, want %s", id, got, want[id])
			}
			t.Logf("dead letter %s: code %s after %s", id, r.attr("knativeerrorcode"), r.at.Sub(sent).Round(10*time.Millisecond))
		}
		for id := range want {
			if count[id] != 1 {
				t.Errorf("%s reached the dead-letter sink %d times, want once", id, count[id])
			}
		}
		published := map[string]int{}
		for _, p := range readStream(t, nc, "RGW", 0, 0) {
			published[p.ID]++
		}
		for id := range want {
			if published[id] != 0 || published[id+".persist-all"] != 0 {
				t.Errorf("%s was published", id)
			}
		}
		if published[xml.id] != 1 {
			t.Errorf("the CloudEvent with XML data was published %d times, want once (a CloudEvent needs no RGW data)", published[xml.id])
		}
		// One failure line per refused request: more would be retries.
		logs := l.logsOf(t, ns, "rgw-nats")
		for id, code := range want {
			n := 0
			for _, line := range strings.Split(logs, "\n") {
				if strings.Contains(line, id) {
					n++
				}
			}
			if n > 1 {
				t.Errorf("%s (%s) logged %d times: retried", id, code, n)
			}
		}
	})

	t.Run("503 while NATS is stopped: retried, delivered once NATS is back", func(t *testing.T) {
		before := len(dls.all())
		nl.stop()
		// An InMemoryChannel hands an event on synchronously: the Broker's
		// ingress answers its sender only once the Trigger's subscriber took
		// the event, retries included. So each send waits here, in parallel,
		// for as long as the Trigger may retry (10 times from 0.5 s: ~8.5 min).
		var evs []ce
		answers := make(chan string, 10)
		slow := newClient(10, 10*time.Minute)
		for i := range 10 {
			e := rgwCE(fmt.Sprintf("outage-%d-%s", i, run), "xraylab-0001", fmt.Sprintf("outage/%d.jpeg", i), "ObjectCreated:Put", true)
			evs = append(evs, e)
			go func() {
				code, err := postCE(context.Background(), slow, broker, e)
				answers <- fmt.Sprintf("%d %v", code, err)
			}()
		}
		time.Sleep(15 * time.Second)
		nl.start()
		back := time.Now()
		var seen map[string]int
		waitUntil(3*time.Minute, time.Second, func() bool {
			seen = byKey()
			for _, e := range evs {
				if seen[e.subject] == 0 {
					return false
				}
			}
			return true
		})
		delivered := time.Since(back)
		for range evs {
			if a := <-answers; a != "202 <nil>" {
				t.Errorf("the broker ingress answered %s", a)
			}
		}
		time.Sleep(5 * time.Second)
		seen = byKey()
		lost, dup := 0, 0
		for _, e := range evs {
			switch n := seen[e.subject]; {
			case n == 0:
				lost++
			case n > 1:
				dup++
			}
		}
		t.Logf("NATS stopped 15 s with 10 events sent: delivered %s after it came back; %d lost, %d duplicated", delivered.Round(time.Second), lost, dup)
		if lost+dup != 0 {
			t.Errorf("%d lost, %d duplicated: %v", lost, dup, seen)
		}
		if n := len(dls.all()) - before; n != 0 {
			t.Errorf("%d events of the outage went to the dead-letter sink", n)
		}
		t.Logf("rgw-nats' failure log lines (rate-limited) by status and reason: %v", l.failures(t, ns, "rgw-nats"))
	})
}

// TestEventingSequence: the sequence overlay (REPLY=true): the Trigger
// feeds the Sequence whose first step is rgw-nats; a second step (the
// test's receiver) gets the event as rgw-nats published it.
func TestEventingSequence(t *testing.T) {
	l := needEventing(t)
	ns := l.namespace(t, "sequence")
	nl := l.startNATS(t)
	dls := l.receiver(t)
	step := l.receiver(t)
	b := eventingBuild("knative/overlays/sequence", nl, dls)
	b.patches = append(b.patches, fmt.Sprintf(`- target:
    group: flows.knative.dev
    kind: Sequence
    name: rgw-nats-publish
  patch: |-
    - op: add
      path: /spec/steps/-
      value:
        uri: %s
`, step.url))
	l.apply(t, ns, b)
	l.waitResources(t, ns, 3*time.Minute, "broker/rgw")
	l.waitBound(t, ns)
	l.waitResources(t, ns, 3*time.Minute, "sequence/rgw-nats-publish", "trigger/rgw-nats-xray-created")
	nc := nl.conn(t)
	broker := l.brokerURL(t, ns)
	c := newClient(2, 30*time.Second)
	id := "seq-" + randHex(4)
	e := rgwCE(id, "xraylab-0001", "seq/one.jpeg", "ObjectCreated:Put", true)
	if code, err := postCE(context.Background(), c, broker, e); err != nil || code/100 != 2 {
		t.Fatalf("broker ingress: %d %v", code, err)
	}
	if !waitUntil(2*time.Minute, 500*time.Millisecond, func() bool { return len(step.all()) > 0 }) {
		t.Fatalf("the Sequence's next step received nothing; published: %d", len(readStream(t, nc, "RGW", 0, 0)))
	}
	time.Sleep(5 * time.Second)
	got := step.all()
	pub := readStream(t, nc, "RGW", 1, 10*time.Second)
	if len(got) != 1 || len(pub) != 1 {
		t.Fatalf("next step received %d events, NATS holds %d; want 1 and 1", len(got), len(pub))
	}
	r := got[0]
	if typ := r.attr("type"); typ != e.typ+".nats" {
		t.Errorf("next step got type %q, want %q (REPLY_TYPE_SUFFIX)", typ, e.typ+".nats")
	}
	if r.attr("id") != pub[0].ID {
		t.Errorf("next step got id %q, NATS holds %q", r.attr("id"), pub[0].ID)
	}
	if r.attr("cephcluster") != "ceph-a" || r.attr("bucket") != "xraylab-0001" {
		t.Errorf("next step's event lacks the published extensions: cephcluster %q bucket %q", r.attr("cephcluster"), r.attr("bucket"))
	}
	t.Logf("REPLY=true: the next step received %s (type %s) as published on %s", r.attr("id"), r.attr("type"), pub[0].Subject)
	if n := len(dls.all()); n != 0 {
		t.Errorf("%d dead letters", n)
	}
	// The reply goes back into the Broker; the Trigger's "not suffix .nats"
	// keeps it from coming round again: still one on NATS.
	time.Sleep(5 * time.Second)
	if n := len(readStream(t, nc, "RGW", 0, 0)); n != 1 {
		t.Errorf("NATS holds %d events after the reply went back into the Broker, want 1", n)
	}
}
