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
	"go.opentelemetry.io/otel/trace"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
)

// Handle is the function's HTTP entry point: every path, POST only, and GET
// /metrics when the metrics are served on the main port. The answer follows
// from what the pipeline made of the request (answerOf).
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	run := f.started.Load()
	if r.Method == http.MethodGet && r.URL.Path == MetricsPath {
		switch {
		case run == nil:
			f.unavailable(w, r, nil, "not ready: starting")
			return
		case run.metricsHere:
			run.metrics.handler.ServeHTTP(w, r)
			return
		}
	}
	mode := ingress.DetectMode(ingress.Header(r.Header))
	var span trace.Span
	if run != nil && run.tracer != nil {
		var ctx context.Context
		ctx, span = startRequest(run.tracer, r)
		r = r.WithContext(ctx)
	}
	code, res := f.handle(w, r, run, mode)
	if run == nil {
		return
	}
	if run.metrics != nil {
		run.metrics.request(mode, code)
		if res != nil {
			run.metrics.result(res)
		}
	}
	if span != nil {
		endRequest(span, mode, code, res)
	}
}

// handle answers one request and says with which status code, and what the
// pipeline made of it when it got that far.
func (f *Function) handle(w http.ResponseWriter, r *http.Request, run *running, mode ingress.Mode) (int, *adapter.Result) {
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		// CloudEvents webhook validation handshake.
		w.Header().Set("Allow", "POST, OPTIONS")
		if r.Header.Get("WebHook-Request-Origin") != "" {
			w.Header().Set("WebHook-Allowed-Origin", "*")
		}
		w.WriteHeader(http.StatusOK)
		return http.StatusOK, nil
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		return f.fail(w, r, nil, http.StatusMethodNotAllowed, "method "+r.Method+" not allowed: POST notifications or CloudEvents"), nil
	}
	if run == nil || f.stopping.Load() {
		return f.unavailable(w, r, run, "not ready: starting or stopping"), nil
	}
	if !run.auth.allow(r) {
		w.Header().Set("WWW-Authenticate", `Basic realm="rgw-nats", charset="UTF-8"`)
		return f.fail(w, r, run, http.StatusUnauthorized, "missing or wrong credentials"), nil
	}
	if enc := contentEncoding(r); enc != "" {
		// A compressed body would be read as bytes and dead-lettered as
		// undecodable: say what is wrong instead.
		w.Header().Set("Connection", "close")
		return f.fail(w, r, run, answers["unsupported"].code, "Content-Encoding "+strconv.Quote(enc)+" is not supported: send the body unencoded (identity)"), nil
	}
	if !run.pub.Ready() {
		// Answer a retry storm during an outage before reading or decoding
		// anything: RGW resends without backoff, thousands per second.
		return f.unavailable(w, r, run, "NATS unavailable: not connected"), nil
	}
	if mode == ingress.Raw && run.cfg.CloseRGW {
		// RGW that keeps a connection to a process that then dies can stall a
		// persistent topic for minutes; a fresh connection per POST costs
		// little and recovers within seconds of a restart.
		w.Header().Set("Connection", "close")
	}
	// Bound the bodies held at once: 32 requests of 1 MiB, decoded,
	// transformed and dead-lettered, are most of a 128 MiB container. The
	// bytes are reserved as they are read, not as declared, and a body must
	// keep arriving (readBody): 16 senders that declare 1 MiB and send a
	// byte a second hold 16 bytes, and only for a few seconds.
	rb := bodyReader{w: w, r: r, run: run}
	defer rb.release()
	body, oversize, err := rb.read()
	switch {
	case errors.Is(err, errBusy):
		w.Header().Set("Connection", "close")
		return f.unavailable(w, r, run, "busy: MAX_INFLIGHT_BYTES of request bodies are being processed"), nil
	case errors.Is(err, errSlowBody):
		w.Header().Set("Connection", "close")
		return f.fail(w, r, run, answers["slow body"].code, err.Error()), nil
	case err != nil:
		return f.fail(w, r, run, answers["bad body"].code, err.Error()), nil
	}
	start := time.Now()
	res := run.pipe.Handle(r.Context(), adapter.Request{Header: ingress.Header(r.Header), Body: body, Oversize: oversize})
	a := answerOf(&res)
	if run.log.Enabled(r.Context(), slog.LevelDebug) {
		run.log.Debug("request", "mode", res.Mode.String(), "events", len(res.Outcomes), "status", a.code,
			"reason", res.Reason, "deadlettered", deadLettered(&res), "duration", time.Since(start))
	}
	switch {
	case a.code/100 == 2:
		if res.DeadLettered || deadLettered(&res) > 0 {
			run.failures.log(r.Context(), slog.LevelWarn, "dead-lettered", "reason", res.Reason, "error", deadLetterCause(&res), "path", r.URL.Path)
		}
		if run.cfg.Reply && mode != ingress.Raw && len(res.Outcomes) == 1 && len(res.Outcomes[0].Published) == 1 {
			if err := reply(r.Context(), w, res.Outcomes[0].Published[0], run.cfg.ReplyType); err == nil {
				return http.StatusOK, &res
			}
		}
		w.WriteHeader(a.code)
		return a.code, &res
	case a.retry:
		return f.unavailable(w, r, run, summary(&res)), &res
	default:
		msg := summary(&res)
		if errors.Is(res.Err, adapter.ErrTooLarge) {
			msg += " (MAX_BODY_BYTES)"
		}
		return f.fail(w, r, run, a.code, msg), &res
	}
}

