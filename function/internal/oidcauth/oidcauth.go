// Package oidcauth verifies the OIDC bearer tokens that senders present to
// rgw-nats, as Knative Eventing's senders do with its authentication-oidc
// feature: a JWT that the configured issuer (on Kubernetes, the API server's
// service-account issuer) signed for the configured audience, optionally
// from one of a list of subjects (what an EventPolicy's `sub` values say).
//
// The issuer's discovery document and its keys (JWKS) are fetched over
// HTTPS when first needed and cached; a token signed with a key the cache
// does not know makes it fetch the keys again (at most once per
// MinRefresh), so the issuer can rotate keys without a restart. Claims
// (iss, aud, exp, nbf) and the signature are checked by go-oidc and
// go-jose, with asymmetric algorithms only; clocks may differ by ClockSkew.
//
// Every failure is an *Error that says whether the token is refused (401),
// its subject is not allowed (403) or the issuer could not be asked (503),
// with a one-line description that never contains the token.
//
// It knows nothing of rgw-nats: it must not import the adapter, function
// or NATS packages.
package oidcauth

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	jose "github.com/go-jose/go-jose/v4"
)

// Bounds of the verifier (README, "Bounds").
const (
	// ClockSkew is how far the issuer's clock and ours may differ: a token
	// is accepted up to ClockSkew after its exp and from ClockSkew before
	// its nbf.
	ClockSkew = 30 * time.Second
	// MinRefresh is the least time between two fetches from the issuer, so
	// that tokens naming unknown keys cannot make us hammer it.
	MinRefresh = 10 * time.Second
	// KeysMaxAge is how long fetched keys are used before they are fetched
	// again (a key the issuer withdrew stops verifying within this time).
	KeysMaxAge = time.Hour
	// CacheTTL is how long a verified token is remembered (never past its
	// exp), so a sender reusing its token costs a hash, not an RSA check.
	CacheTTL = time.Minute
	// CacheSize is the most verified tokens remembered.
	CacheSize = 1024

	fetchTimeout = 10 * time.Second
	maxDocBytes  = 1 << 20
)

// algorithms are the signature algorithms accepted: asymmetric ones only,
// so neither "none" nor an HMAC keyed with a public key can pass.
var algorithms = []jose.SignatureAlgorithm{
	jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
	jose.ES256, jose.ES384, jose.ES512, jose.EdDSA,
}

// Config says which tokens are accepted.
type Config struct {
	Issuer   string   // the iss every token carries
	Audience string   // an aud every token includes
	Subjects []string // allowed sub values, a trailing * matching any suffix; empty: any subject
	// DiscoveryURL is where /.well-known/openid-configuration is fetched
	// from; empty: Issuer. Kubernetes serves it at https://kubernetes.default.svc
	// whatever its issuer is called.
	DiscoveryURL string
	// CAFile is a PEM file of the CAs that sign the issuer's certificate;
	// empty: the system's.
	CAFile string
	// TokenFile holds a bearer token sent with every fetch from the issuer
	// (the Kubernetes API server wants one: the pod's service-account
	// token). It is read again for every fetch, as kubelet rotates it.
	TokenFile string
}

// Validate checks the configuration without touching files or network.
func (c *Config) Validate() error {
	switch {
	case c.Issuer == "" || c.Audience == "":
		return errors.New("an issuer and an audience go together")
	}
	for _, u := range []string{c.Issuer, c.DiscoveryURL} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		if err != nil || p.Host == "" || p.RawQuery != "" || p.Fragment != "" {
			return fmt.Errorf("%q is not an issuer URL (https://host[/path])", u)
		}
		if p.Scheme != "https" && !(p.Scheme == "http" && loopback(p.Hostname())) {
			return fmt.Errorf("%q: the issuer is reached over https (http only on a loopback address)", u)
		}
	}
	for _, s := range c.Subjects {
		if s == "" || s == "*" {
			return errors.New("an allowed subject is empty or *: leave the list empty to allow any subject")
		}
	}
	return nil
}

