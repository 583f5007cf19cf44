package adapter

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/textproto"
	"strconv"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
	"github.com/rgw-nats/rgw-nats/adapter/tracecontext"
)

// Headers of a dead letter. Its payload is the request body exactly as it
// was received; these say why it is here and how to send it again.
const (
	HeaderReason   = "Rgwnats-Reason"   // one word: ReasonScript, ReasonDecode, ...
	HeaderError    = "Rgwnats-Error"    // the error, one line
	HeaderEventID  = "Rgwnats-Event-Id" // the failed event (absent: the request did not decode)
	HeaderAttempts = "Rgwnats-Attempts" // deadline hits of the event within the poison window
	HeaderScript   = "Rgwnats-Script"   // script file, for script failures
	HeaderLine     = "Rgwnats-Line"     // script line, when known
	// HeaderTruncated marks a dead letter whose payload is only the first
	// bytes of a body over the limit (ReasonTooLarge): "<kept> of <length>"
	// bytes, the length "more" when the sender did not declare it. It
	// cannot be replayed as it is.
	HeaderTruncated = "Rgwnats-Truncated"
	// HeaderHTTPPrefix prefixes the request's own CloudEvents headers
	// (Rgwnats-Http-Ce-Id, ...), so that the dead letter is not itself taken
	// for a binary-mode CloudEvent and a replay can restore them.
	HeaderHTTPPrefix = "Rgwnats-Http-"
	// HeaderReplay is set by `rgw-nats replay` on what it sends again (the
	// dead letter's stream and sequence, STREAM#SEQ): a replay may publish
	// an event id that was dead-lettered, a sender's resend may not (it is a
	// duplicate). A dead letter made while replaying carries it too.
	HeaderReplay = "Rgwnats-Replay"
)

// DefaultDeadLetterSubject is outside rgw.>, so consumers of the events
// never see dead letters by accident.
const DefaultDeadLetterSubject = "rgwnats.deadletter.{bucket}"

// deadLetterFailures replaces every permanent failure by a dead letter and
// publishes them in one batch. A dead letter that NATS did not confirm
// leaves its event failed, transiently: the sender's retry brings it back.
func (p *Pipeline) deadLetterFailures(ctx context.Context, req Request, events []event.Event, outcomes []Outcome) {
	var msgs []binding.Message
	var owners []int
	for i := range outcomes {
		if o := &outcomes[i]; o.Status == Failed && o.Class == Permanent {
			msgs = append(msgs, p.deadLetter(req, &events[i], o.Reason, o.Err, o.Attempts))
			owners = append(owners, i)
		}
	}
	if len(msgs) == 0 {
		return
	}
	for j, err := range p.pub.Publish(ctx, msgs) {
		o := &outcomes[owners[j]]
		if err != nil {
			o.Err = fmt.Errorf("%w; its dead letter was not confirmed: %w", o.Err, err)
			o.Class, _ = classify(err)
			if o.Class == Permanent {
				// A dead letter NATS refuses for good (a subject no stream
				// captures): the sender must keep it.
				o.Class = Transient
			}
			continue
		}
		o.Status = DeadLettered
	}
}

// deadLetter builds the dead letter of ev (nil when the request did not
// decode) that failed with err.
func (p *Pipeline) deadLetter(req Request, ev *event.Event, reason Reason, err error, attempts int) binding.Message {
	h := nats.Header{}
	h.Set(HeaderReason, reason.String())
	h.Set(HeaderError, headerValue(ingress.OneLine(err)))
	subjectOf := ev
	if ev != nil {
		h.Set(HeaderEventID, headerValue(ev.ID()))
	} else {
		empty := event.New()
		subjectOf = &empty
	}
	if attempts > 0 {
		h.Set(HeaderAttempts, strconv.Itoa(attempts))
	}

	var se *lua.ScriptError
	if errors.As(err, &se) {
		h.Set(HeaderScript, se.Script)
		if se.Line > 0 {
			h.Set(HeaderLine, strconv.Itoa(se.Line))
		}
	}
	// The request's headers are copied only as far as the block stays
	// small: a dead letter must fit where its event did not.
	size := natsout.HeaderLen(h)
	for k, vs := range req.Header {
		ck := textproto.CanonicalMIMEHeaderKey(k)
		name := ck
		if strings.HasPrefix(ck, "Ce-") {
			name = HeaderHTTPPrefix + ck
		} else if ck != "Content-Type" {
			continue
		}
		for _, v := range vs {
			if n := len(name) + len(v) + 4; size+n <= maxDeadLetterHeader {
				h[name] = append(h[name], v)
				size += n
			}
		}
	}
	if r := req.Header.Get(HeaderReplay); r != "" {
		h.Set(HeaderReplay, headerValue(r))
	}
	// A resent dead letter is the same message: JetStream keeps one.
	var id string
	if ev != nil && len(ev.ID()) <= maxHeaderValue {
		id = "deadletter." + ev.ID()
	} else if ev != nil {
		sum := sha256.Sum256([]byte(ev.ID()))
		id = "deadletter.id-sha256-" + hex.EncodeToString(sum[:16])
	} else {
		// The body, or the first bytes of one over the limit: a resend has
		// the same.
		sum := sha256.Sum256(req.Body)
		id = "deadletter.sha256-" + hex.EncodeToString(sum[:16])
	}
	h.Set(binding.HeaderMsgID, id)
	// Whoever looks into the dead letter can find the trace it belongs to.
	tc := tracecontext.FromHeader(req.Header)
	if tc.IsZero() && ev != nil {
		tc = tracecontext.FromEvent(ev)
	}
	tc.SetHeader(h)
	subj := p.cfg.DeadLetter.Execute(subjectOf)
	if !subject.Valid(subj) {
		// A bucket name too long for a subject: the dead letter goes where
		// one without a bucket would, rather than nowhere.
		empty := event.New()
		subj = p.cfg.DeadLetter.Execute(&empty)
	}
	data := req.Body
	kept := len(data)
	if room := p.payloadRoom(h); room >= 0 && len(data) > room {
		kept = room
	}
	if req.Oversize != 0 || kept < len(data) {
		h.Set(HeaderTruncated, strconv.Itoa(kept)+" of "+req.size())
		// The header just added takes room too.
		if room := p.payloadRoom(h); room >= 0 && kept > room {
			kept = room
			h.Set(HeaderTruncated, strconv.Itoa(kept)+" of "+req.size())
		}
		data = data[:kept]
	}
	return binding.Message{
		Subject: subj,
		Header:  h,
		Data:    data,
		MsgID:   id,
	}
}

// Bounds of a dead letter's header block: one value, and the whole block
// (far below natsout.MaxHeaderBytes, so that the body keeps most of the
// server's max_payload).
const (
	maxHeaderValue      = 1024
	maxDeadLetterHeader = 16 << 10
)

// payloadLimiter is a Publisher that knows the largest message NATS takes:
// natsout.Publisher reads it from the server's INFO.
type payloadLimiter interface{ MaxPayload() int64 }

// payloadRoom is how many payload bytes a message with header h may carry
// (counting the Nats-Msg-Id the publisher may add); -1: no known limit.
func (p *Pipeline) payloadRoom(h nats.Header) int {
	pl, ok := p.pub.(payloadLimiter)
	if !ok {
		return -1
	}
	limit := pl.MaxPayload()
	if limit <= 0 {
		return -1
	}
	return max(0, int(limit)-natsout.HeaderLen(h)-64)
}

// headerValue keeps a value writable as a NATS header: no line breaks,
// bounded length.
func headerValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxHeaderValue {
		s = s[:maxHeaderValue]
	}
	return s
}
