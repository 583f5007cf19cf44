package knativee2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// oidcSupported says whether the work tree the image is built from has
// OIDC sink authentication (AUTH_OIDC_ISSUER in the service's settings).
func oidcSupported() bool {
	b, err := os.ReadFile(filepath.Join(repoRoot, "function/config.go"))
	return err == nil && bytes.Contains(b, []byte(`"AUTH_OIDC_ISSUER"`))
}

// eventingFeature sets a key of knative-eventing/config-features for the
// test and puts the old value back when it ends.
func (l *klab) eventingFeature(t *testing.T, key, value string) {
	t.Helper()
	var cm struct{ Data map[string]string }
	l.jsonOf(t, &cm, "get", "configmap", "-n", "knative-eventing", "config-features")
	old, had := cm.Data[key]
	set := func(v any) error {
		b, _ := json.Marshal(map[string]any{"data": map[string]any{key: v}})
		_, err := l.kubectlOut("patch", "configmap", "-n", "knative-eventing", "config-features", "--type=merge", "-p", string(b))
		return err
	}
	if err := set(value); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		var v any = old
		if !had {
			v = nil
		}
		if err := set(v); err != nil {
			t.Errorf("restoring config-features %s: %v", key, err)
		}
	})
}

// TestEventingOIDC: with Eventing's authentication-oidc on, the Broker's
// deliveries carry a token for rgw-nats' audience and are accepted; a POST
// without a token, or with a token for another audience, is refused with
// 401 and a Bearer challenge; a token for the audience from a subject the
// allowed list (an EventPolicy's sub values) leaves out gets 403.
func TestEventingOIDC(t *testing.T) {
	l := needEventing(t)
	if !oidcSupported() {
		t.Skip("e2e/knative: this work tree's rgw-nats has no OIDC sink authentication (no AUTH_OIDC_ISSUER in function/config.go)")
	}
	l.eventingFeature(t, "authentication-oidc", "enabled")
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
	// The form Knative gives its own resources' audiences.
	audience := "serving.knative.dev/service/" + ns + "/rgw-nats"
	triggerSA := "system:serviceaccount:" + ns + ":rgw-nats-xray-created-oidc-eventing.knative.dev-trigger"
	b := eventingBuild("knative/overlays/eventing", nl, dls)
	b.config = map[string]string{
		"AUTH_OIDC_ISSUER":        disc.Issuer,
		"AUTH_OIDC_AUDIENCE":      audience,
		"AUTH_OIDC_DISCOVERY_URL": "https://kubernetes.default.svc",
		"AUTH_OIDC_CA":            "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt",
		"AUTH_OIDC_TOKEN_FILE":    "/var/run/secrets/kubernetes.io/serviceaccount/token",
		// What an EventPolicy would allow: the Trigger's OIDC service account.
		"AUTH_OIDC_SUBJECTS": triggerSA,
	}
	// A Knative Service publishes no audience: the Trigger names it.
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

	c := newClient(2, 60*time.Second)
	body := rgwBody("xraylab-0001", "oidc/direct.jpeg", "ObjectCreated:Put", "oidc-direct-"+randHex(4))
	try := func(name, token string, want int) {
		t.Helper()
		h := http.Header{}
		if token != "" {
			h.Set("Authorization", "Bearer "+token)
		}
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, l.ingress.String()+"/", bytes.NewReader(body))
		req.Host = svc.host
		req.Header = h
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d", name, resp.StatusCode, want)
		}
		if want == http.StatusUnauthorized && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: WWW-Authenticate %q, want a Bearer challenge", name, resp.Header.Get("WWW-Authenticate"))
		}
	}
	other := strings.TrimSpace(l.k(t, "create", "token", "default", "-n", ns, "--audience", "someone-else"))
	try("no token", "", http.StatusUnauthorized)
	try("another audience's token", other, http.StatusUnauthorized)
	// The right audience, but a subject the EventPolicy does not list.
	right := strings.TrimSpace(l.k(t, "create", "token", "default", "-n", ns, "--audience", audience))
	try("the right audience from another subject", right, http.StatusForbidden)

	broker := l.brokerURL(t, ns)
	e := rgwCE("oidc-"+randHex(4), "xraylab-0001", "oidc/broker.jpeg", "ObjectCreated:Put", true)
	if code, err := postCE(context.Background(), c, broker, e); err != nil || code/100 != 2 {
		t.Fatalf("broker ingress: %d %v", code, err)
	}
	var got []published
	waitUntil(90*time.Second, time.Second, func() bool {
		got = readStream(t, nc, "RGW", 0, 0)
		return len(got) > 0
	})
	if len(got) != 1 || got[0].Ext["objectkey"] != "oidc/broker.jpeg" {
		t.Fatalf("published %d events, want the Broker's delivery once; dead letters: %d", len(got), len(dls.all()))
	}
	t.Logf("the Broker's delivery with its OIDC token for %s was accepted; no token and another audience's: 401", audience)
}