func loopback(host string) bool {
	ip := net.ParseIP(host)
	return host == "localhost" || ip != nil && ip.IsLoopback()
}

// Kind says how a refused request is answered.
type Kind int

const (
	// Invalid: no valid token for this audience (401, invalid_token).
	Invalid Kind = iota + 1
	// Forbidden: a valid token whose subject is not allowed (403).
	Forbidden
	// Unavailable: the issuer could not be asked for its keys (503: the
	// token may well be good, try again).
	Unavailable
)

// Error is a refused token. Its message is one line for the sender (and the
// WWW-Authenticate error_description: no quotes or backslashes); it never
// contains the token.
type Error struct {
	Kind        Kind
	Description string
	err         error
}

func (e *Error) Error() string { return e.Description }
func (e *Error) Unwrap() error { return e.err }

// Identity is who a verified token speaks for.
type Identity struct {
	Subject string
	Expiry  time.Time
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	cfg      Config
	client   *http.Client
	keys     *keySet
	verifier *oidc.IDTokenVerifier
	cache    tokenCache
	now      func() time.Time
}

// New returns a Verifier. It reads CAFile (a missing or bad file is an
// error now, not at the first request) but does not contact the issuer:
// Prefetch or the first token does.
func New(cfg Config) (*Verifier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.DiscoveryURL == "" {
		cfg.DiscoveryURL = cfg.Issuer
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("issuer CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("issuer CA: %s holds no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	v := &Verifier{cfg: cfg, client: &http.Client{Transport: tr, Timeout: fetchTimeout}, now: time.Now}
	v.keys = &keySet{v: v, refresh: make(chan struct{}, 1)}
	v.verifier = oidc.NewVerifier(cfg.Issuer, v.keys, &oidc.Config{
		ClientID:             cfg.Audience,
		SupportedSigningAlgs: algNames(),
		// exp is checked against a clock ClockSkew behind ours (a token
		// lives ClockSkew past its exp); nbf is checked in Verify.
		Now: func() time.Time { return v.now().Add(-ClockSkew) },
	})
	return v, nil
}

func algNames() []string {
	out := make([]string, len(algorithms))
	for i, a := range algorithms {
		out[i] = string(a)
	}
	return out
}

// Prefetch fetches the discovery document and the keys unless they are
// there already, so the first request does not wait for them.
func (v *Verifier) Prefetch(ctx context.Context) error {
	_, err := v.keys.get(ctx, "")
	return err
}

type sigErrKey struct{}

// Verify checks a raw JWT and returns whom it speaks for.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	now := v.now()
	sum := sha256.Sum256([]byte(raw))
	id, ok := v.cache.get(sum, now)
	if !ok {
		var err error
		if id, err = v.verify(ctx, raw, now); err != nil {
			return Identity{}, err
		}
		v.cache.put(sum, id, now)
	}
	if !v.allowed(id.Subject) {
		return Identity{}, &Error{Kind: Forbidden, Description: clean(fmt.Sprintf("subject %s is not one of the allowed subjects", id.Subject))}
	}
	return id, nil
}

func (v *Verifier) verify(ctx context.Context, raw string, now time.Time) (Identity, error) {
	// The key set reports its own failures, classified, through ctx: go-oidc
	// keeps only their text.
	var sigErr error
	ctx = context.WithValue(ctx, sigErrKey{}, &sigErr)
	tok, err := v.verifier.Verify(ctx, raw)
	if err != nil {
		var exp *oidc.TokenExpiredError
		var e *Error
		switch {
		case errors.As(sigErr, &e) && e.Kind == Unavailable:
			if r := v.refusedByClaims(raw, now); r != nil {
				return Identity{}, r
			}
			return Identity{}, e
		case errors.As(sigErr, &e):
			return Identity{}, e
		case errors.As(err, &exp):
			return Identity{}, &Error{Kind: Invalid, Description: "token expired at " + exp.Expiry.UTC().Format(time.RFC3339), err: err}
		}
		return Identity{}, &Error{Kind: Invalid, Description: clean(strings.TrimPrefix(err.Error(), "oidc: ")), err: err}
	}
	// go-oidc allows five minutes before nbf; hold it to ClockSkew.
	var claims struct {
		NotBefore *float64 `json:"nbf"`
	}
	if err := tok.Claims(&claims); err != nil {
		return Identity{}, &Error{Kind: Invalid, Description: "claims do not decode", err: err}
	}
	if claims.NotBefore != nil {
		nbf := time.Unix(int64(*claims.NotBefore), 0)
		if now.Add(ClockSkew).Before(nbf) {
			return Identity{}, &Error{Kind: Invalid, Description: "token not valid before " + nbf.UTC().Format(time.RFC3339)}
		}
	}
	if tok.Subject == "" {
		return Identity{}, &Error{Kind: Invalid, Description: "token has no subject"}
	}
	return Identity{Subject: tok.Subject, Expiry: tok.Expiry}, nil
}

// refusedByClaims is for when the signature cannot be checked (no keys
// yet, issuer unreachable, a kid not fetched yet). The signature comes
// first, and nothing is ever accepted without it; but a token whose claims
// refuse it (another iss, aud without ours, expired, not yet valid) gets
// 401 whatever its signature says: with a good one, for its claims, with a
// bad one, for the signature. So it is refused now rather than answered
// 503, which Knative would retry for a delivery that can never pass. Claims
// that do not decode, or lack exp, leave the answer to the signature.
func (v *Verifier) refusedByClaims(raw string, now time.Time) *Error {
	jws, err := jose.ParseSigned(raw, algorithms)
	if err != nil {
		return nil
	}
	var c struct {
		Iss string          `json:"iss"`
		Aud json.RawMessage `json:"aud"`
		Exp *float64        `json:"exp"`
		Nbf *float64        `json:"nbf"`
	}
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &c) != nil || c.Exp == nil {
		return nil
	}
	var aud []string
	if json.Unmarshal(c.Aud, &aud) != nil {
		var one string
		if json.Unmarshal(c.Aud, &one) != nil {
			return nil
		}
		aud = []string{one}
	}
	var why string
	exp := time.Unix(int64(*c.Exp), 0)
	switch {
	case c.Iss != v.cfg.Issuer:
		why = fmt.Sprintf("id token issued by a different provider, expected %q got %q", v.cfg.Issuer, c.Iss)
	case !slices.Contains(aud, v.cfg.Audience):
		why = fmt.Sprintf("expected audience %q got %q", v.cfg.Audience, aud)
	case now.Add(-ClockSkew).After(exp):
		why = "token expired at " + exp.UTC().Format(time.RFC3339)
	case c.Nbf != nil && now.Add(ClockSkew).Before(time.Unix(int64(*c.Nbf), 0)):
		why = "token not valid before " + time.Unix(int64(*c.Nbf), 0).UTC().Format(time.RFC3339)
	default:
		return nil
	}
	return &Error{Kind: Invalid, Description: clean(why + " (signature not checked: no keys from the issuer)")}
}

