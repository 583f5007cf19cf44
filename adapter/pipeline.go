// Package adapter is the whole path from a request to NATS: decode the
// request (package ingress: raw RGW, CloudEvents binary, structured or batch,
// KafkaSource/CephSource/RGW cloudevents=true wrapping), map records to CloudEvents (cloudevent), run
// the Lua transform (lua), name the subject (subject), encode the CloudEvents
// NATS binding (binding) and publish everything the request produced in one
// batch over the shared connection (natsout). It then says, per event and
// for the request, what became of it: published, dropped, already in NATS,
// dead-lettered, or failed with a class (permanent or transient) and a
// reason.
//
// The W3C trace context of the request (its traceparent header) or of each
// event (the CloudEvents distributed-tracing extension) goes on with every
// message published for the event; with Config.Tracer set the pipeline
// records a span for each event's Lua call and publish under it.
//
// Every error is classified once (failure.go holds the one table); a
// permanent per-event failure goes to the dead letter, a recently confirmed
// event id is not published again, and a deadline one event hits again and
// again is taken as permanent.
//
// The pipeline and its parts (the NATS connection, the Lua engine, the RGW
// table) are assembled in one place, adapter/service, from one typed
// Settings; failure.go holds the one table from a failure's reason to its
// class and to the answer a sender gets (AnswerFor).
//
// This package and its sub-packages know nothing of HTTP servers or Knative:
// they must not import net/http or package function, nor link nats-server.
package adapter

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
	"github.com/rgw-nats/rgw-nats/adapter/tracecontext"
)

// Publisher publishes a request's messages and says, per message, whether
// NATS has it. *natsout.Publisher is the real one; Recorder keeps them.
type Publisher interface {
	Publish(ctx context.Context, msgs []binding.Message) []error
}

// Transformer turns one event into what should be published for it; zero
// outputs drop the event. *lua.Engine is the real one.
type Transformer interface {
	Transform(ctx context.Context, ev *event.Event) ([]lua.Output, error)
}

// checkedTransformer is a Transformer that need not check again the data of
// an event that passed binding.Check (*lua.Engine: a large record is then
// stepped over, not indexed whole).
type checkedTransformer interface {
	TransformChecked(ctx context.Context, ev *event.Event) ([]lua.Output, error)
}

// Config is everything the pipeline needs to know, parsed and checked by
// the caller (package function reads it from the environment).
type Config struct {
	Mapping  cloudevent.Options // record -> CloudEvent
	Subject  *subject.Template  // required
	Encoding binding.Encoding

	// DeadLetter is the subject template of dead letters; nil turns the
	// dead letter off (permanent failures are then answered as such).
	DeadLetter *subject.Template

	// DedupWindow and DedupMaxIDs bound the memory of confirmed event ids;
	// either zero turns duplicate suppression off.
	DedupWindow time.Duration
	DedupMaxIDs int

	// PoisonAttempts deadlines for one event id within PoisonWindow make it
	// permanent; zero never does.
	PoisonAttempts int
	PoisonWindow   time.Duration

	// EventTimeout bounds everything done for one event with a transform
	// (the Lua call and turning its outputs into messages); zero: the
	// transformer's own deadline only.
	EventTimeout time.Duration

	// MaxRequestBytes bounds the payload bytes one request may publish;
	// zero: unbounded.
	MaxRequestBytes int

	// Tracer records a span per event for the Lua call and for the publish,
	// under the span in the context Handle gets (the request's). Nil records
	// nothing and costs nothing; trace context still passes through.
	Tracer trace.Tracer
}

// Pipeline processes requests. It is safe for concurrent use.
type Pipeline struct {
	cfg    Config
	pub    Publisher
	tr     Transformer
	seen   *idWindow // confirmed ids
	poison *idWindow // deadline hits per id
	now    func() time.Time
}

// New builds the pipeline. A nil Transformer publishes every event
// unchanged.
func New(cfg Config, pub Publisher, tr Transformer) (*Pipeline, error) {
	if cfg.Subject == nil {
		return nil, errors.New("adapter: Config.Subject is required")
	}
	if pub == nil {
		return nil, errors.New("adapter: a Publisher is required")
	}
	return &Pipeline{
		cfg:    cfg,
		pub:    pub,
		tr:     tr,
		seen:   newIDWindow(cfg.DedupWindow, cfg.DedupMaxIDs),
		poison: newIDWindow(cfg.PoisonWindow, max(cfg.DedupMaxIDs, 10000)),
		now:    time.Now,
	}, nil
}

