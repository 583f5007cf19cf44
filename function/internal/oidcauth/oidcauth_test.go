package oidcauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

const aud = "serving.knative.dev/service/lab/rgw-nats"

// clock is a settable now for the verifier.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newVerifier(t *testing.T, iss *testutil.Issuer) (*Verifier, *clock) {
	t.Helper()
	v, err := New(Config{Issuer: iss.Name, Audience: aud, DiscoveryURL: iss.URL, CAFile: iss.CAFile, TokenFile: iss.TokenFile})
	if err != nil {
		t.Fatal(err)
	}
	c := &clock{t: time.Now()}
	v.now = c.now
	return v, c
}

func kind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

// TestFetchLimits: the keys are fetched again for an unknown kid at most
// once per MinRefresh (in between: Unavailable, so a just-rotated key's
// token is retried rather than refused), after which an unknown kid is
// Invalid; keys older than KeysMaxAge are fetched again; verified tokens
// are not verified again within CacheTTL.
func TestFetchLimits(t *testing.T) {
	iss := testutil.NewIssuer(t, "")
	v, c := newVerifier(t, iss)
	ctx := context.Background()
	claims := iss.Claims("system:serviceaccount:lab:sender", aud)
	claims["exp"] = time.Now().Add(3 * time.Hour).Unix()
	if err := v.Prefetch(ctx); err != nil {
		t.Fatal(err)
	}
	good := iss.Sign(t, claims)
	if _, err := v.Verify(ctx, good); err != nil {
		t.Fatal(err)
	}
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	made := func(kid string) string { return testutil.SignRS256(t, stranger, kid, claims) }
	n := iss.JWKSFetches()
	if _, err := v.Verify(ctx, made("a")); kind(err) != Invalid || !strings.Contains(err.Error(), "does not publish") {
		t.Fatalf("first unknown kid: %v, want Invalid after a fetch", err)
	}
	if _, err := v.Verify(ctx, made("b")); kind(err) != Unavailable {
		t.Fatalf("second unknown kid within MinRefresh: %v, want Unavailable", err)
	}
	if got := iss.JWKSFetches() - n; got != 1 {
		t.Fatalf("%d fetches for two unknown kids within MinRefresh, want 1", got)
	}
	c.add(MinRefresh)
	if _, err := v.Verify(ctx, made("c")); kind(err) != Invalid {
		t.Fatalf("unknown kid after MinRefresh: %v, want Invalid after a fetch", err)
	}
	if got := iss.JWKSFetches() - n; got != 2 {
		t.Fatalf("%d fetches, want 2", got)
	}
	// Cached: the good token again costs no fetch even once the keys are
	// due; a new token with old keys makes one.
	c.add(KeysMaxAge + time.Second)
	n = iss.JWKSFetches()
	claims["jti"] = "2"
	if _, err := v.Verify(ctx, iss.Sign(t, claims)); err != nil {
		t.Fatal(err)
	}
	if got := iss.JWKSFetches() - n; got != 1 {
		t.Errorf("keys older than KeysMaxAge: %d fetches, want 1", got)
	}
	if _, ok := v.cache.get(sumOf(good), c.now()); ok {
		t.Error("a token is still cached past CacheTTL")
	}
}