// allowed applies the subject list as Knative applies an EventPolicy's:
// equal ignoring case, or a prefix when the entry ends in *.
func (v *Verifier) allowed(sub string) bool {
	if len(v.cfg.Subjects) == 0 {
		return true
	}
	for _, s := range v.cfg.Subjects {
		if p, ok := strings.CutSuffix(s, "*"); ok && strings.HasPrefix(sub, p) || strings.EqualFold(s, sub) {
			return true
		}
	}
	return false
}

// clean makes s one line fit for a quoted header parameter: printable
// ASCII without quotes or backslashes, at most 200 bytes.
func clean(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			b[i] = '\''
		}
	}
	if len(b) > 200 {
		b = append(b[:197], "..."...)
	}
	return string(b)
}

// keySet is go-oidc's KeySet: the issuer's keys, fetched when missing.
type keySet struct {
	v       *Verifier
	refresh chan struct{} // held by the one fetch at a time
	state   atomic.Pointer[keyState]
}

type keyState struct {
	jwksURL  string            // from discovery; "" until discovery worked
	keys     []jose.JSONWebKey // public signing keys
	fetched  time.Time         // when keys were fetched
	tried    time.Time         // the last fetch attempt
	kidFetch time.Time         // the last fetch for a kid not among keys
	err      error             // its failure
}

