package function

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/function/internal/oidcauth"
)

// authenticator checks the optional ingress credentials: HTTP Basic, a
// static bearer token (both compared in constant time) and OIDC bearer JWTs
// (Knative Eventing's authentication-oidc). Any one of those configured
// suffices.
type authenticator struct {
	user, pass, token [sha256.Size]byte
	basic, bearer     bool
	oidc              *oidcauth.Verifier // nil: OIDC not configured
}

// authDecision is a refused request's answer; ReasonNone lets it in.
type authDecision struct {
	reason     adapter.Reason // unauthorized (401), forbidden (403), unready (503: the issuer cannot be reached)
	challenges []string       // WWW-Authenticate values
	msg        string         // one line for the sender and the log, never a credential
}

const (
	basicChallenge  = `Basic realm="rgw-nats", charset="UTF-8"`
	bearerChallenge = `Bearer realm="rgw-nats"`
)

// oidc is the OIDC part of the configuration, nil when not configured.
func (c *Config) oidc() *oidcauth.Config {
	if c.AuthOIDCIssuer == "" {
		return nil
	}
	oc := &oidcauth.Config{
		Issuer:       c.AuthOIDCIssuer,
		Audience:     c.AuthOIDCAudience,
		DiscoveryURL: c.AuthOIDCDiscovery,
		CAFile:       c.AuthOIDCCA,
		TokenFile:    c.AuthOIDCTokenFile,
	}
	for s := range strings.SplitSeq(c.AuthOIDCSubjects, ",") {
		if s = strings.TrimSpace(s); s != "" {
			oc.Subjects = append(oc.Subjects, s)
		}
	}
	return oc
}

// namespacePlaceholder in AUTH_OIDC_SUBJECTS stands for the pod's own
// namespace, so that one shipped value, system:serviceaccount:{namespace}:*,
// says what Knative's default authorization says (allow-same-namespace)
// wherever the overlay is applied. Serving forbids the downward API by
// default; the namespace comes from the service-account volume instead, the
// file "namespace" beside AUTH_OIDC_TOKEN_FILE.
const namespacePlaceholder = "{namespace}"

var errNamespaceFile = errors.New(namespacePlaceholder + ` is read from the file "namespace" beside AUTH_OIDC_TOKEN_FILE, which is not set`)

// placeNamespace puts the pod's namespace into the allowed subjects that
// name the placeholder.
func placeNamespace(oc *oidcauth.Config) error {
	if !slices.ContainsFunc(oc.Subjects, func(s string) bool { return strings.Contains(s, namespacePlaceholder) }) {
		return nil
	}
	ns, err := podNamespace(oc.TokenFile)
	if err != nil {
		return err
	}
	for i, s := range oc.Subjects {
		oc.Subjects[i] = strings.ReplaceAll(s, namespacePlaceholder, ns)
	}
	return nil
}

// podNamespace reads the namespace Kubernetes mounts beside the pod's
// service-account token.
func podNamespace(tokenFile string) (string, error) {
	if tokenFile == "" {
		return "", errNamespaceFile
	}
	path := filepath.Join(filepath.Dir(tokenFile), "namespace")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", namespacePlaceholder, err)
	}
	ns := strings.TrimSpace(string(b))
	if !dnsLabel(ns) {
		return "", fmt.Errorf("%s: %s holds %.64q, not a namespace name", namespacePlaceholder, path, ns)
	}
	return ns, nil
}

// dnsLabel reports whether s is a Kubernetes namespace name (RFC 1123 label).
func dnsLabel(s string) bool {
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func newAuthenticator(c *Config) (authenticator, error) {
	a := authenticator{basic: c.AuthUsername != "", bearer: c.AuthToken != ""}
	a.user = sha256.Sum256([]byte(c.AuthUsername))
	a.pass = sha256.Sum256([]byte(c.AuthPassword))
	a.token = sha256.Sum256([]byte(c.AuthToken))
	if oc := c.oidc(); oc != nil {
		if err := placeNamespace(oc); err != nil {
			return a, fmt.Errorf("configuration: AUTH_OIDC_SUBJECTS: %w", err)
		}
		v, err := oidcauth.New(*oc)
		if err != nil {
			return a, fmt.Errorf("configuration: AUTH_OIDC_*: %w", err)
		}
		a.oidc = v
	}
	return a, nil
}

// prefetch asks the OIDC issuer for its keys in the background, so that the
// first delivery does not wait for them; a failure is retried by the
// requests that need the keys.
func (a *authenticator) prefetch(log *slog.Logger) {
	if a.oidc == nil {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		start := time.Now()
		if err := a.oidc.Prefetch(ctx); err != nil {
			log.Warn("OIDC issuer keys not fetched yet; requests with a token will try again", "error", err.Error())
			return
		}
		// Once per process: says the issuer is usable, and how soon.
		log.Info("OIDC issuer keys fetched", "audience", a.oidc.Audience(), "took", time.Since(start).Round(time.Millisecond).String())
	}()
}

// check compares hashes for the static credentials, so neither the content
// nor the length of a secret shows in the time taken.
func (a *authenticator) check(r *http.Request) authDecision {
	if !a.basic && !a.bearer && a.oidc == nil {
		return authDecision{}
	}
	tok, isBearer := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if a.bearer && isBearer {
		t := sha256.Sum256([]byte(tok))
		if subtle.ConstantTimeCompare(t[:], a.token[:]) == 1 {
			return authDecision{}
		}
	}
	if a.basic {
		if u, p, ok := r.BasicAuth(); ok {
			uh, ph := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
			okUser := subtle.ConstantTimeCompare(uh[:], a.user[:])
			okPass := subtle.ConstantTimeCompare(ph[:], a.pass[:])
			if okUser&okPass == 1 {
				return authDecision{}
			}
		}
	}
	d := authDecision{reason: adapter.ReasonUnauthorized, msg: "missing or wrong credentials"}
	if a.basic {
		d.challenges = append(d.challenges, basicChallenge)
	}
	if a.oidc == nil {
		if a.bearer {
			d.challenges = append(d.challenges, bearerChallenge)
		}
		return d
	}
	if !isBearer || tok == "" {
		// RFC 6750: no error code when the request carried no token.
		d.challenges = append(d.challenges, bearerChallenge)
		if r.Header.Get("Authorization") == "" {
			d.msg = "missing credentials: a bearer JWT for audience " + a.oidc.Audience() + " is required"
		}
		return d
	}
	_, err := a.oidc.Verify(r.Context(), tok)
	if err == nil {
		return authDecision{}
	}
	var e *oidcauth.Error
	if !errors.As(err, &e) {
		e = &oidcauth.Error{Kind: oidcauth.Invalid, Description: "token refused"}
	}
	switch e.Kind {
	case oidcauth.Unavailable:
		return authDecision{reason: adapter.ReasonUnready, msg: "OIDC: " + e.Description}
	case oidcauth.Forbidden:
		d.reason = adapter.ReasonForbidden
		d.challenges = []string{`Bearer realm="rgw-nats", error="insufficient_scope", error_description="` + e.Description + `"`}
	default:
		d.challenges = append(d.challenges, `Bearer realm="rgw-nats", error="invalid_token", error_description="`+e.Description+`"`)
	}
	d.msg = "OIDC token refused: " + e.Description
	return d
}

// refuseAuth answers a request the authenticator refused.
func (f *Function) refuseAuth(w http.ResponseWriter, r *http.Request, run *running, d authDecision) adapter.Answer {
	for _, c := range d.challenges {
		w.Header().Add("WWW-Authenticate", c)
	}
	return f.refuse(w, r, run, d.reason, d.msg)
}