// Request is one request as it came in.
type Request struct {
	Header ingress.Header
	Body   []byte
	// Oversize is nonzero when the body was over the caller's limit and Body
	// holds only its first bytes: the declared length, or -1 when unknown.
	// Such a request fails as ErrTooLarge without being decoded, and a dead
	// letter (for RGW) carries the bytes Body holds.
	Oversize int64
}

// size is the whole body's length as a dead letter and an error tell it:
// "more" when the sender did not declare it.
func (r *Request) size() string {
	switch {
	case r.Oversize > 0:
		return strconv.FormatInt(r.Oversize, 10)
	case r.Oversize < 0:
		return "more"
	}
	return strconv.Itoa(len(r.Body))
}

// Status is what became of one event.
type Status int

const (
	Failed       Status = iota // Err says why; Class whether a retry can help
	Published                  // everything produced for it is in NATS
	Dropped                    // the transform chose to publish nothing
	Duplicate                  // confirmed recently: not published again
	DeadLettered               // failed permanently; the dead letter is in NATS
)

func (s Status) String() string {
	return [...]string{"failed", "published", "dropped", "duplicate", "deadlettered"}[s]
}

// Outcome is what became of one input event.
type Outcome struct {
	EventID string
	Status  Status
	// Err, Class and Reason describe the failure (also for a dead-lettered
	// event: what put it there).
	Err    error
	Class  Class
	Reason Reason
	// Attempts counts the deadline hits of this event id within the poison
	// window (0 when none).
	Attempts int
	// Published are the events that went out for it (not raw payloads), in
	// the order the transform produced them.
	Published []*event.Event

	// flight is this event id's flight while the request processes it: its
	// own (waits false), or another request's it waits for.
	flight *flight
	waits  bool
}

// Result is what became of one request.
type Result struct {
	Mode ingress.Mode
	// Err is a failure of the request as a whole (bad input) with its
	// class; nil when the request decoded.
	Err      error
	Outcomes []Outcome
	// Class is the request's answer: 0 when every event is published,
	// dropped, a duplicate or dead-lettered; Transient when any failure can
	// pass on a retry (a retry publishes nothing twice: confirmed ids are
	// remembered); Permanent otherwise.
	Class  Class
	Reason Reason
	// DeadLettered is set when the whole request went to the dead letter.
	DeadLettered bool
	// Sender is who sent the request: the answer depends on it (Answer).
	Sender Sender
}

// FirstErr is the first failure of the request's class, for a one-line
// answer.
func (r *Result) FirstErr() error {
	if r.Err != nil {
		return r.Err
	}
	for i := range r.Outcomes {
		if o := &r.Outcomes[i]; o.Status == Failed && o.Class == r.Class {
			return o.Err
		}
	}
	return nil
}

// Failed counts the events that did not make it.
func (r *Result) Failed() int {
	n := 0
	for i := range r.Outcomes {
		if r.Outcomes[i].Status == Failed {
			n++
		}
	}
	return n
}

// Handle decodes one request and processes its events.
func (p *Pipeline) Handle(ctx context.Context, req Request) Result {
	if req.Oversize != 0 {
		mode, fromRGW := ingress.Sender(req.Header)
		return p.refuse(ctx, req, Result{Mode: mode, Sender: senderOf(fromRGW)},
			fmt.Errorf("%w: %s bytes, over the limit of %d", ErrTooLarge, req.size(), len(req.Body)))
	}
	in, err := ingress.Decode(req.Header, req.Body, p.cfg.Mapping)
	res := Result{Mode: in.Mode, Sender: senderOf(in.FromRGW)}
	if err != nil {
		return p.refuse(ctx, req, res, err)
	}
	res.Outcomes = make([]Outcome, len(in.Events))
	defer p.abandon(res.Outcomes)
	p.process(ctx, in.Events, res.Outcomes, tracecontext.FromHeader(req.Header), true, IsReplay(req.Header))
	if p.cfg.DeadLetter != nil {
		p.deadLetterFailures(ctx, req, in.Events, res.Outcomes)
	}
	p.finish(ctx, res.Outcomes)
	res.summarize()
	return res
}