func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	payload, err := k.verifySignature(ctx, raw)
	if err != nil {
		if p, ok := ctx.Value(sigErrKey{}).(*error); ok {
			*p = err
		}
	}
	return payload, err
}

func (k *keySet) verifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, algorithms)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, &Error{Kind: Invalid, Description: "not a JWT with one signature", err: err}
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, err := k.get(ctx, kid)
	if err != nil {
		return nil, err
	}
	for _, key := range keys {
		if kid != "" && key.KeyID != kid {
			continue
		}
		if payload, err := jws.Verify(key); err == nil {
			return payload, nil
		}
	}
	if kid == "" {
		return nil, &Error{Kind: Invalid, Description: "signature does not verify with any of the issuer's keys"}
	}
	return nil, &Error{Kind: Invalid, Description: clean(fmt.Sprintf("signature does not verify with the issuer's key %s", kid))}
}

// get returns the keys. It fetches them when there are none yet or they
// are older than KeysMaxAge (at most once per MinRefresh, so a dead issuer
// is not hammered), and when kid is not among them (also at most once per
// MinRefresh: the first token of a rotated key triggers a fetch at once, a
// flood of made-up kids only one every MinRefresh).
func (k *keySet) get(ctx context.Context, kid string) ([]jose.JSONWebKey, error) {
	now := k.v.now()
	unknown := func(s *keyState) bool { return kid != "" && !hasKid(s.keys, kid) }
	due := func(s *keyState) bool {
		switch {
		case s == nil:
			return true
		case s.keys == nil || now.Sub(s.fetched) > KeysMaxAge:
			return now.Sub(s.tried) >= MinRefresh
		case unknown(s):
			return now.Sub(s.kidFetch) >= MinRefresh
		}
		return false
	}
	s := k.state.Load()
	fetched := false
	if due(s) {
		// A request that finds a fetch running (the one right after start,
		// say) waits for its outcome, at most fetchTimeout, rather than
		// being answered 503 before the keys had a chance to arrive.
		select {
		case k.refresh <- struct{}{}:
		case <-ctx.Done():
			return nil, &Error{Kind: Unavailable, Description: "the issuer's keys were still being fetched when the request ended", err: ctx.Err()}
		}
		if s = k.state.Load(); due(s) {
			byKid := s != nil && s.keys != nil && unknown(s)
			s = k.fetch(ctx, s, now)
			if byKid {
				s.kidFetch = now
			}
			k.state.Store(s)
			fetched = true
		}
		<-k.refresh
	}
	switch {
	case s.keys == nil:
		return nil, &Error{Kind: Unavailable, Description: clean("the issuer's keys could not be fetched: " + s.err.Error()), err: s.err}
	case !unknown(s):
		return s.keys, nil
	case s.err != nil:
		// The issuer may have rotated to a key we cannot fetch yet.
		return nil, &Error{Kind: Unavailable, Description: clean(fmt.Sprintf("key %s unknown and the issuer's keys could not be fetched again: %v", kid, s.err)), err: s.err}
	case !fetched:
		// Not asked again this soon; a retry will tell (a 401 would send a
		// good event of a just-rotated key to the dead letter).
		return nil, &Error{Kind: Unavailable, Description: clean(fmt.Sprintf("key %s is not among the issuer's keys fetched %s ago; they are fetched again at most every %s", kid, now.Sub(s.kidFetch).Round(time.Second), MinRefresh))}
	}
	return nil, &Error{Kind: Invalid, Description: clean(fmt.Sprintf("signed with key %s, which the issuer does not publish", kid))}
}

