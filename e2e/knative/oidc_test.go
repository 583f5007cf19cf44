package knativee2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
)

// oidcSupported says whether the work tree the image is built from has
// OIDC sink authentication (AUTH_OIDC_ISSUER in the service's settings).
func oidcSupported() bool {
	b, err := os.ReadFile(filepath.Join(repoRoot, "function/config.go"))
	return err == nil && bytes.Contains(b, []byte(`"AUTH_OIDC_ISSUER"`))
}

// eventingOIDC turns Eventing's authentication-oidc on for the test with
// the lab's own switch (knative-lab.sh oidc DIR on|off) and off again when
// the test ends, unless the lab had it on already. The switch's off also
// removes the EventPolicies Brokers made while it was on: Eventing 1.21
// leaves them, not Ready, and their Brokers' channels stop working.
func (l *klab) eventingOIDC(t *testing.T) {
	t.Helper()
	var cm struct{ Data map[string]string }
	l.jsonOf(t, &cm, "get", "configmap", "-n", "knative-eventing", "config-features")
	if cm.Data["authentication-oidc"] == "enabled" {
		return
	}
	set := func(v string) error {
		out, err := exec.Command(labScript(), "oidc", l.dir, v).CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s oidc %s %s: %v\n%s", labScript(), l.dir, v, err, tailStr(string(out), 2000))
		}
		return nil
	}
	if err := set("on"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := set("off"); err != nil {
			t.Errorf("turning authentication-oidc off again: %v", err)
		}
	})
}