// summarize sets the request's class and reason from its events': its
// first permanent failure's, or a transient one's (a retry can help). Busy
// only when every transient failure was busy: then only the load stood in
// the way (429).
func (res *Result) summarize() {
	for i := range res.Outcomes {
		o := &res.Outcomes[i]
		if o.Status != Failed {
			continue
		}
		if res.Class == 0 || o.Class == Transient && (res.Class != Transient || res.Reason == ReasonBusy) {
			res.Class, res.Reason = o.Class, o.Reason
		}
	}
}

// IsReplay tells a request that replays a dead letter (`rgw-nats replay`
// sets HeaderReplay) from one a sender sends: only a replay publishes an
// event id that was dead-lettered; a sender's resend of it is a duplicate,
// which keeps RGW's retries from making a second dead letter.
func IsReplay(h ingress.Header) bool { return h.Get(HeaderReplay) != "" }

// refuse fails a request that cannot be processed at all (err), unless RGW
// sent it and there is a dead letter: RGW retries a refused request forever
// and resends everything queued behind it, while a CloudEvents sender
// (Knative) does not retry a 4xx and has its own dead-letter sink.
func (p *Pipeline) refuse(ctx context.Context, req Request, res Result, err error) Result {
	res.Class, res.Reason = classify(err)
	res.Err = err
	if res.Sender != FromRGW || p.cfg.DeadLetter == nil {
		return res
	}
	dl := p.deadLetter(req, nil, res.Reason, err, 0)
	now := p.now()
	if p.seen.markOf(dl.MsgID, now) == markNone {
		if errs := p.pub.Publish(ctx, []binding.Message{dl}); errs[0] != nil {
			res.Class, res.Reason = classify(errs[0])
			res.Err = fmt.Errorf("dead letter for a request that could not be processed (%w): %w", err, errs[0])
			return res
		}
		p.seen.remember(dl.MsgID, markDeadLettered, now)
	}
	res.Class, res.DeadLettered = 0, true
	return res
}

// abandon lands the flights a request still holds when it panicked, as
// transient failures: requests waiting for them must not wait forever.
func (p *Pipeline) abandon(outcomes []Outcome) {
	for i := range outcomes {
		if o := &outcomes[i]; o.flight != nil && !o.waits {
			p.seen.land(o.flight, &Outcome{EventID: o.EventID, Status: Failed, Class: Transient, Reason: ReasonShutdown,
				Err: fmt.Errorf("event %s: the request processing it failed", o.EventID)}, p.now())
			o.flight = nil
		}
	}
}

// finish lands the request's own flights with their outcomes (remembering
// the ids done or dead-lettered) and only then waits for the others': a
// request never waits while it holds a flight, so two requests carrying
// the same ids in another order cannot wait for each other.
func (p *Pipeline) finish(ctx context.Context, outcomes []Outcome) {
	now := p.now()
	for i := range outcomes {
		o := &outcomes[i]
		if o.flight == nil || o.waits {
			continue
		}
		if o.Status == Published || o.Status == Dropped || o.Status == DeadLettered {
			p.poison.forget(o.EventID)
		}
		p.seen.land(o.flight, o, now)
		o.flight = nil
	}
	for i := range outcomes {
		if o := &outcomes[i]; o.waits {
			o.flight.wait(ctx, o)
			o.flight, o.waits = nil, false
		}
	}
}

