package adapter

import (
	"context"
	"errors"
	"log/slog"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
)

// Class is what a failure means for the sender.
type Class int

const (
	// Permanent: the same input fails again (bad input, a script error, an
	// output that cannot be published, a subject no stream captures, a
	// deadline that one event hits again and again). It goes to the dead
	// letter.
	Permanent Class = iota + 1
	// Transient: a retry can succeed without anyone changing anything (NATS
	// away or slow, an ack that did not come, no Lua state free, shutdown).
	Transient
)

func (c Class) String() string {
	switch c {
	case Permanent:
		return "permanent"
	case Transient:
		return "transient"
	}
	return "none"
}

// Reason names a failure in one word (String): the Rgwnats-Reason header of
// a dead letter, the log line, the metric label, the span's error.type. The
// set is closed: every Reason has one row in the answer table (answers), so
// a Reason cannot be answered with status 0.
type Reason uint8

const (
	ReasonNone        Reason = iota // no failure
	ReasonDecode                    // the request or a record could not be decoded (or its body read)
	ReasonUnsupported               // a Content-Type or Content-Encoding that cannot carry a notification
	ReasonTooLarge                  // the request body is over the caller's limit
	ReasonScript                    // the Lua script failed
	ReasonLimit                     // an event or request produced more than the bounds allow
	ReasonOutput                    // an output cannot be published (bad subject, header, event, too large)
	ReasonNoStream                  // JetStream: no stream captures the subject
	ReasonPoison                    // a deadline hit by the same event again and again
	ReasonTimeout                   // the Lua deadline (a retry may pass)
	ReasonMemory                    // the Lua heap guard stopped the call (a retry may pass)
	ReasonBusy                      // no Lua state free in time, or too many request bytes in flight
	ReasonNATS                      // NATS unavailable, flush or ack missing
	ReasonShutdown                  // the process is stopping
	ReasonTable                     // the shared RGW table could not be written
	ReasonDenied                    // the NATS user may not publish to the subject

	// Refusals of the HTTP shell, before the pipeline sees the request.
	ReasonMethod       // not POST
	ReasonUnauthorized // ingress credentials missing or wrong
	ReasonForbidden    // a valid identity that may not send
	ReasonUnready      // starting, stopping, or NATS not connected
	ReasonSlowBody     // the body did not arrive at the minimum rate

	numReasons
)

// Sender is who sent a request, as far as its answer depends on it.
type Sender uint8

const (
	// FromCloudEvents: a CloudEvents sender (Knative delivery, a Broker,
	// KafkaSource): it honours 429 and sends a 4xx to its own dead-letter
	// sink.
	FromCloudEvents Sender = iota
	// FromRGW: RGW (raw, or its cloudevents=true wrapping) retries every
	// non-2xx alike, forever on a persistent topic.
	FromRGW
)

// SenderOf tells the sender of a request from its headers.
func SenderOf(h ingress.Header) Sender {
	_, rgw := ingress.Sender(h)
	return senderOf(rgw)
}

func senderOf(fromRGW bool) Sender {
	if fromRGW {
		return FromRGW
	}
	return FromCloudEvents
}

// HTTP status codes of the answers. The adapter imports nothing of HTTP
// servers (layout_test.go); these are the numbers net/http names.
const (
	statusAccepted             = 202
	statusBadRequest           = 400
	statusUnauthorized         = 401
	statusForbidden            = 403
	statusMethodNotAllowed     = 405
	statusRequestTimeout       = 408
	statusRequestEntityTooBig  = 413
	statusUnsupportedMediaType = 415
	statusUnprocessableEntity  = 422
	statusTooManyRequests      = 429
	statusServiceUnavailable   = 503
)

// Answer is what a request is answered with and how it is recorded, read
// from the one table (AnswerFor); nothing else maps a failure to an answer.
type Answer struct {
	Reason Reason
	Class  Class // 0: delivered
	Status int   // the HTTP status code
	// Retry: send Retry-After, the sender should try again.
	Retry bool
	// Level of the request's log line.
	Level slog.Level
	// SpanError: the request's server span ends with status Error (the
	// OpenTelemetry HTTP conventions: only for 5xx).
	SpanError bool
}

// Delivered reports a 2xx answer.
func (a Answer) Delivered() bool { return a.Class == 0 }

// answers is the one table from a failure's Reason to its class and its
// answer. Knative retries 5xx, 404, 408, 409 and 429 and sends other 4xx to
// its dead-letter sink; RGW retries every non-2xx forever, which is why
// permanent failures go to our own dead letter (then: delivered, 2xx)
// unless it is turned off; these are the answers when they do not.
var answers = [numReasons]struct {
	name   string
	class  Class
	status int // the answer to a CloudEvents sender
	rgw    int // the answer to RGW when it differs (0: status)
	// poison: a failure the same event may cause again and again: counted
	// toward PoisonAttempts.
	poison bool
}{
	ReasonNone:         {"", 0, statusAccepted, 0, false},
	ReasonDecode:       {"decode", Permanent, statusBadRequest, 0, false},
	ReasonUnsupported:  {"unsupported", Permanent, statusUnsupportedMediaType, 0, false},
	ReasonTooLarge:     {"too-large", Permanent, statusRequestEntityTooBig, 0, false},
	ReasonScript:       {"script", Permanent, statusUnprocessableEntity, 0, false},
	ReasonLimit:        {"limit", Permanent, statusUnprocessableEntity, 0, false},
	ReasonOutput:       {"output", Permanent, statusUnprocessableEntity, 0, false},
	ReasonNoStream:     {"no-stream", Permanent, statusUnprocessableEntity, 0, false},
	ReasonPoison:       {"poison", Permanent, statusUnprocessableEntity, 0, false},
	ReasonTimeout:      {"timeout", Transient, statusServiceUnavailable, 0, true},
	ReasonMemory:       {"memory", Transient, statusServiceUnavailable, 0, true},
	ReasonBusy:         {"busy", Transient, statusTooManyRequests, statusServiceUnavailable, false}, // nothing wrong but the rate: 429 says so; RGW treats all non-2xx alike
	ReasonNATS:         {"nats", Transient, statusServiceUnavailable, 0, false},
	ReasonShutdown:     {"shutdown", Transient, statusServiceUnavailable, 0, false},
	ReasonTable:        {"table", Transient, statusServiceUnavailable, 0, false},
	ReasonDenied:       {"denied", Permanent, statusUnprocessableEntity, 0, false},
	ReasonMethod:       {"method", Permanent, statusMethodNotAllowed, 0, false},
	ReasonUnauthorized: {"unauthorized", Permanent, statusUnauthorized, 0, false},
	ReasonForbidden:    {"forbidden", Permanent, statusForbidden, 0, false},
	ReasonUnready:      {"unready", Transient, statusServiceUnavailable, 0, false},
	ReasonSlowBody:     {"slow-body", Permanent, statusRequestTimeout, 0, false}, // the sender's doing; Knative and RGW retry a 408
}

