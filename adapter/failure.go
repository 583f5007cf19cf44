package adapter

import (
	"context"
	"errors"

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

// Reasons name a failure in one word: the Rgwnats-Reason header of a dead
// letter, the log line, the metric label. The set is closed.
const (
	ReasonDecode   = "decode"    // the request or a record could not be decoded
	ReasonTooLarge = "too-large" // the request body is over the caller's limit
	ReasonScript   = "script"    // the Lua script failed
	ReasonLimit    = "limit"     // an event or request produced more than the bounds allow
	ReasonOutput   = "output"    // an output cannot be published (bad subject, header, event, too large)
	ReasonNoStream = "no-stream" // JetStream: no stream captures the subject
	ReasonPoison   = "poison"    // a deadline hit by the same event again and again
	ReasonTimeout  = "timeout"   // the Lua deadline (a retry may pass)
	ReasonBusy     = "busy"      // no Lua state free in time
	ReasonNATS     = "nats"      // NATS unavailable, flush or ack missing
	ReasonShutdown = "shutdown"  // the process is stopping
	ReasonTable    = "table"     // the shared RGW table could not be written
	ReasonDenied   = "denied"    // the NATS user may not publish to the subject
)

// Reasons is the closed set of reasons, for metrics whose label values must
// be known in advance.
var Reasons = [...]string{
	ReasonDecode, ReasonTooLarge, ReasonScript, ReasonLimit, ReasonOutput, ReasonNoStream, ReasonPoison,
	ReasonTimeout, ReasonBusy, ReasonNATS, ReasonShutdown, ReasonTable, ReasonDenied,
}

// Statuses lists every Status, for the same reason.
var Statuses = [...]Status{Failed, Published, Dropped, Duplicate, DeadLettered}

// failureClass is the one table from the errors the pipeline's parts return
// to what they mean. Each part classifies its errors where they arise by
// wrapping one of these sentinels; the table is read in order, so the more
// specific entries come first (a timed-out ScriptError wraps both ErrTimeout
// and ErrScript).
var failureClass = []struct {
	err    error
	class  Class
	reason string
}{
	{ErrTooLarge, Permanent, ReasonTooLarge},
	{ingress.ErrInvalid, Permanent, ReasonDecode},
	{ingress.ErrUnsupported, Permanent, ReasonDecode},
	{ErrLimit, Permanent, ReasonLimit},
	{lua.ErrLimit, Permanent, ReasonLimit},
	{lua.ErrTableUnavailable, Transient, ReasonTable},
	{lua.ErrTableFull, Permanent, ReasonLimit},
	{lua.ErrBusy, Transient, ReasonBusy},
	{lua.ErrTimeout, Transient, ReasonTimeout},
	{lua.ErrMemory, Transient, ReasonTimeout}, // the heap guard: like a deadline, poison when it repeats
	{lua.ErrClosed, Transient, ReasonShutdown},
	{natsout.ErrNoStream, Permanent, ReasonNoStream},
	{natsout.ErrDenied, Permanent, ReasonDenied},
	{natsout.ErrUnavailable, Transient, ReasonNATS},
	{ErrOutput, Permanent, ReasonOutput},
	{binding.ErrRejected, Permanent, ReasonOutput},
	{lua.ErrScript, Permanent, ReasonScript},
	{context.DeadlineExceeded, Transient, ReasonTimeout},
	{context.Canceled, Transient, ReasonShutdown},
}

// classify tells what err means. An error no part classified is taken as
// transient: retrying it can lose nothing, while a wrong "permanent" would
// turn a passing fault into a dead letter.
func classify(err error) (Class, string) {
	for _, c := range failureClass {
		if errors.Is(err, c.err) {
			return c.class, c.reason
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