// process runs every event through the transform and publishes all results
// in one batch, so a multi-record request costs one flush or one round of
// acks; it does not dead-letter (Handle does: a dead letter carries the
// request's bytes). tc is the trace context the request's header carried
// (zero when none). checked: the events come from ingress.Decode, which
// returns only events that pass binding.Check. replay: the request replays
// a dead letter. It fills outcomes, one per event; the caller lands the
// flights they hold (finish).
func (p *Pipeline) process(ctx context.Context, events []event.Event, outcomes []Outcome, tc tracecontext.Context, checked, replay bool) {
	var spans []eventSpans // with a tracer
	if p.cfg.Tracer != nil {
		spans = make([]eventSpans, len(events))
	}
	msgs := make([]binding.Message, 0, len(events))
	owners := make([]int, 0, len(events)) // msgs[j] was produced for events[owners[j]]
	now := p.now()
	budget := p.cfg.MaxRequestBytes

	for i := range events {
		ev := &events[i]
		o := &outcomes[i]
		o.EventID = ev.ID()
		done, f, own := p.seen.claim(o.EventID, now, replay)
		switch {
		case done:
			o.Status = Duplicate
			continue
		case !own:
			o.Status = Duplicate // until the flight it waits for lands
			o.flight, o.waits = f, true
			continue
		}
		o.flight = f
		first := len(msgs)
		et := eventTrace{ctx: ctx, out: tc}
		if et.out.IsZero() {
			et.out = tracecontext.FromEvent(ev)
		}
		if p.cfg.Tracer != nil {
			et.parent(tc)
		}
		var err error
		msgs, err = p.produce(ev, o, msgs, &budget, &et, checked)
		if spans != nil {
			spans[i] = eventSpans{lua: et.luaSpan, luaEnd: et.luaEnd, luaFailed: et.luaFailed, publish: et.span}
		}
		if err != nil {
			msgs = msgs[:first] // publish all of an event's outputs or none
			o.Published = nil
			p.fail(o, fmt.Errorf("event %s: %w", o.EventID, err), now)
			continue
		}
		if len(msgs) == first {
			o.Status = Dropped
			continue
		}
		for range len(msgs) - first {
			owners = append(owners, i)
		}
	}
	if len(msgs) > 0 {
		for j, err := range p.pub.Publish(ctx, msgs) {
			if o := &outcomes[owners[j]]; err != nil && o.Err == nil {
				p.fail(o, fmt.Errorf("event %s: %w", o.EventID, err), now)
			}
		}
	}
	for i := range outcomes {
		o := &outcomes[i]
		if o.Status == Failed && o.Err == nil {
			o.Status = Published
		}
		if spans != nil {
			spans[i].end(o)
		}
	}
}

// eventTrace is the trace of one event on its way through produce.
type eventTrace struct {
	ctx   context.Context      // the event's; with a tracer, holding the parent of its spans
	out   tracecontext.Context // what its messages carry
	links []trace.Link         // of its spans
	span  trace.Span           // the publish span, once started
	// luaSpan is the transform's span, ended with the others once the
	// event's outcome is known; luaFailed: the transform returned an error.
	luaSpan   trace.Span
	luaEnd    time.Time
	luaFailed bool
}

// eventSpans are an event's spans, ended with its outcome: a span says what
// the outcome says (a deadline hit once more is poison, permanent), never
// what classifying its error again would.
type eventSpans struct {
	lua       trace.Span
	luaEnd    time.Time // when the call returned: the span's end
	luaFailed bool
	publish   trace.Span
}

func (s *eventSpans) end(o *Outcome) {
	if s.lua != nil {
		if s.luaFailed {
			failSpan(s.lua, o)
		}
		s.lua.End(trace.WithTimestamp(s.luaEnd))
	}
	if s.publish != nil {
		if o.Err != nil && o.Status != Published {
			failSpan(s.publish, o)
		}
		s.publish.End()
	}
}

func failSpan(span trace.Span, o *Outcome) {
	span.SetAttributes(attribute.String("error.type", o.Reason.String()), attribute.String("rgwnats.failure", o.Class.String()))
	span.SetStatus(codes.Error, o.Err.Error())
}

// parent chooses the parent of the event's spans: the request's span when
// the request header carried a trace context or the event did not, else the
// event's own trace (its extension), linked to the request's span so that a
// batch of events from many traces still shows which request carried them.
func (et *eventTrace) parent(header tracecontext.Context) {
	sc := trace.SpanContextFromContext(et.ctx)
	switch {
	case !header.IsZero() && !sc.IsValid():
		et.ctx = trace.ContextWithRemoteSpanContext(et.ctx, header.SpanContext())
	case header.IsZero() && !et.out.IsZero():
		if sc.IsValid() {
			et.links = []trace.Link{{SpanContext: sc}}
		}
		et.ctx = trace.ContextWithRemoteSpanContext(et.ctx, et.out.SpanContext())
	}
}

// startPublish starts the event's publish span, whose context its messages
// then carry: a consumer's span continues under it.
func (p *Pipeline) startPublish(ev *event.Event, et *eventTrace) {
	if p.cfg.Tracer == nil || et.span != nil {
		return
	}
	_, et.span = p.cfg.Tracer.Start(et.ctx, "publish", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithLinks(et.links...), trace.WithAttributes(
			attribute.String("messaging.system", "nats"),
			attribute.String("messaging.operation.type", "send"),
			attribute.String("cloudevents.event_id", ev.ID()),
			attribute.String("cloudevents.event_type", ev.Type())))
	et.out = tracecontext.FromSpanContext(et.span.SpanContext())
}

