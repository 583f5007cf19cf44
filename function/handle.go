package function

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
)

// Handle is the function's HTTP entry point: every path, POST only.
//
//	202            every event is in NATS (or was dropped on purpose by Lua)
//	200 + event    the same, with REPLY=true and a single CloudEvent delivered
//	400, 413, 415  the request is wrong; nothing was published
//	401            ingress auth is configured and the request lacks it
//	405            not a POST
//	500, 503       something failed; Retry-After is set and the sender retries
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		// CloudEvents webhook validation handshake.
		w.Header().Set("Allow", "POST, OPTIONS")
		if r.Header.Get("WebHook-Request-Origin") != "" {
			w.Header().Set("WebHook-Allowed-Origin", "*")
		}
		w.WriteHeader(http.StatusOK)
		return
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		f.reject(w, r, &httpError{code: http.StatusMethodNotAllowed, msg: "method " + r.Method + " not allowed: POST notifications or CloudEvents"})
		return
	}
	run := f.started.Load()
	if run == nil || f.stopping.Load() {
		f.unavailable(w, r, "not ready: starting or stopping")
		return
	}
	if !run.auth.allow(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="rgw-nats", charset="UTF-8"`)
		f.reject(w, r, &httpError{code: http.StatusUnauthorized, msg: "missing or wrong credentials"})
		return
	}
	if !run.pub.Ready() {
		// Answer a retry storm during an outage before reading or decoding
		// anything: RGW resends without backoff, thousands per second.
		f.unavailable(w, r, "NATS unavailable: not connected")
		return
	}
	mode := DetectMode(r.Header)
	if mode == ModeRaw && run.cfg.CloseRGW {
		// RGW that keeps a connection to a process that then dies can stall a
		// persistent topic for minutes; a fresh connection per POST costs
		// little and recovers within seconds of a restart.
		w.Header().Set("Connection", "close")
	}
	body, err := readBody(r, w, run.cfg.MaxBodyBytes)
	if err != nil {
		f.reject(w, r, err)
		return
	}
	_, events, err := Decode(r.Context(), r.Header, body, run.mapping)
	if err != nil {
		f.reject(w, r, err)
		return
	}
	outcomes := run.pipe.Process(r.Context(), events)
	f.answer(w, r, run, mode, outcomes)
}

func (f *Function) answer(w http.ResponseWriter, r *http.Request, run *running, mode Mode, outcomes []adapter.Outcome) {
	var (
		failed   int
		first    error
		retry    = true
		outCount int
	)
	for _, o := range outcomes {
		outCount += len(o.Published)
		if o.Err == nil {
			continue
		}
		failed++
		if first == nil {
			first = o.Err
		}
		if !transient(o.Err) {
			retry = false
		}
	}
	if failed > 0 {
		msg := fmt.Sprintf("%d of %d events not delivered: %s", failed, len(outcomes), oneLine(first))
		if retry {
			f.unavailable(w, r, msg)
			return
		}
		// A script error or an unpublishable output: still answered with a
		// 5xx so that the event is not lost (RGW and Knative retry), and a
		// fixed script can take it.
		w.Header().Set("Retry-After", strconv.Itoa(run.cfg.RetryAfter))
		f.fail(w, r, http.StatusInternalServerError, msg)
		return
	}
	if run.cfg.Reply && mode != ModeRaw && len(outcomes) == 1 && outCount == 1 {
		if err := reply(r.Context(), w, outcomes[0].Published[0], run.cfg.ReplyType); err == nil {
			return
		}
	}
	w.WriteHeader(http.StatusAccepted)
}

// transient reports whether retrying the same request can succeed without
// anyone changing anything: NATS was away or slow, a Lua call ran out of
// time, or the function is shutting down.
func transient(err error) bool {
	return errors.Is(err, natsout.ErrUnavailable) || errors.Is(err, lua.ErrTimeout) || errors.Is(err, lua.ErrClosed) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled)
}

// reply answers a Knative delivery with the published event, its type
// suffixed so that the Trigger that delivered it never matches the reply.
func reply(ctx context.Context, w http.ResponseWriter, published *event.Event, suffix string) error {
	ev := published.Clone()
	if suffix != "" && !strings.HasSuffix(ev.Type(), suffix) {
		ev.SetType(ev.Type() + suffix)
	}
	return cehttp.WriteResponseWriter(ctx, binding.ToMessage(&ev), http.StatusOK, w)
}

func (f *Function) unavailable(w http.ResponseWriter, r *http.Request, msg string) {
	retry := 1
	if run := f.started.Load(); run != nil {
		retry = run.cfg.RetryAfter
	}
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	f.fail(w, r, http.StatusServiceUnavailable, msg)
}

func (f *Function) reject(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	if !errors.As(err, &he) {
		he = &httpError{code: http.StatusBadRequest, msg: oneLine(err)}
	}
	f.fail(w, r, he.code, he.msg)
}

// fail writes a one-line plain-text reason and logs one line.
func (f *Function) fail(w http.ResponseWriter, r *http.Request, code int, msg string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
	if f.failures != nil {
		f.failures.log(r.Context(), slog.LevelWarn, "request failed",
			"status", code, "reason", msg, "path", r.URL.Path, "remote", r.RemoteAddr)
	}
}

// authenticator checks optional ingress credentials in constant time.
type authenticator struct {
	user, pass, token [sha256.Size]byte
	basic, bearer     bool
}

func newAuthenticator(c *Config) authenticator {
	a := authenticator{basic: c.AuthUsername != "", bearer: c.AuthToken != ""}
	a.user = sha256.Sum256([]byte(c.AuthUsername))
	a.pass = sha256.Sum256([]byte(c.AuthPassword))
	a.token = sha256.Sum256([]byte(c.AuthToken))
	return a
}

// allow compares hashes, so neither the content nor the length of a secret
// shows in the time taken.
func (a *authenticator) allow(r *http.Request) bool {
	if !a.basic && !a.bearer {
		return true
	}
	if a.bearer {
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			t := sha256.Sum256([]byte(tok))
			if subtle.ConstantTimeCompare(t[:], a.token[:]) == 1 {
				return true
			}
		}
	}
	if a.basic {
		if u, p, ok := r.BasicAuth(); ok {
			uh, ph := sha256.Sum256([]byte(u)), sha256.Sum256([]byte(p))
			okUser := subtle.ConstantTimeCompare(uh[:], a.user[:])
			okPass := subtle.ConstantTimeCompare(ph[:], a.pass[:])
			return okUser&okPass == 1
		}
	}
	return false
}

// throttle logs failures one line each, up to a rate; beyond it (a retry
// storm from RGW against a NATS outage can be thousands per second) it counts
// and reports the number left out once per second.
type throttle struct {
	logger  *slog.Logger
	perSec  int64
	window  atomic.Int64 // unix second of the current window
	inWin   atomic.Int64
	dropped atomic.Int64
}

const failureLogRate = 20

func newThrottle(l *slog.Logger, perSec int64) *throttle {
	return &throttle{logger: l, perSec: perSec}
}

func (t *throttle) log(ctx context.Context, level slog.Level, msg string, args ...any) {
	now := time.Now().Unix()
	if w := t.window.Load(); w != now && t.window.CompareAndSwap(w, now) {
		t.inWin.Store(0)
		if n := t.dropped.Swap(0); n > 0 {
			t.logger.Log(ctx, level, "failures not logged (rate limit)", "count", n)
		}
	}
	if t.inWin.Add(1) > t.perSec {
		t.dropped.Add(1)
		return
	}
	t.logger.Log(ctx, level, msg, args...)
}

// NewLogger builds the service's logger: JSON (default) or text, at a level.
func NewLogger(w io.Writer, level, format string) *slog.Logger {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}