// TestEventingOIDC: the shipped eventing-oidc overlay with Eventing's
// authentication-oidc on. The Broker's deliveries carry a token the API
// server issued to the Trigger's service account for rgw-nats' audience and
// are accepted (published once, nothing dead-lettered); a POST without a
// token, or with a token for another audience, is refused with 401 and a
// Bearer challenge saying why; a token for the audience from a service
// account of another namespace gets 403 (the overlay's allowed subjects,
// system:serviceaccount:{namespace}:*, are Knative's allow-same-namespace).
func TestEventingOIDC(t *testing.T) {
	l := needEventing(t)
	if !oidcSupported() {
		t.Skip("e2e/knative: this work tree's rgw-nats has no OIDC sink authentication (no AUTH_OIDC_ISSUER in function/config.go)")
	}
	l.eventingOIDC(t)
	var disc struct{ Issuer string }
	if err := json.Unmarshal([]byte(l.k(t, "get", "--raw", "/.well-known/openid-configuration")), &disc); err != nil || disc.Issuer == "" {
		t.Fatalf("the API server's OIDC discovery: %v %+v", err, disc)
	}
	ns := l.namespace(t, "oidc")
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("rgw-nats' log:\n%s", tailStr(l.logsOf(t, ns, "rgw-nats"), 6000))
		}
	})
	nl := l.startNATS(t)
	dls := l.receiver(t)
	// The form Knative gives its own resources' audiences, with this
	// namespace in place of the overlay's "default".
	audience := "serving.knative.dev/service/" + ns + "/rgw-nats"
	triggerSA := "rgw-nats-xray-created-oidc-eventing.knative.dev-trigger"
	b := eventingBuild("knative/overlays/eventing-oidc", nl, dls)
	// AUTH_OIDC_SUBJECTS as shipped: system:serviceaccount:{namespace}:*,
	// the service accounts of the pod's own namespace.
	b.config = map[string]string{"AUTH_OIDC_AUDIENCE": audience}
	// The overlay's issuer is what kubeadm and kind call theirs; a cluster
	// whose API server was told otherwise needs it set, as a user would.
	if disc.Issuer != "https://kubernetes.default.svc.cluster.local" {
		t.Logf("the lab's issuer is %s: set in AUTH_OIDC_ISSUER", disc.Issuer)
		b.config["AUTH_OIDC_ISSUER"] = disc.Issuer
	}
	// The overlay copies its AUTH_OIDC_AUDIENCE into the Trigger before
	// this overlay merges its own: name the audience there too.
	b.patches = append(b.patches, fmt.Sprintf(`- target:
    group: eventing.knative.dev
    kind: Trigger
    name: rgw-nats-xray-created
  patch: |-
    - op: add
      path: /spec/subscriber/audience
      value: %s
`, audience))
	l.apply(t, ns, b)
	l.waitResources(t, ns, 3*time.Minute, "broker/rgw")
	l.waitBound(t, ns)
	l.waitResources(t, ns, 3*time.Minute, "trigger/rgw-nats-xray-created")
	svc := l.waitReady(t, ns, "rgw-nats", time.Minute)
	nc := nl.conn(t)

	// What Knative made of it: the Trigger sends as its own service account,
	// for the audience it names; the Broker has an audience of its own.
	var trig struct {
		Status struct {
			Auth               struct{ ServiceAccountName string }
			SubscriberAudience string
		}
	}
	l.jsonOf(t, &trig, "get", "-n", ns, "trigger/rgw-nats-xray-created")
	if trig.Status.Auth.ServiceAccountName != triggerSA || trig.Status.SubscriberAudience != audience {
		t.Fatalf("Trigger status: service account %q, audience %q; want %q, %q",
			trig.Status.Auth.ServiceAccountName, trig.Status.SubscriberAudience, triggerSA, audience)
	}
	var brokerAudience string
	waitUntil(time.Minute, time.Second, func() bool {
		brokerAudience = strings.TrimSpace(l.k(t, "get", "-n", ns, "broker/rgw", "-o", "jsonpath={.status.address.audience}"))
		return brokerAudience != ""
	})
	if brokerAudience == "" {
		t.Fatal("the Broker has no status.address.audience with authentication-oidc on")
	}

	// The pod reached the issuer (discovery at kubernetes.default.svc with
	// its service-account CA and token, keys at the jwks_uri it names).
	var took []string
	waitUntil(30*time.Second, time.Second, func() bool {
		took = took[:0]
		for _, line := range strings.Split(l.logsOf(t, ns, "rgw-nats"), "\n") {
			if i := strings.Index(line, "{"); i >= 0 && strings.Contains(line, "OIDC issuer keys fetched") {
				var m struct{ Took string }
				json.Unmarshal([]byte(line[i:]), &m)
				took = append(took, m.Took)
			}
		}
		return len(took) > 0
	})
	if len(took) == 0 {
		t.Fatal("no pod of rgw-nats logged \"OIDC issuer keys fetched\" within 30 s of being Ready")
	}
	l.figure(t, "oidc: the issuer's discovery and keys fetched from the pod in %s after start (per pod)", strings.Join(took, ", "))

	c := newClient(2, 60*time.Second)
	body := rgwBody("xraylab-0001", "oidc/direct.jpeg", "ObjectCreated:Put", "oidc-direct-"+randHex(4))
	// try POSTs an RGW notification straight to rgw-nats through the lab's
	// ingress and wants the answer code and a WWW-Authenticate containing
	// each of challenge.
	try := func(name, token string, want int, challenge ...string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, l.ingress.String()+"/", bytes.NewReader(body))
		req.Host = svc.host
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
		resp.Body.Close()
		got := resp.Header.Get("WWW-Authenticate")
		t.Logf("%s: %d, WWW-Authenticate: %s", name, resp.StatusCode, got)
		if resp.StatusCode != want {
			t.Errorf("%s: %d %q, want %d", name, resp.StatusCode, strings.TrimSpace(string(msg)), want)
		}
		for _, w := range challenge {
			if !strings.Contains(got, w) {
				t.Errorf("%s: WWW-Authenticate %q, want it to contain %q", name, got, w)
			}
		}
		if token != "" && (strings.Contains(got, token) || strings.Contains(string(msg), token)) {
			t.Errorf("%s: the answer contains the token", name)
		}
	}
	tokenIn := func(namespace, sa, aud string) string {
		return strings.TrimSpace(l.k(t, "create", "token", sa, "-n", namespace, "--audience", aud))
	}
	token := func(sa, aud string) string { return tokenIn(ns, sa, aud) }
	try("no token", "", http.StatusUnauthorized, `Bearer realm="rgw-nats"`)
	try("another audience's token", token("default", "someone-else"), http.StatusUnauthorized,
		`Bearer realm="rgw-nats"`, `error="invalid_token"`, "expected audience")
	// The right audience, but from another namespace than rgw-nats'.
	try("the right audience from another namespace", tokenIn("default", "default", audience), http.StatusForbidden,
		`Bearer realm="rgw-nats"`, `error="insufficient_scope"`, "system:serviceaccount:default:default")
	if t.Failed() {
		t.FailNow()
	}

	// With OIDC on, broker-ingress wants a token for the Broker's audience
	// (and, by default-authorization-mode allow-same-namespace, from this
	// namespace): the default service account's.
	broker := l.brokerURL(t, ns)
	e := rgwCE("oidc-"+randHex(4), "xraylab-0001", "oidc/broker.jpeg", "ObjectCreated:Put", true)
	if code, err := postCE(context.Background(), c, broker, e); err != nil || code != http.StatusUnauthorized {
		t.Errorf("broker ingress without a token: %d %v, want 401 (is authentication-oidc on?)", code, err)
	}
	code, err := postCEWith(context.Background(), c, broker, e, http.Header{"Authorization": {"Bearer " + token("default", brokerAudience)}})
	if err != nil || code/100 != 2 {
		t.Fatalf("broker ingress with a token for %s: %d %v", brokerAudience, code, err)
	}
	var got []published
	waitUntil(90*time.Second, time.Second, func() bool {
		got = readStream(t, nc, "RGW", 0, 0)
		return len(got) > 0
	})
	// A redelivery would come within Knative's retry backoff: wait a few
	// seconds more before counting.
	time.Sleep(5 * time.Second)
	got = readStream(t, nc, "RGW", 0, 0)
	// rgw-nats' id of an RGW record: its eventId, then its configurationId.
	if len(got) != 1 || !strings.HasPrefix(got[0].ID, e.id+".") || got[0].Ext["objectkey"] != "oidc/broker.jpeg" {
		for _, p := range got {
			t.Logf("published %s on %s, objectkey %v", p.ID, p.Subject, p.Ext["objectkey"])
		}
		t.Fatalf("published %d events, want the Broker's delivery (event %s) once", len(got), e.id)
	}
	if n := len(dls.all()); n != 0 {
		t.Errorf("%d events reached the dead-letter sink, want 0", n)
	}
	// Nothing but the three direct POSTs was refused: the delivery was
	// accepted at once, not after 401s or 503s.
	byStatus := map[string]int{}
	for k, n := range l.failures(t, ns, "rgw-nats") {
		status, _, _ := strings.Cut(k, " ")
		byStatus[status] += n
	}
	if want := map[string]int{"401": 2, "403": 1}; !maps.Equal(byStatus, want) {
		t.Errorf("rgw-nats logged refusals %v, want %v (the three direct POSTs)", byStatus, want)
	}
	t.Logf("the Broker's delivery (Trigger service account %s, audience %s) was accepted and published once; no token and another audience's token: 401, a subject not allowed: 403", triggerSA, audience)

	// Without subscriber.audience (a Knative Service publishes none) the
	// Trigger delivers without a token: rgw-nats answers 401, which Knative
	// does not retry but dead-letters, once.
	l.k(t, "patch", "-n", ns, "trigger/rgw-nats-xray-created", "--type=json", "-p", `[{"op":"remove","path":"/spec/subscriber/audience"}]`)
	if !waitUntil(time.Minute, time.Second, func() bool {
		out, err := l.kubectlOut("get", "-n", ns, "trigger/rgw-nats-xray-created", "-o", "jsonpath={.status.subscriberAudience}")
		return err == nil && strings.TrimSpace(out) == ""
	}) {
		t.Fatal("the Trigger still has a subscriber audience a minute after its spec lost it")
	}
	e2 := rgwCE("oidc-"+randHex(4), "xraylab-0001", "oidc/no-audience.jpeg", "ObjectCreated:Put", true)
	posted := time.Now()
	code, err = postCEWith(context.Background(), c, broker, e2, http.Header{"Authorization": {"Bearer " + token("default", brokerAudience)}})
	if err != nil || code/100 != 2 {
		t.Fatalf("broker ingress with a token for %s: %d %v", brokerAudience, code, err)
	}
	var dead []received
	waitUntil(90*time.Second, time.Second, func() bool {
		dead = dls.all()
		return len(dead) > 0
	})
	time.Sleep(5 * time.Second)
	dead = dls.all()
	if len(dead) != 1 || dead[0].attr("id") != e2.id {
		t.Fatalf("%d events reached the dead-letter sink, want the delivery without audience (event %s) once", len(dead), e2.id)
	}
	if got = readStream(t, nc, "RGW", 0, 0); len(got) != 1 {
		t.Errorf("%d events published, want still 1", len(got))
	}
	if f := l.failures(t, ns, "rgw-nats"); f["401 missing credentials"] != 2 {
		t.Errorf("rgw-nats logged refusals %v, want 2 \"401 missing credentials\" (the direct POST and the delivery without a token)", f)
	}
	t.Logf("a Trigger without subscriber.audience: no token sent, rgw-nats answered 401, dead-lettered once (%s after the POST)", dead[0].at.Sub(posted).Round(time.Millisecond))

	l.oidcColdStart(t, ns, audience, broker, token("default", brokerAudience), nc, dls)
}

