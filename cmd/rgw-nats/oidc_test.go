package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// TestServeHTTPSWithOIDC: `rgw-nats serve` on its HTTPS listener (TLS_*)
// with OIDC sender authentication, as a Knative sink reached over TLS: a
// token of the issuer for the audience is accepted, none and another
// audience's are refused with 401 and a Bearer challenge.
func TestServeHTTPSWithOIDC(t *testing.T) {
	nats := testutil.NATS(t)
	iss := testutil.NewIssuer(t, "https://kubernetes.default.svc.cluster.local")
	certFile, keyFile := writePair(t, t.TempDir(), 1)
	const aud = "serving.knative.dev/service/lab/rgw-nats"
	cfg := testConfig(t, map[string]string{
		"NATS_URL": nats.ClientURL(), "NATS_STREAM_CREATE": "true",
		"TLS_CERT_FILE": certFile, "TLS_KEY_FILE": keyFile,
		"AUTH_OIDC_ISSUER": iss.Name, "AUTH_OIDC_AUDIENCE": aud, "AUTH_OIDC_DISCOVERY_URL": iss.URL,
		"AUTH_OIDC_CA": iss.CAFile, "AUTH_OIDC_TOKEN_FILE": iss.TokenFile,
	})
	ep, _ := startServe(t, cfg)

	pem, err := os.ReadFile(certFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	body := events.Read("pacific-16.2.15/put-with-meta.json")
	post := func(token string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodPost, "https://"+ep.HTTP+"/", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	const sub = "system:serviceaccount:knative-eventing:mt-broker-filter"
	if resp := post(iss.Sign(t, iss.Claims(sub, aud))); resp.StatusCode != 202 {
		t.Fatalf("token for %s: %d, want 202", aud, resp.StatusCode)
	}
	for name, tok := range map[string]string{
		"no token":           "",
		"another's audience": iss.Sign(t, iss.Claims(sub, "serving.knative.dev/service/lab/other")),
	} {
		resp := post(tok)
		if resp.StatusCode != 401 || !strings.HasPrefix(strings.Join(resp.Header.Values("WWW-Authenticate"), ","), "Bearer ") {
			t.Errorf("%s: %d %v, want 401 with a Bearer challenge", name, resp.StatusCode, resp.Header)
		}
	}
}