// transform runs the transformer, in a span of its own with a tracer.
// checked: ev passed binding.Check.
func (p *Pipeline) transform(ctx context.Context, ev *event.Event, et *eventTrace, checked bool) ([]lua.Output, error) {
	if p.cfg.Tracer == nil {
		return p.callTransform(ctx, ev, checked)
	}
	sctx, span := p.cfg.Tracer.Start(ctx, "lua transform", trace.WithLinks(et.links...),
		trace.WithAttributes(attribute.String("cloudevents.event_id", ev.ID())))
	outs, err := p.callTransform(sctx, ev, checked)
	span.SetAttributes(attribute.Int("rgwnats.outputs", len(outs)))
	et.luaSpan, et.luaEnd, et.luaFailed = span, time.Now(), err != nil
	return outs, err
}

func (p *Pipeline) callTransform(ctx context.Context, ev *event.Event, checked bool) ([]lua.Output, error) {
	if ct, ok := p.tr.(checkedTransformer); ok && checked {
		return ct.TransformChecked(ctx, ev)
	}
	return p.tr.Transform(ctx, ev)
}

// produce appends the messages for one event: the transform's outputs, or
// the event itself without a transform, each carrying the event's trace
// context.
func (p *Pipeline) produce(ev *event.Event, o *Outcome, msgs []binding.Message, budget *int, et *eventTrace, checked bool) ([]binding.Message, error) {
	ctx := et.ctx
	if p.tr == nil {
		p.startPublish(ev, et)
		et.out.SetExtension(ev) // a traceparent we wrote: still checked
		m, err := p.encode(ev, "", nil, checked)
		et.out.SetHeader(m.Header)
		if err != nil {
			return msgs, err
		}
		if err := p.spend(budget, &m); err != nil {
			return msgs, err
		}
		o.Published = []*event.Event{ev}
		return append(msgs, m), nil
	}
	if p.cfg.EventTimeout > 0 {
		ectx := newEventContext(ctx, p.cfg.EventTimeout)
		defer ectx.release()
		ctx = ectx
	}
	outs, err := p.transform(ctx, ev, et, checked)
	if err != nil {
		return msgs, err
	}
	if len(outs) > 0 {
		p.startPublish(ev, et)
	}
	first := len(msgs)
	for k, out := range outs {
		// The deadline covers turning outputs into messages too: a script
		// that returns a thousand large clones must not take seconds after
		// its own call ended.
		if err := ctx.Err(); err != nil {
			return msgs, fmt.Errorf("output %d: %w: encoding the outputs: %w", k, lua.ErrTimeout, err)
		}
		et.out.SetExtension(out.Event)
		m, err := p.output(ev, out, checked)
		if err != nil {
			return msgs, fmt.Errorf("output %d: %w", k, err)
		}
		et.out.SetHeader(m.Header)
		if err := p.spend(budget, &m); err != nil {
			return msgs, fmt.Errorf("output %d: %w", k, err)
		}
		m.MsgID = uniqueMsgID(msgs[first:], m.MsgID, k)
		if m.Header != nil {
			m.Header.Set(binding.HeaderMsgID, m.MsgID)
		}
		msgs = append(msgs, m)
		if out.Event != nil {
			o.Published = append(o.Published, out.Event)
		}
	}
	return msgs, nil
}

func (p *Pipeline) spend(budget *int, m *binding.Message) error {
	if p.cfg.MaxRequestBytes <= 0 {
		return nil
	}
	*budget -= len(m.Data)
	if *budget < 0 {
		return fmt.Errorf("%w: the request's messages pass %d bytes", ErrLimit, p.cfg.MaxRequestBytes)
	}
	return nil
}

// fail records a failure, classified once here. A deadline that the same
// event hits PoisonAttempts times is not going to pass on the next try.
func (p *Pipeline) fail(o *Outcome, err error, now time.Time) {
	o.Status, o.Err = Failed, err
	o.Class, o.Reason = classify(err)
	if !answers[o.Reason].poison || p.cfg.PoisonAttempts <= 0 {
		return
	}
	o.Attempts = p.poison.add(o.EventID, now)
	if o.Attempts >= p.cfg.PoisonAttempts {
		o.Class, o.Reason = Permanent, ReasonPoison
		o.Err = fmt.Errorf("%w (deadline hit %d times within %v: taken as permanent)", err, o.Attempts, p.cfg.PoisonWindow)
	}
}

