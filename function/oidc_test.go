package function_test

import (
	"crypto/rand"
	"crypto/rsa"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// oidcAudience is what Knative gives a sink's senders for a Knative Service
// named rgw-nats in namespace lab (<group>/<kind>/<namespace>/<name>).
const oidcAudience = "serving.knative.dev/service/lab/rgw-nats"

// oidcConfig points cfg at iss the way a pod points at the API server:
// discovery URL, CA and the token it presents to fetch the keys.
func oidcConfig(cfg *function.Config, iss *testutil.Issuer) {
	cfg.AuthOIDCIssuer, cfg.AuthOIDCAudience = iss.Name, oidcAudience
	cfg.AuthOIDCDiscovery, cfg.AuthOIDCCA, cfg.AuthOIDCTokenFile = iss.URL, iss.CAFile, iss.TokenFile
}

func bearer(tok string) map[string]string {
	return map[string]string{"Content-Type": "application/json", "Authorization": "Bearer " + tok}
}

// TestOIDCAuth: with AUTH_OIDC_* set, a request needs a JWT that the
// issuer signed for the audience, not expired (beyond the bounded clock
// skew), already valid, from an allowed subject; anything else is refused
// with 401 (403 for a subject not allowed) and a WWW-Authenticate that says
// why, and nothing is published. Basic and the static token still work
// beside it. No token ever shows in an answer or the log.
func TestOIDCAuth(t *testing.T) {
	s := runNATS(t)
	// The issuer is named as Kubernetes names its own, discovery is served
	// elsewhere, as https://kubernetes.default.svc serves it.
	iss := testutil.NewIssuer(t, "https://kubernetes.default.svc.cluster.local")
	cfg := testConfig(t, s.ClientURL())
	cfg.DeadLetter = false
	oidcConfig(&cfg, iss)
	cfg.AuthOIDCSubjects = "system:serviceaccount:knative-eventing:mt-broker-filter, system:serviceaccount:sources:*"
	cfg.AuthUsername, cfg.AuthPassword, cfg.AuthToken = "rgw", "s3cret", "tok3n"
	a := startAdapter(t, cfg, s.ClientURL())
	ch := a.subscribe(t, "rgw.>")
	body := fixture(t, putFixture)

	const broker = "system:serviceaccount:knative-eventing:mt-broker-filter"
	good := func() map[string]any { return iss.Claims(broker, oidcAudience) }
	with := func(kv ...any) map[string]any {
		c := good()
		for i := 0; i+1 < len(kv); i += 2 {
			c[kv[i].(string)] = kv[i+1]
		}
		return c
	}
	now := time.Now()
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	basic, _ := http.NewRequest("POST", "/", nil)
	basic.SetBasicAuth("rgw", "s3cret")
	wrongBasic, _ := http.NewRequest("POST", "/", nil)
	wrongBasic.SetBasicAuth("rgw", "guess")

	var tokens []string
	tok := func(s string) string { tokens = append(tokens, s); return s }
	cases := []struct {
		name   string
		header map[string]string
		code   int
		error  string // the WWW-Authenticate error, "" for none
		reason string // in the answer's body and error_description
	}{
		{"valid", bearer(tok(iss.Sign(t, good()))), 202, "", ""},
		{"subject by prefix", bearer(tok(iss.Sign(t, iss.Claims("system:serviceaccount:sources:ping", oidcAudience)))), 202, "", ""},
		{"expired within the clock skew", bearer(tok(iss.Sign(t, with("exp", now.Add(-10*time.Second).Unix())))), 202, "", ""},
		{"not yet valid within the clock skew", bearer(tok(iss.Sign(t, with("nbf", now.Add(10*time.Second).Unix())))), 202, "", ""},
		{"Basic beside OIDC", map[string]string{"Content-Type": "application/json", "Authorization": basic.Header.Get("Authorization")}, 202, "", ""},
		{"static token beside OIDC", bearer("tok3n"), 202, "", ""},
		{"no credentials", map[string]string{"Content-Type": "application/json"}, 401, "", "missing credentials"},
		{"wrong Basic beside OIDC", map[string]string{"Content-Type": "application/json", "Authorization": wrongBasic.Header.Get("Authorization")}, 401, "", "missing or wrong credentials"},
		{"expired", bearer(tok(iss.Sign(t, with("exp", now.Add(-2*time.Minute).Unix())))), 401, "invalid_token", "token expired at"},
		{"not yet valid", bearer(tok(iss.Sign(t, with("nbf", now.Add(2*time.Minute).Unix())))), 401, "invalid_token", "not valid before"},
		{"wrong audience", bearer(tok(iss.Sign(t, iss.Claims(broker, "serving.knative.dev/service/lab/other")))), 401, "invalid_token", "expected audience"},
		{"wrong issuer", bearer(tok(iss.Sign(t, with("iss", "https://issuer.example")))), 401, "invalid_token", "different provider"},
		{"alg none", bearer(tok(iss.Unsigned(t, good()))), 401, "invalid_token", "malformed jwt"},
		{"HS256 keyed with the public key", bearer(tok(iss.HS256WithPublicKey(t, good()))), 401, "invalid_token", "malformed jwt"},
		{"key the issuer never published", bearer(tok(testutil.SignRS256(t, stranger, iss.Kid(), good()))), 401, "invalid_token", "signature does not verify"},
		{"tampered claims", bearer(tok(tamper(iss.Sign(t, good()), iss.Sign(t, with("sub", "system:serviceaccount:sources:x"))))), 401, "invalid_token", "signature"},
		{"not a JWT", bearer(tok("not-a-jwt")), 401, "invalid_token", "malformed jwt"},
		{"subject not allowed", bearer(tok(iss.Sign(t, iss.Claims("system:serviceaccount:default:intruder", oidcAudience)))), 403, "insufficient_scope", "subject system:serviceaccount:default:intruder is not one of the allowed subjects"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp := post(t, a.url, c.header, body)
			if resp.code != c.code {
				t.Fatalf("status %d %q, want %d", resp.code, resp.body, c.code)
			}
			if c.code == 202 {
				receive(t, ch, 1)
				return
			}
			none(t, ch)
			if sent, ok := strings.CutPrefix(c.header["Authorization"], "Bearer "); ok && len(sent) > 8 {
				sig := sent[strings.LastIndexByte(sent, '.')+1:]
				answer := resp.body + strings.Join(resp.header.Values("WWW-Authenticate"), "\n")
				if strings.Contains(answer, sent) || len(sig) > 8 && strings.Contains(answer, sig) {
					t.Errorf("the answer repeats the token: %q", answer)
				}
			}
			if !strings.Contains(resp.body, c.reason) {
				t.Errorf("answer %q does not say %q", resp.body, c.reason)
			}
			challenges := strings.Join(resp.header.Values("WWW-Authenticate"), "\n")
			if !strings.Contains(challenges, `Bearer realm="rgw-nats"`) {
				t.Errorf("WWW-Authenticate %q: no Bearer challenge", challenges)
			}
			if c.code == 401 && !strings.Contains(challenges, `Basic realm="rgw-nats"`) {
				t.Errorf("WWW-Authenticate %q: no Basic challenge, though Basic is accepted", challenges)
			}
			if c.error == "" {
				if strings.Contains(challenges, "error=") {
					t.Errorf("WWW-Authenticate %q: an error for a request without a token (RFC 6750 3.1)", challenges)
				}
				return
			}
			want := `error="` + c.error + `", error_description="`
			i := strings.Index(challenges, want)
			if i < 0 {
				t.Fatalf("WWW-Authenticate %q, want %s...", challenges, want)
			}
			desc := challenges[i+len(want):]
			desc = desc[:strings.IndexByte(desc, '"')]
			if !strings.Contains(desc, c.reason) && !strings.Contains(c.reason, desc) {
				t.Errorf("error_description %q does not say %q", desc, c.reason)
			}
		})
	}
	// Tokens, or their signatures alone, appear nowhere: not in answers
	// (checked above per case), not in the log.
	logs := a.log.String()
	if !strings.Contains(logs, "OIDC token refused") {
		t.Fatalf("the refusals were not logged:\n%s", logs)
	}
	for _, tk := range tokens {
		sig := tk[strings.LastIndexByte(tk, '.')+1:]
		if strings.Contains(logs, tk) || len(sig) > 8 && strings.Contains(logs, sig) {
			t.Errorf("a token is in the log:\n%s", logs)
		}
	}
}