// TestIssuerDown: without the issuer nothing verifies and the failure is
// Unavailable (never a refusal of a token that may be good), and says why
// without the token: unreachable, a discovery document of another issuer,
// discovery refused without the bearer token the issuer wants.
func TestIssuerDown(t *testing.T) {
	iss := testutil.NewIssuer(t, "")
	tok := iss.Sign(t, iss.Claims("system:serviceaccount:lab:sender", aud))
	down, err := New(Config{Issuer: iss.Name, Audience: aud, DiscoveryURL: "https://127.0.0.1:1", CAFile: iss.CAFile, TokenFile: iss.TokenFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := down.Verify(context.Background(), tok); kind(err) != Unavailable || strings.Contains(err.Error(), tok) {
		t.Fatalf("issuer down: %v, want Unavailable without the token", err)
	}
	// The discovery document must name the configured issuer.
	wrong, err := New(Config{Issuer: "https://other.example", Audience: aud, DiscoveryURL: iss.URL, CAFile: iss.CAFile, TokenFile: iss.TokenFile})
	if err != nil {
		t.Fatal(err)
	}
	claims := iss.Claims("system:serviceaccount:lab:sender", aud)
	claims["iss"] = "https://other.example"
	if _, err := wrong.Verify(context.Background(), iss.Sign(t, claims)); kind(err) != Unavailable || !strings.Contains(err.Error(), "names the issuer") {
		t.Fatalf("discovery of another issuer: %v", err)
	}
	// Without its token the issuer refuses discovery, as the API server does.
	noToken, err := New(Config{Issuer: iss.Name, Audience: aud, CAFile: iss.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := noToken.Verify(context.Background(), tok); kind(err) != Unavailable || !strings.Contains(err.Error(), "401") {
		t.Fatalf("no token for the issuer: %v", err)
	}
}

// TestIssuerDownClaims: without keys, a token whose claims refuse it
// whatever its signature is Invalid at once (a 401, not a 503 Knative would
// retry in vain), saying the signature was not checked; a token whose
// claims are fine, or within the clock skew, stays Unavailable, forged or
// not: only the signature can tell.
func TestIssuerDownClaims(t *testing.T) {
	iss := testutil.NewIssuer(t, "")
	stranger, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	down, err := New(Config{Issuer: iss.Name, Audience: aud, DiscoveryURL: "https://127.0.0.1:1", CAFile: iss.CAFile, TokenFile: iss.TokenFile})
	if err != nil {
		t.Fatal(err)
	}
	sub := "system:serviceaccount:lab:sender"
	now := time.Now()
	with := func(k string, v any) map[string]any { c := iss.Claims(sub, aud); c[k] = v; return c }
	cases := []struct {
		name string
		tok  string
		want Kind
		why  string
	}{
		{"other audience", iss.Sign(t, iss.Claims(sub, "someone-else")), Invalid, "expected audience"},
		{"audience as a string", iss.Sign(t, with("aud", "someone-else")), Invalid, "expected audience"},
		{"other issuer", iss.Sign(t, with("iss", "https://other.example")), Invalid, "different provider"},
		{"expired", iss.Sign(t, with("exp", now.Add(-2*time.Minute).Unix())), Invalid, "token expired at"},
		{"not yet valid", iss.Sign(t, with("nbf", now.Add(2*time.Minute).Unix())), Invalid, "not valid before"},
		{"other audience, forged", testutil.SignRS256(t, stranger, iss.Kid(), iss.Claims(sub, "someone-else")), Invalid, "expected audience"},
		{"good claims", iss.Sign(t, iss.Claims(sub, aud)), Unavailable, "could not be fetched"},
		{"good claims, forged", testutil.SignRS256(t, stranger, iss.Kid(), iss.Claims(sub, aud)), Unavailable, "could not be fetched"},
		{"expired within the skew", iss.Sign(t, with("exp", now.Add(-ClockSkew/2).Unix())), Unavailable, "could not be fetched"},
		{"no exp", iss.Sign(t, with("exp", nil)), Unavailable, "could not be fetched"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := down.Verify(context.Background(), tc.tok)
			if kind(err) != tc.want || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("%v, want kind %d saying %q", err, tc.want, tc.why)
			}
			if tc.want == Invalid && !strings.Contains(err.Error(), "signature not checked") {
				t.Errorf("%v does not say the signature was not checked", err)
			}
		})
	}
}

// TestFirstFetchWaits: a token that arrives while the keys are being
// fetched (the fetch right after start) waits for that fetch and is
// verified with its keys, one fetch for both, instead of a 503 before the
// keys had a chance to arrive; a request that ends first is Unavailable.
func TestFirstFetchWaits(t *testing.T) {
	iss := testutil.NewIssuer(t, "")
	v, _ := newVerifier(t, iss)
	tok := iss.Sign(t, iss.Claims("system:serviceaccount:lab:sender", aud))
	release := iss.HoldJWKS(t)
	prefetched := make(chan error, 1)
	go func() { prefetched <- v.Prefetch(context.Background()) }()
	for iss.JWKSRequests() == 0 {
		time.Sleep(time.Millisecond)
	}
	short, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := v.Verify(short, tok); kind(err) != Unavailable || !strings.Contains(err.Error(), "still being fetched") {
		t.Fatalf("request that ended during the fetch: %v, want Unavailable", err)
	}
	verified := make(chan error, 1)
	go func() {
		_, err := v.Verify(context.Background(), tok)
		verified <- err
	}()
	select {
	case err := <-verified:
		t.Fatalf("answered while the keys were still being fetched: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-verified; err != nil {
		t.Fatalf("token that waited for the first fetch: %v", err)
	}
	if err := <-prefetched; err != nil {
		t.Fatal(err)
	}
	if n := iss.JWKSRequests(); n != 1 {
		t.Errorf("%d key set requests, want 1 (the request waited for the running fetch)", n)
	}
}

func sumOf(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }

// FuzzVerify: whatever a sender puts after "Bearer ", Verify refuses it
// with a classified *Error whose description is one header-safe line that
// does not repeat the input; only the issuer's own tokens pass.
func FuzzVerify(f *testing.F) {
	iss := testutil.NewIssuer(f, "")
	v, err := New(Config{Issuer: iss.Name, Audience: aud, CAFile: iss.CAFile, TokenFile: iss.TokenFile})
	if err != nil {
		f.Fatal(err)
	}
	if err := v.Prefetch(context.Background()); err != nil {
		f.Fatal(err)
	}
	claims := iss.Claims("system:serviceaccount:lab:sender", aud)
	good := iss.Sign(f, claims)
	f.Add(good)
	f.Add(iss.Unsigned(f, claims))
	f.Add(iss.HS256WithPublicKey(f, claims))
	f.Add(good[:len(good)-4] + "AAAA")
	f.Add("a.b.c")
	f.Add("")
	f.Fuzz(func(t *testing.T, raw string) {
		_, err := v.Verify(context.Background(), raw)
		if raw == good {
			if err != nil {
				t.Fatalf("the issuer's token refused: %v", err)
			}
			return
		}
		if err == nil {
			t.Fatalf("accepted %q", raw)
		}
		var e *Error
		if !errors.As(err, &e) || e.Kind == 0 {
			t.Fatalf("unclassified error %v", err)
		}
		d := e.Description
		if strings.ContainsAny(d, "\"\\\n\r") || len(d) > 200 {
			t.Fatalf("description not fit for a header: %q", d)
		}
		if len(raw) >= 16 && strings.Contains(d, raw) {
			t.Fatalf("the description repeats the token: %q", d)
		}
	})
}

// BenchmarkVerify: a sender reusing its token (what Knative does for an
// hour) costs a hash and a map look-up; a new token costs the RSA check.
func BenchmarkVerify(b *testing.B) {
	iss := testutil.NewIssuer(b, "")
	v, err := New(Config{Issuer: iss.Name, Audience: aud, CAFile: iss.CAFile, TokenFile: iss.TokenFile})
	if err != nil {
		b.Fatal(err)
	}
	claims := iss.Claims("system:serviceaccount:lab:sender", aud)
	tok := iss.Sign(b, claims)
	if _, err := v.Verify(context.Background(), tok); err != nil {
		b.Fatal(err)
	}
	b.Run("cached", func(b *testing.B) {
		for b.Loop() {
			if _, err := v.Verify(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("new", func(b *testing.B) {
		for b.Loop() {
			v.cache = tokenCache{}
			if _, err := v.Verify(context.Background(), tok); err != nil {
				b.Fatal(err)
			}
		}
	})
}