func hasKid(keys []jose.JSONWebKey, kid string) bool {
	for i := range keys {
		if keys[i].KeyID == kid {
			return true
		}
	}
	return false
}

// fetch asks the issuer (discovery once, then its JWKS) and returns the new
// state: old keys stay in use when the fetch fails.
func (k *keySet) fetch(ctx context.Context, old *keyState, now time.Time) *keyState {
	s := &keyState{tried: now}
	if old != nil {
		s.jwksURL, s.keys, s.fetched, s.kidFetch = old.jwksURL, old.keys, old.fetched, old.kidFetch
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), fetchTimeout)
	defer cancel()
	if s.jwksURL == "" {
		var doc struct {
			Issuer  string `json:"issuer"`
			JWKSURI string `json:"jwks_uri"`
		}
		u := strings.TrimSuffix(k.v.cfg.DiscoveryURL, "/") + "/.well-known/openid-configuration"
		if s.err = k.v.getJSON(ctx, u, acceptDiscovery, &doc); s.err != nil {
			return s
		}
		switch {
		case doc.Issuer != k.v.cfg.Issuer:
			s.err = fmt.Errorf("discovery at %s names the issuer %q, not %q", u, doc.Issuer, k.v.cfg.Issuer)
			return s
		case doc.JWKSURI == "":
			s.err = fmt.Errorf("discovery at %s has no jwks_uri", u)
			return s
		}
		s.jwksURL = doc.JWKSURI
	}
	var set jose.JSONWebKeySet
	if s.err = k.v.getJSON(ctx, s.jwksURL, acceptJWKS, &set); s.err != nil {
		return s
	}
	keys := make([]jose.JSONWebKey, 0, len(set.Keys))
	for _, key := range set.Keys {
		// Only public signing keys: a symmetric key in the set must not
		// verify anything.
		if key.IsPublic() && key.Valid() && (key.Use == "" || key.Use == "sig") {
			keys = append(keys, key)
		}
	}
	if len(keys) == 0 {
		s.err = fmt.Errorf("%s holds no public signing key", s.jwksURL)
		return s
	}
	s.keys, s.fetched = keys, now
	return s
}

// The media types asked for. The Kubernetes API server negotiates strictly:
// it serves its keys only as application/jwk-set+json (RFC 7517) and
// answers 406 to Accept: application/json, and its discovery document only
// as application/json; other issuers serve keys as application/json.
const (
	acceptDiscovery = "application/json"
	acceptJWKS      = "application/jwk-set+json, application/json"
)

func (v *Verifier) getJSON(ctx context.Context, u, accept string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", accept)
	if v.cfg.TokenFile != "" {
		tok, err := os.ReadFile(v.cfg.TokenFile)
		if err != nil {
			return fmt.Errorf("token for the issuer: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := v.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxDocBytes)).Decode(into); err != nil {
		return fmt.Errorf("GET %s: %w", u, err)
	}
	return nil
}

// tokenCache remembers verified tokens by their hash.
type tokenCache struct {
	mu sync.Mutex
	m  map[[sha256.Size]byte]cached
}

type cached struct {
	id    Identity
	until time.Time
}

func (c *tokenCache) get(sum [sha256.Size]byte, now time.Time) (Identity, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.m[sum]
	if !ok || !now.Before(e.until) {
		return Identity{}, false
	}
	return e.id, true
}

func (c *tokenCache) put(sum [sha256.Size]byte, id Identity, now time.Time) {
	until := now.Add(CacheTTL)
	if id.Expiry.Before(until) {
		until = id.Expiry
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || len(c.m) >= CacheSize {
		// Full: start over rather than track ages; senders reuse a handful
		// of tokens, so this happens only under a flood of distinct ones.
		c.m = make(map[[sha256.Size]byte]cached, 64)
	}
	c.m[sum] = cached{id: id, until: until}
}

// Audience is the audience tokens must be issued for.
func (v *Verifier) Audience() string { return v.cfg.Audience }