// answer is how a request is answered.
type answer struct {
	code  int
	retry bool // 503 with Retry-After: the sender should try again
}

// answers is the one table from what became of a request to its HTTP
// answer. Knative retries 5xx, 404, 408, 409 and 429 and sends other 4xx to
// its dead-letter sink; RGW retries every non-2xx forever, which is why
// permanent failures go to our own dead letter (then: delivered) unless it
// is turned off.
var answers = map[string]answer{
	"delivered":   {http.StatusAccepted, false},              // published, dropped, duplicate or dead-lettered
	"invalid":     {http.StatusBadRequest, false},            // bad input not dead-lettered (not from RGW, or dead letter off)
	"unsupported": {http.StatusUnsupportedMediaType, false},  // a Content-Type that cannot be a notification
	"permanent":   {http.StatusUnprocessableEntity, false},   // permanent failure with the dead letter off
	"transient":   {http.StatusServiceUnavailable, true},     // NATS away, no ack, Lua deadline, busy, shutdown
	"too large":   {http.StatusRequestEntityTooLarge, false}, // body over MAX_BODY_BYTES, not dead-lettered (not from RGW, or dead letter off)
	"bad body":    {http.StatusBadRequest, false},            // the body could not be read
	"slow body":   {http.StatusRequestTimeout, false},        // the body did not arrive at the minimum rate
}

func answerOf(res *adapter.Result) answer {
	switch {
	case res.Class == 0:
		return answers["delivered"]
	case res.Class == adapter.Transient:
		return answers["transient"]
	case errors.Is(res.Err, ingress.ErrUnsupported):
		return answers["unsupported"]
	case errors.Is(res.Err, adapter.ErrTooLarge):
		return answers["too large"]
	case res.Err != nil:
		return answers["invalid"]
	}
	return answers["permanent"]
}

func deadLettered(res *adapter.Result) int {
	n := 0
	for i := range res.Outcomes {
		if res.Outcomes[i].Status == adapter.DeadLettered {
			n++
		}
	}
	if res.DeadLettered {
		n++
	}
	return n
}

func deadLetterCause(res *adapter.Result) string {
	if res.Err != nil {
		return ingress.OneLine(res.Err)
	}
	for i := range res.Outcomes {
		if o := &res.Outcomes[i]; o.Status == adapter.DeadLettered {
			return ingress.OneLine(o.Err)
		}
	}
	return ""
}

// summary is the one-line reason of a failed request.
func summary(res *adapter.Result) string {
	err := res.FirstErr()
	if err == nil {
		return "failed"
	}
	if res.Err != nil {
		return ingress.OneLine(err)
	}
	return fmt.Sprintf("%d of %d events not delivered (%s, %s): %s", res.Failed(), len(res.Outcomes), res.Class, res.Reason, ingress.OneLine(err))
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

func (f *Function) unavailable(w http.ResponseWriter, r *http.Request, run *running, msg string) int {
	retry := 1
	if run != nil {
		retry = run.cfg.RetryAfter
	}
	w.Header().Set("Retry-After", strconv.Itoa(retry))
	return f.fail(w, r, run, http.StatusServiceUnavailable, msg)
}

// fail writes a one-line plain-text reason, logs one line and returns code.
func (f *Function) fail(w http.ResponseWriter, r *http.Request, run *running, code int, msg string) int {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	io.WriteString(w, msg+"\n")
	t := f.early
	if run != nil {
		t = run.failures
	}
	t.log(r.Context(), slog.LevelWarn, "request failed",
		"status", code, "reason", msg, "path", r.URL.Path, "remote", r.RemoteAddr)
	return code
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
		t.flush(ctx, level)
	}
	if t.inWin.Add(1) > t.perSec {
		if t.dropped.Add(1) == 1 {
			// Say what was left out even if no later failure comes to do it.
			time.AfterFunc(time.Second, func() { t.flush(context.WithoutCancel(ctx), level) })
		}
		return
	}
	t.logger.Log(ctx, level, msg, args...)
}

// flush reports the failures left out since the last report.
func (t *throttle) flush(ctx context.Context, level slog.Level) {
	if n := t.dropped.Swap(0); n > 0 {
		t.logger.Log(ctx, level, "failures not logged (rate limit)", "count", n)
	}
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

// contentEncoding is the request's Content-Encoding when it is not identity
// (empty when it is, or when there is none).
func contentEncoding(r *http.Request) string {
	for _, v := range r.Header.Values("Content-Encoding") {
		for _, enc := range strings.Split(v, ",") {
			if enc = strings.TrimSpace(enc); enc != "" && !strings.EqualFold(enc, "identity") {
				return enc
			}
		}
	}
	return ""
}