// TestOIDCSubjectsOwnNamespace: {namespace} in AUTH_OIDC_SUBJECTS is the
// namespace Kubernetes mounts beside the service-account token, so the
// eventing-oidc overlay's system:serviceaccount:{namespace}:* lets in the
// pod's own namespace only (Knative's allow-same-namespace); a namespace
// file that is missing or holds no namespace name stops the start.
func TestOIDCSubjectsOwnNamespace(t *testing.T) {
	s := runNATS(t)
	iss := testutil.NewIssuer(t, "https://kubernetes.default.svc.cluster.local")
	nsFile := filepath.Join(filepath.Dir(iss.TokenFile), "namespace")
	cfg := testConfig(t, s.ClientURL())
	oidcConfig(&cfg, iss)
	cfg.AuthOIDCSubjects = "system:serviceaccount:{namespace}:*"

	for _, bad := range []string{"", "Not_A_Name\n", strings.Repeat("a", 64)} {
		os.WriteFile(nsFile, []byte(bad), 0o600)
		if err := cfg.CheckFiles(); err == nil || !strings.Contains(err.Error(), "{namespace}") {
			t.Errorf("namespace file %q: %v, want an error naming {namespace}", bad, err)
		}
	}
	os.Remove(nsFile)
	if err := cfg.CheckFiles(); err == nil || !strings.Contains(err.Error(), "AUTH_OIDC_SUBJECTS") {
		t.Errorf("no namespace file: %v, want an error naming AUTH_OIDC_SUBJECTS", err)
	}

	if err := os.WriteFile(nsFile, []byte("lab\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAdapter(t, cfg, s.ClientURL())
	ch := a.subscribe(t, "rgw.>")
	body := fixture(t, putFixture)
	for _, c := range []struct {
		sub  string
		code int
	}{
		{"system:serviceaccount:lab:rgw-nats-xray-created-oidc-eventing.knative.dev-trigger", 202},
		{"system:serviceaccount:lab:default", 202},
		{"system:serviceaccount:other:rgw-nats-xray-created-oidc-eventing.knative.dev-trigger", 403},
		{"system:serviceaccount:lab2:default", 403},
		{"system:serviceaccount:{namespace}:default", 403},
	} {
		resp := post(t, a.url, bearer(iss.Sign(t, iss.Claims(c.sub, oidcAudience))), body)
		if resp.code != c.code {
			t.Errorf("%s: %d %q, want %d", c.sub, resp.code, resp.body, c.code)
		}
		if c.code == 202 {
			receive(t, ch, 1)
		} else {
			none(t, ch)
		}
	}
}

// tamper puts the claims of other into signed, keeping signed's signature.
func tamper(signed, other string) string {
	s, o := strings.Split(signed, "."), strings.Split(other, ".")
	return s[0] + "." + o[1] + "." + s[2]
}

// TestOIDCKeyRotation: the issuer starts signing with a new key; its first
// token makes the adapter fetch the keys again and is accepted, without a
// restart. Tokens naming keys the issuer does not publish cause at most one
// fetch per MinRefresh, not one each.
func TestOIDCKeyRotation(t *testing.T) {
	s := runNATS(t)
	iss := testutil.NewIssuer(t, "")
	cfg := testConfig(t, s.ClientURL())
	oidcConfig(&cfg, iss)
	a := startAdapter(t, cfg, s.ClientURL())
	body := fixture(t, putFixture)
	const sub = "system:serviceaccount:knative-eventing:mt-broker-filter"

	if r := post(t, a.url, bearer(iss.Sign(t, iss.Claims(sub, oidcAudience))), body); r.code != 202 {
		t.Fatalf("first key: %d %s", r.code, r.body)
	}
	before := iss.JWKSFetches()
	iss.Rotate(t)
	if r := post(t, a.url, bearer(iss.Sign(t, iss.Claims(sub, oidcAudience))), body); r.code != 202 {
		t.Fatalf("rotated key: %d %s", r.code, r.body)
	}
	if got := iss.JWKSFetches(); got != before+1 {
		t.Errorf("JWKS fetched %d times for the rotation, want 1", got-before)
	}
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// Made-up kids right after that fetch are not worth another: 503, so
	// that a sender retries (a good token of a key rotated within the last
	// MinRefresh is not dead-lettered), and the issuer is left alone.
	before = iss.JWKSFetches()
	for i := range 5 {
		tok := testutil.SignRS256(t, stranger, "made-up-"+string(rune('a'+i)), iss.Claims(sub, oidcAudience))
		if r := post(t, a.url, bearer(tok), body); r.code != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "fetched again at most every") {
			t.Fatalf("unknown kid: %d %s", r.code, r.body)
		}
	}
	if got := iss.JWKSFetches(); got != before {
		t.Errorf("unknown kids within MinRefresh of the last fetch fetched the keys %d times, want 0", got-before)
	}
}

// TestOIDCIssuerUnreachable: when the keys cannot be fetched, a token
// whose claims are fine can be neither accepted nor refused: the answer is
// 503 + Retry-After, which Knative retries, not a 401 it would dead-letter.
// One for another audience is refused (401) whatever its signature.
func TestOIDCIssuerUnreachable(t *testing.T) {
	s := runNATS(t)
	iss := testutil.NewIssuer(t, "")
	tok := iss.Sign(t, iss.Claims("system:serviceaccount:knative-eventing:mt-broker-filter", oidcAudience))
	other := iss.Sign(t, iss.Claims("system:serviceaccount:knative-eventing:mt-broker-filter", "someone-else"))
	iss.Close()
	cfg := testConfig(t, s.ClientURL())
	oidcConfig(&cfg, iss)
	a := startAdapter(t, cfg, s.ClientURL())
	r := post(t, a.url, bearer(tok), fixture(t, putFixture))
	if r.code != 503 || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, "could not be fetched") {
		t.Fatalf("issuer down: %d %v %q, want 503 + Retry-After", r.code, r.header, r.body)
	}
	r = post(t, a.url, bearer(other), fixture(t, putFixture))
	if c := r.header.Get("WWW-Authenticate"); r.code != 401 || !strings.Contains(c, `error="invalid_token"`) || !strings.Contains(c, "expected audience") {
		t.Fatalf("issuer down, another audience's token: %d %q, want 401 invalid_token", r.code, c)
	}
	if strings.Contains(a.log.String(), tok) || strings.Contains(a.log.String(), other) {
		t.Error("the token is in the log")
	}
}