func (p *Pipeline) output(in *event.Event, o lua.Output, checked bool) (binding.Message, error) {
	if o.Event == nil {
		if !subject.Valid(o.Subject) {
			return binding.Message{}, fmt.Errorf("%w: raw publish to invalid subject %q", ErrOutput, subject.Short(o.Subject))
		}
		h := nats.Header(o.Header)
		if h == nil {
			h = nats.Header{}
		}
		return binding.Message{Subject: o.Subject, Header: h, Data: o.Raw, MsgID: in.ID()}, nil
	}
	h := nats.Header(o.Header)
	switch {
	case checked && o.Event == in:
		// The event as it came, untouched by the script (a filter, a
		// router): checked once is enough.
		return p.encode(o.Event, o.Subject, h, true)
	case o.DataJSON || checked && sameData(o.Event, in):
		// Attributes changed, data the engine wrote as JSON or kept as
		// it came: check the attributes, not the data again.
		return p.encodeDataChecked(o.Event, o.Subject, h)
	}
	return p.encode(o.Event, o.Subject, h, false)
}

// sameData reports whether a holds b's data itself (not a copy), with the
// same content type: data that was checked with b.
func sameData(a, b *event.Event) bool {
	x, y := a.DataEncoded, b.DataEncoded
	return len(x) == len(y) && cap(x) == cap(y) && (len(x) == 0 || &x[0] == &y[0]) &&
		a.DataBase64 == b.DataBase64 && a.DataContentType() == b.DataContentType()
}

func (p *Pipeline) encodeDataChecked(ev *event.Event, subj string, h nats.Header) (binding.Message, error) {
	if subj == "" {
		subj = p.cfg.Subject.Execute(ev)
	}
	m, err := binding.EncodeDataChecked(ev, subj, p.cfg.Encoding, h)
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrOutput, err)
	}
	return m, nil
}

// encode turns ev into a message; checked: ev passed binding.Check and has
// not changed since (it comes from ingress, untouched by a script).
func (p *Pipeline) encode(ev *event.Event, subj string, h nats.Header, checked bool) (binding.Message, error) {
	if subj == "" {
		subj = p.cfg.Subject.Execute(ev)
	}
	encode := binding.Encode
	if checked {
		encode = binding.EncodeChecked
	}
	m, err := encode(ev, subj, p.cfg.Encoding, h)
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrOutput, err)
	}
	return m, nil
}

// uniqueMsgID keeps JetStream from de-duplicating two different outputs of
// one event (a fan-out of copies that share the event id): a repeated id gets
// the output's index appended. The result depends only on the transform's
// output, so a redelivered event yields the same ids again.
func uniqueMsgID(earlier []binding.Message, id string, k int) string {
	for _, m := range earlier {
		if m.MsgID == id {
			return id + "#" + strconv.Itoa(k)
		}
	}
	return id
}

// HeaderOutcome is the HTTP answer's header that counts what became of the
// request's events (Result.Count): every answer carries it, so that a
// sender, `rgw-nats send` and `rgw-nats replay` can tell a duplicate or a
// dead letter from a publish behind the same 202.
const HeaderOutcome = "Rgwnats-Outcome"

// Counts are a request's events by what became of them.
type Counts struct {
	Published, Duplicate, Dropped, DeadLettered, Failed int
}

// String is the value of HeaderOutcome: a structured-field dictionary
// (RFC 8941) of integers, always all five, in this order:
// "published=1, duplicate=0, dropped=0, deadlettered=0, failed=0".
func (c Counts) String() string {
	b := make([]byte, 0, 72)
	for i, kv := range [...]struct {
		k string
		v int
	}{{"published", c.Published}, {"duplicate", c.Duplicate}, {"dropped", c.Dropped}, {"deadlettered", c.DeadLettered}, {"failed", c.Failed}} {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, kv.k...)
		b = append(b, '=')
		b = strconv.AppendInt(b, int64(kv.v), 10)
	}
	return string(b)
}

// Count counts the request's events by outcome. A request that failed as a
// whole (it did not decode) counts as one event: dead-lettered, or failed.
func (r *Result) Count() Counts {
	var c Counts
	switch {
	case r.DeadLettered:
		c.DeadLettered++
	case r.Err != nil:
		c.Failed++
	}
	for i := range r.Outcomes {
		switch r.Outcomes[i].Status {
		case Published:
			c.Published++
		case Duplicate:
			c.Duplicate++
		case Dropped:
			c.Dropped++
		case DeadLettered:
			c.DeadLettered++
		default:
			c.Failed++
		}
	}
	return c
}