func (r Reason) String() string {
	if r < numReasons {
		return answers[r].name
	}
	return "unknown"
}

// Class is the class every failure of this reason has.
func (r Reason) Class() Class {
	if r < numReasons {
		return answers[r].class
	}
	return Transient
}

// AnswerFor is the answer to a request that failed for r with class c
// (ReasonNone or class 0: it was delivered), sent by s. The class is the
// reason's own but for a permanent failure whose dead letter NATS did not
// take: it is transient, since the sender must keep the event, and is
// answered as NATS unavailable is.
func AnswerFor(c Class, r Reason, s Sender) Answer {
	if r >= numReasons {
		r = ReasonNATS // never happens: the set is closed; retrying loses nothing
	}
	if c == 0 {
		r = ReasonNone
	}
	row := &answers[r]
	if c != row.class && c == Transient {
		row = &answers[ReasonNATS]
	}
	a := Answer{Reason: r, Class: row.class, Status: row.status, Level: slog.LevelWarn}
	if s == FromRGW && row.rgw != 0 {
		a.Status = row.rgw
	}
	switch row.class {
	case 0:
		a.Level = slog.LevelDebug
	case Transient:
		a.Retry = true
	}
	a.SpanError = a.Status >= 500
	return a
}

// Answer is the answer to the request: delivered when every event made it
// (published, dropped, already in NATS or dead-lettered), else the answer
// to the request's class and reason.
func (r *Result) Answer() Answer { return AnswerFor(r.Class, r.Reason, r.Sender) }

// Reasons lists every failure reason, for metrics whose label values must
// be known in advance.
var Reasons = func() (rs [numReasons - 1]Reason) {
	for i := range rs {
		rs[i] = Reason(i + 1)
	}
	return rs
}()

// Statuses lists every Status, for the same reason.
var Statuses = [...]Status{Failed, Published, Dropped, Duplicate, DeadLettered}

// failureClass is the one table from the errors the pipeline's parts return
// to what they mean. Each part classifies its errors where they arise by
// wrapping one of these sentinels; the table is read in order, so the more
// specific entries come first (a timed-out ScriptError wraps both ErrTimeout
// and ErrScript, one the heap guard stopped ErrMemory too). The class
// follows from the reason (answers).
var failureClass = []struct {
	err    error
	reason Reason
}{
	{ErrTooLarge, ReasonTooLarge},
	{ingress.ErrUnsupported, ReasonUnsupported},
	{ingress.ErrInvalid, ReasonDecode},
	{ErrLimit, ReasonLimit},
	{lua.ErrLimit, ReasonLimit},
	{lua.ErrTableUnavailable, ReasonTable},
	{lua.ErrTableFull, ReasonLimit},
	{lua.ErrBusy, ReasonBusy},
	{lua.ErrMemory, ReasonMemory}, // the heap guard: like a deadline, poison when it repeats
	{lua.ErrTimeout, ReasonTimeout},
	{lua.ErrClosed, ReasonShutdown},
	{natsout.ErrNoStream, ReasonNoStream},
	{natsout.ErrDenied, ReasonDenied},
	{natsout.ErrUnavailable, ReasonNATS},
	{ErrOutput, ReasonOutput},
	{binding.ErrRejected, ReasonOutput},
	{lua.ErrScript, ReasonScript},
	{context.DeadlineExceeded, ReasonTimeout},
	{context.Canceled, ReasonShutdown},
}

// classify tells what err means. An error no part classified is taken as
// transient: retrying it can lose nothing, while a wrong "permanent" would
// turn a passing fault into a dead letter.
func classify(err error) (Class, Reason) {
	for _, c := range failureClass {
		if errors.Is(err, c.err) {
			return c.reason.Class(), c.reason
		}
	}
	return Transient, ReasonNATS
}

// Errors of the pipeline itself.
var (
	// ErrOutput is wrapped when a transform produced something that cannot
	// be published (an invalid subject or event): retrying will not help,
	// and nothing was published for the event.
	ErrOutput = errors.New("unpublishable transform output")
	// ErrLimit is wrapped when an event's outputs pass the bytes one request
	// may produce (Config.MaxRequestBytes).
	ErrLimit = errors.New("output limit exceeded")
	// ErrTooLarge is wrapped when a request's body was over the caller's
	// limit (Request.Oversize): nothing of it was decoded.
	ErrTooLarge = errors.New("request body too large")
)