// oidcColdStart: the Service at zero with OIDC on. The Trigger's delivery
// starts a pod, and the first request that pod sees carries a token before
// the pod has the issuer's keys (it starts fetching them when it starts): it
// must wait for that first fetch and be accepted at once, not answered 503
// and retried, not refused.
func (l *klab) oidcColdStart(t *testing.T, ns, audience, broker, brokerToken string, nc *nats.Conn, dls *receiver) {
	t.Helper()
	l.k(t, "patch", "-n", ns, "trigger/rgw-nats-xray-created", "--type=json", "-p",
		fmt.Sprintf(`[{"op":"add","path":"/spec/subscriber/audience","value":%q}]`, audience))
	if !waitUntil(time.Minute, time.Second, func() bool {
		out, err := l.kubectlOut("get", "-n", ns, "trigger/rgw-nats-xray-created", "-o", "jsonpath={.status.subscriberAudience}")
		return err == nil && strings.TrimSpace(out) == audience
	}) {
		t.Fatal("the Trigger has no subscriber audience a minute after its spec got it back")
	}
	// The shipped Service keeps its last pod 5 minutes: a new revision
	// without that, and the autoscaler's windows shortened, reach zero in
	// seconds (an unreachable old revision keeps no pod).
	rev := l.patchRevision(t, ns,
		`[{"op":"replace","path":"/spec/template/metadata/annotations/autoscaling.knative.dev~1scale-to-zero-pod-retention-period","value":"0s"}]`)
	shortScaleDown(t, l)
	l.waitZero(t, ns, 6*time.Minute)
	// Truly at zero: not even a pod still draining, which could take the
	// delivery.
	if !waitUntil(3*time.Minute, time.Second, func() bool { return len(l.pods(t, ns, "rgw-nats")) == 0 }) {
		t.Fatalf("pods left 3 minutes after scaling to zero: %+v", l.pods(t, ns, "rgw-nats"))
	}

	c := newClient(1, 90*time.Second)
	e := rgwCE("oidc-"+randHex(4), "xraylab-0001", "oidc/cold.jpeg", "ObjectCreated:Put", true)
	posted := time.Now()
	// With the in-memory channel, the Broker answers once the subscriber
	// has accepted the event, retries included.
	code, err := postCEWith(context.Background(), c, broker, e, http.Header{"Authorization": {"Bearer " + brokerToken}})
	answered := time.Since(posted)
	if err != nil || code/100 != 2 {
		t.Fatalf("broker ingress with a token, Service at zero: %d %v", code, err)
	}
	// Read the new pod's log now: the shortened windows take it back to
	// zero within seconds of being idle. Only the new revision's: an old
	// pod may still be draining.
	log, _ := l.kubectlOut("logs", "-n", ns, "-l", "serving.knative.dev/revision="+rev, "-c", "rgw-nats", "--tail=-1", "--prefix")
	if strings.TrimSpace(log) == "" {
		t.Fatalf("no log of a pod of revision %s right after the delivery: %+v", rev, l.pods(t, ns, "rgw-nats"))
	}
	var got []published
	waitUntil(90*time.Second, time.Second, func() bool {
		got = readStream(t, nc, "RGW", 0, 0)
		return len(got) >= 2
	})
	time.Sleep(5 * time.Second)
	got = readStream(t, nc, "RGW", 0, 0)
	if len(got) != 2 || !strings.HasPrefix(got[1].ID, e.id+".") {
		for _, p := range got {
			t.Logf("published %s on %s, objectkey %v", p.ID, p.Subject, p.Ext["objectkey"])
		}
		t.Fatalf("published %d events, want the cold start's delivery (event %s) once after the first", len(got), e.id)
	}
	if n := len(dls.all()); n != 1 {
		t.Errorf("%d events in the dead-letter sink, want still 1", n)
	}
	var took string
	var started time.Duration
	refused := 0
	for _, line := range strings.Split(log, "\n") {
		i := strings.Index(line, "{")
		if i < 0 {
			continue
		}
		var m struct {
			Time              time.Time
			Msg, Took, Reason string
		}
		json.Unmarshal([]byte(line[i:]), &m)
		switch m.Msg {
		case "rgw-nats starting":
			// The delivery started this pod: it was at zero.
			if m.Time.Before(posted) {
				t.Errorf("revision %s's pod started at %s, before the POST at %s: the Service was not at zero", rev, m.Time.Format(time.RFC3339Nano), posted.UTC().Format(time.RFC3339Nano))
			}
			started = posted.Sub(m.Time)
		case "OIDC issuer keys fetched":
			took = m.Took
		case "request failed":
			refused++
			t.Errorf("the cold pod refused a request: %s", line[i:])
		}
	}
	if took == "" {
		t.Errorf("the cold pod did not log \"OIDC issuer keys fetched\":\n%s", tailStr(log, 3000))
	}
	if started == 0 {
		t.Errorf("revision %s's pod did not log \"rgw-nats starting\"", rev)
	}
	l.figure(t, "oidc cold start: Broker POST at zero -> answered (delivery accepted) %s; revision %s's pod started %s after the POST, fetched the keys %s after it started; refused %d",
		answered.Round(time.Millisecond), rev, (-started).Round(time.Millisecond), took, refused)
}