// TestOIDCConfig: the settings that cannot work are refused at load with
// the variable's name.
func TestOIDCConfig(t *testing.T) {
	base := map[string]string{"NATS_URL": "nats://127.0.0.1:1"}
	cases := []struct {
		name string
		env  map[string]string
		want string // "" when valid
	}{
		{"issuer and audience", map[string]string{"AUTH_OIDC_ISSUER": "https://kubernetes.default.svc", "AUTH_OIDC_AUDIENCE": "a"}, ""},
		{"http on loopback", map[string]string{"AUTH_OIDC_ISSUER": "http://127.0.0.1:9000", "AUTH_OIDC_AUDIENCE": "a"}, ""},
		{"audience alone", map[string]string{"AUTH_OIDC_AUDIENCE": "a"}, "need AUTH_OIDC_ISSUER"},
		{"issuer alone", map[string]string{"AUTH_OIDC_ISSUER": "https://kubernetes.default.svc"}, "audience go together"},
		{"plain http", map[string]string{"AUTH_OIDC_ISSUER": "http://issuer.example", "AUTH_OIDC_AUDIENCE": "a"}, "https"},
		{"not a URL", map[string]string{"AUTH_OIDC_ISSUER": "kubernetes", "AUTH_OIDC_AUDIENCE": "a"}, "not an issuer URL"},
		{"own namespace", map[string]string{"AUTH_OIDC_ISSUER": "https://i.example", "AUTH_OIDC_AUDIENCE": "a", "AUTH_OIDC_SUBJECTS": "system:serviceaccount:{namespace}:*", "AUTH_OIDC_TOKEN_FILE": "/var/run/secrets/kubernetes.io/serviceaccount/token"}, ""},
		{"own namespace without the token file", map[string]string{"AUTH_OIDC_ISSUER": "https://i.example", "AUTH_OIDC_AUDIENCE": "a", "AUTH_OIDC_SUBJECTS": "system:serviceaccount:{namespace}:*"}, "AUTH_OIDC_TOKEN_FILE"},
		{"unknown placeholder", map[string]string{"AUTH_OIDC_ISSUER": "https://i.example", "AUTH_OIDC_AUDIENCE": "a", "AUTH_OIDC_SUBJECTS": "system:serviceaccount:{ns}:*", "AUTH_OIDC_TOKEN_FILE": "/t"}, "placeholder"},
		{"any subject spelt *", map[string]string{"AUTH_OIDC_ISSUER": "https://i.example", "AUTH_OIDC_AUDIENCE": "a", "AUTH_OIDC_SUBJECTS": "*"}, "leave the list empty"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range base {
				env[k] = v
			}
			for k, v := range c.env {
				env[k] = v
			}
			_, err := function.ConfigFromMap(env)
			switch {
			case c.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "AUTH_OIDC")):
				t.Fatalf("error %v, want one naming AUTH_OIDC and saying %q", err, c.want)
			}
		})
	}
}
