package testutil

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// Issuer is a real OIDC issuer for tests: an HTTPS listener on 127.0.0.1
// serving /.well-known/openid-configuration and its JWKS, with RSA keys
// generated for the test. Like the Kubernetes API server it answers the
// discovery and key requests only with its bearer token (TokenFile), and
// negotiates media types as strictly: discovery only as application/json,
// the keys only as application/jwk-set+json (406 Not Acceptable to an
// Accept header that allows neither).
type Issuer struct {
	Name      string // the iss its tokens carry
	URL       string // where it serves discovery (the discovery base URL)
	CAFile    string // PEM of its TLS certificate
	TokenFile string // the bearer token it wants on discovery and JWKS requests

	srv          *httptest.Server
	token        string
	mu           sync.Mutex
	keys         []*rsa.PrivateKey // published, in order; the last one signs
	kids         []string
	hold         chan struct{} // non-nil: key set answers wait until it is closed
	jwksRequests atomic.Int64
	jwksFetches  atomic.Int64
}

// NewIssuer starts an issuer with one key. name is the iss of its tokens;
// empty means its own URL (a discovery URL different from the issuer is what
// Kubernetes does: discovery at https://kubernetes.default.svc, issuer as
// the API server was told).
func NewIssuer(tb testing.TB, name string) *Issuer {
	tb.Helper()
	iss := &Issuer{token: rand.Text()}
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		if !iss.authorized(w, r) || !negotiate(w, r, "application/json") {
			return
		}
		json.NewEncoder(w).Encode(map[string]any{
			"issuer":                                iss.Name,
			"jwks_uri":                              iss.URL + "/openid/v1/jwks",
			"response_types_supported":              []string{"id_token"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/openid/v1/jwks", func(w http.ResponseWriter, r *http.Request) {
		iss.jwksRequests.Add(1)
		iss.mu.Lock()
		hold := iss.hold
		iss.mu.Unlock()
		if hold != nil {
			<-hold
		}
		if !iss.authorized(w, r) || !negotiate(w, r, "application/jwk-set+json") {
			return
		}
		iss.jwksFetches.Add(1)
		iss.mu.Lock()
		set := jose.JSONWebKeySet{}
		for i, k := range iss.keys {
			set.Keys = append(set.Keys, jose.JSONWebKey{Key: &k.PublicKey, KeyID: iss.kids[i], Algorithm: string(jose.RS256), Use: "sig"})
		}
		iss.mu.Unlock()
		json.NewEncoder(w).Encode(set)
	})
	iss.srv = httptest.NewTLSServer(mux)
	tb.Cleanup(iss.srv.Close)
	iss.URL = iss.srv.URL
	iss.Name = name
	if name == "" {
		iss.Name = iss.URL
	}
	dir := tb.TempDir()
	iss.CAFile = filepath.Join(dir, "ca.crt")
	iss.TokenFile = filepath.Join(dir, "token")
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.srv.Certificate().Raw})
	if err := os.WriteFile(iss.CAFile, ca, 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(iss.TokenFile, []byte(iss.token+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	iss.Rotate(tb)
	return iss
}

func (iss *Issuer) authorized(w http.ResponseWriter, r *http.Request) bool {
	if r.Header.Get("Authorization") != "Bearer "+iss.token {
		http.Error(w, "Unauthorized", http.StatusUnauthorized)
		return false
	}
	return true
}

// negotiate sets the Content-Type to ctype if the request's Accept header
// allows it (or has none), else answers 406 as the API server does.
func negotiate(w http.ResponseWriter, r *http.Request, ctype string) bool {
	accept := r.Header.Get("Accept")
	ok := accept == ""
	for _, a := range strings.Split(accept, ",") {
		m, _, _ := strings.Cut(a, ";")
		switch m = strings.TrimSpace(m); m {
		case ctype, "*/*", ctype[:strings.Index(ctype, "/")] + "/*":
			ok = true
		}
	}
	if !ok {
		http.Error(w, "406: Not Acceptable: available representations: "+ctype, http.StatusNotAcceptable)
		return false
	}
	w.Header().Set("Content-Type", ctype)
	return true
}

// Close stops serving: the issuer is unreachable from now on.
func (iss *Issuer) Close() { iss.srv.Close() }

// Rotate generates a new key, publishes it beside the old ones and signs
// with it from now on; it returns its kid.
func (iss *Issuer) Rotate(tb testing.TB) string {
	tb.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	kid := fmt.Sprintf("key-%d-%s", len(iss.keys)+1, rand.Text()[:6])
	iss.keys, iss.kids = append(iss.keys, k), append(iss.kids, kid)
	return kid
}

// Kid is the kid of the key that signs now.
func (iss *Issuer) Kid() string {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	return iss.kids[len(iss.kids)-1]
}

// JWKSFetches counts the key set requests answered.
func (iss *Issuer) JWKSFetches() int64 { return iss.jwksFetches.Load() }

// JWKSRequests counts the key set requests received, answered or not.
func (iss *Issuer) JWKSRequests() int64 { return iss.jwksRequests.Load() }

// HoldJWKS makes key set requests wait (a slow issuer) until release is
// called, or the test ends.
func (iss *Issuer) HoldJWKS(tb testing.TB) (release func()) {
	ch := make(chan struct{})
	iss.mu.Lock()
	iss.hold = ch
	iss.mu.Unlock()
	var once sync.Once
	release = func() {
		once.Do(func() {
			iss.mu.Lock()
			iss.hold = nil
			iss.mu.Unlock()
			close(ch)
		})
	}
	tb.Cleanup(release)
	return release
}

// Claims are the claims of a good token for aud from sub, valid for an hour
// from now, as Kubernetes' TokenRequest issues them.
func (iss *Issuer) Claims(sub, aud string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": iss.Name, "sub": sub, "aud": []string{aud},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
}

// Sign signs claims with the current key (RS256), its kid in the header.
func (iss *Issuer) Sign(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	iss.mu.Lock()
	k, kid := iss.keys[len(iss.keys)-1], iss.kids[len(iss.kids)-1]
	iss.mu.Unlock()
	return SignRS256(tb, k, kid, claims)
}

// SignRS256 signs claims with any RSA key, e.g. one the issuer never
// published.
func SignRS256(tb testing.TB, k *rsa.PrivateKey, kid string, claims map[string]any) string {
	tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: k, KeyID: kid}},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		tb.Fatal(err)
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		tb.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Unsigned is claims as a JWT with "alg":"none" and no signature.
func (iss *Issuer) Unsigned(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	return handMade(tb, map[string]any{"alg": "none", "typ": "JWT"}, claims, func([]byte) []byte { return nil })
}

// HS256WithPublicKey is the algorithm confusion attack: claims signed with
// HMAC-SHA256 keyed with the current key's public key (PEM), naming its kid.
func (iss *Issuer) HS256WithPublicKey(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	iss.mu.Lock()
	k, kid := iss.keys[len(iss.keys)-1], iss.kids[len(iss.kids)-1]
	iss.mu.Unlock()
	der, err := x509.MarshalPKIXPublicKey(&k.PublicKey)
	if err != nil {
		tb.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	return handMade(tb, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}, claims, func(in []byte) []byte {
		m := hmac.New(sha256.New, secret)
		m.Write(in)
		return m.Sum(nil)
	})
}

func handMade(tb testing.TB, header, claims map[string]any, sign func([]byte) []byte) string {
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			tb.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	in := enc(header) + "." + enc(claims)
	return in + "." + base64.RawURLEncoding.EncodeToString(sign([]byte(in)))
}
