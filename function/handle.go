package function

import (
	"context"
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
// from what the pipeline made of the request, or from why it did not get
// there, through the one table (adapter.AnswerFor); the metrics, the log
// line and the span read that answer.
func (f *Function) Handle(w http.ResponseWriter, r *http.Request) {
	run := f.started.Load()
	if r.Method == http.MethodGet && r.URL.Path == MetricsPath {
		switch {
		case run == nil:
			f.refuse(w, r, nil, adapter.ReasonUnready, "not ready: starting")
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
	a, res := f.handle(w, r, run, mode)
	if run == nil {
		return
	}
	if run.metrics != nil {
		run.metrics.request(mode, a.Status)
		if res != nil {
			run.metrics.result(res)
		}
	}
	if span != nil {
		endRequest(span, mode, a, res)
	}
}

// handle answers one request and says how, and what the pipeline made of it
// when it got that far.
func (f *Function) handle(w http.ResponseWriter, r *http.Request, run *running, mode ingress.Mode) (adapter.Answer, *adapter.Result) {
	// Every answer counts what became of the request's events; one that
	// never reached the pipeline counts none.
	w.Header()[adapter.HeaderOutcome] = noOutcome
	switch r.Method {
	case http.MethodPost:
	case http.MethodOptions:
		// CloudEvents webhook validation handshake.
		w.Header().Set("Allow", "POST, OPTIONS")
		if r.Header.Get("WebHook-Request-Origin") != "" {
			w.Header().Set("WebHook-Allowed-Origin", "*")
		}
		w.WriteHeader(http.StatusOK)
		return answerOK, nil
	default:
		w.Header().Set("Allow", "POST, OPTIONS")
		return f.refuse(w, r, nil, adapter.ReasonMethod, "method "+r.Method+" not allowed: POST notifications or CloudEvents"), nil
	}
	if run == nil || f.stopping.Load() {
		return f.refuse(w, r, run, adapter.ReasonUnready, "not ready: starting or stopping"), nil
	}
	if d := run.auth.check(r); d.reason != adapter.ReasonNone {
		return f.refuseAuth(w, r, run, d), nil
	}
	if enc := contentEncoding(r); enc != "" {
		// A compressed body would be read as bytes and dead-lettered as
		// undecodable: say what is wrong instead.
		w.Header().Set("Connection", "close")
		return f.refuse(w, r, run, adapter.ReasonUnsupported, "Content-Encoding "+strconv.Quote(enc)+" is not supported: send the body unencoded (identity)"), nil
	}
	if why := run.pub.NotReady(); why != "" {
		// Answer a retry storm during an outage before reading or decoding
		// anything: RGW resends without backoff, thousands per second.
		return f.refuse(w, r, run, adapter.ReasonUnready, "not ready: "+why), nil
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
		return f.refuse(w, r, run, adapter.ReasonBusy, "busy: MAX_INFLIGHT_BYTES of request bodies are being processed"), nil
	case errors.Is(err, errSlowBody):
		w.Header().Set("Connection", "close")
		return f.refuse(w, r, run, adapter.ReasonSlowBody, err.Error()), nil
	case err != nil:
		return f.refuse(w, r, run, adapter.ReasonDecode, err.Error()), nil
	}
	start := time.Now()
	res := run.pipe.Handle(r.Context(), adapter.Request{Header: ingress.Header(r.Header), Body: body, Oversize: oversize})
	a := res.Answer()
	counts := res.Count()
	w.Header()[adapter.HeaderOutcome] = outcomeHeader(counts)
	if run.log.Enabled(r.Context(), slog.LevelDebug) {
		run.log.Debug("request", "mode", res.Mode.String(), "events", len(res.Outcomes), "status", a.Status,
			"reason", res.Reason.String(), "outcome", counts.String(), "duration", time.Since(start))
		for i := range res.Outcomes {
			if o := &res.Outcomes[i]; o.Status == adapter.Duplicate {
				run.log.Debug("duplicate: not published again", "event_id", o.EventID)
			}
		}
	}
	if !a.Delivered() {
		msg := summary(&res)
		if res.Reason == adapter.ReasonTooLarge {
			msg += " (MAX_BODY_BYTES)"
		}
		return f.answer(w, r, run, a, msg), &res
	}
	f.logDeadLetters(r, run, &res)
	if run.cfg.Reply && mode != ingress.Raw && len(res.Outcomes) == 1 && len(res.Outcomes[0].Published) == 1 {
		if err := reply(r.Context(), w, res.Outcomes[0].Published[0], run.cfg.ReplyType); err == nil {
			return answerOK, &res
		}
	}
	w.WriteHeader(a.Status)
	return a, &res
}

// answerOK is a delivered request answered 200 (a reply, a handshake)
// rather than 202.
var answerOK = func() adapter.Answer {
	a := adapter.AnswerFor(0, adapter.ReasonNone, adapter.FromCloudEvents)
	a.Status = http.StatusOK
	return a
}()

// noOutcome is the outcome header of an answer given before the pipeline.
var noOutcome = []string{adapter.Counts{}.String()}

// oneOutcome holds the outcome headers of a request of one event (RGW sends
// one record per POST), made once: the common answer allocates nothing.
var oneOutcome = map[adapter.Counts][]string{}

func init() {
	for _, c := range []adapter.Counts{{Published: 1}, {Duplicate: 1}, {Dropped: 1}, {DeadLettered: 1}, {Failed: 1}} {
		oneOutcome[c] = []string{c.String()}
	}
}

func outcomeHeader(c adapter.Counts) []string {
	if h, ok := oneOutcome[c]; ok {
		return h
	}
	return []string{c.String()}
}

// logDeadLetters logs one line per dead letter, with its reason, its error
// and the event id (none when the request did not decode).
func (f *Function) logDeadLetters(r *http.Request, run *running, res *adapter.Result) {
	if res.DeadLettered {
		run.failures.log(r.Context(), slog.LevelWarn, "dead-lettered", "reason", res.Reason.String(),
			"error", ingress.OneLine(res.Err), "path", r.URL.Path)
	}
	for i := range res.Outcomes {
		if o := &res.Outcomes[i]; o.Status == adapter.DeadLettered {
			run.failures.log(r.Context(), slog.LevelWarn, "dead-lettered", "reason", o.Reason.String(),
				"error", ingress.OneLine(o.Err), "event_id", o.EventID, "path", r.URL.Path)
		}
	}
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

// refuse answers a request that failed for reason before the pipeline had
// its say, from the one table (adapter.AnswerFor).
func (f *Function) refuse(w http.ResponseWriter, r *http.Request, run *running, reason adapter.Reason, msg string) adapter.Answer {
	return f.answer(w, r, run, adapter.AnswerFor(reason.Class(), reason, adapter.SenderOf(ingress.Header(r.Header))), msg)
}

// answer writes a failure's answer: its status, Retry-After when the sender
// should try again, a one-line plain-text reason; and logs one line.
func (f *Function) answer(w http.ResponseWriter, r *http.Request, run *running, a adapter.Answer, msg string) adapter.Answer {
	if a.Retry {
		retry := 1
		if run != nil {
			retry = run.cfg.RetryAfter
		}
		w.Header().Set("Retry-After", strconv.Itoa(retry))
	}
	http.Error(w, msg, a.Status)
	t := f.early
	if run != nil {
		t = run.failures
	}
	t.log(r.Context(), a.Level, "request failed",
		"status", a.Status, "reason", msg, "path", r.URL.Path, "remote", r.RemoteAddr)
	return a
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
	lv, ok := logLevels[strings.ToLower(level)]
	if !ok {
		lv = slog.LevelInfo // Validate refuses it; a logger is still needed to say so
	}
	opts := &slog.HandlerOptions{Level: lv}
	if strings.EqualFold(format, "text") {
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
