// Package adapter is the pipeline between RGW and NATS: it takes CloudEvents
// (already mapped from RGW records by package cloudevent), runs the optional
// Lua transform on each, names the NATS subject, encodes the CloudEvents NATS
// binding and publishes everything a request produced over the shared
// connection, then reports per event whether NATS has all of it.
//
// Its sub-packages do one thing each: rgw (decoding), cloudevent (mapping),
// subject (subject templates), lua (transforms), natsout (NATS). This package
// and its sub-packages know nothing of HTTP servers or Knative: they must not
// import net/http or package function.
package adapter

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// Publisher publishes a request's messages and says, per message, whether
// NATS has it. *natsout.Publisher is the real one.
type Publisher interface {
	Publish(ctx context.Context, msgs []natsout.Message) []error
}

// Transformer turns one event into what should be published for it; zero
// outputs drop the event. *lua.Engine is the real one.
type Transformer interface {
	Transform(ctx context.Context, ev *event.Event) ([]lua.Output, error)
}

// Pipeline processes events. Publisher and Subject are required; a nil
// Transformer publishes every event unchanged.
type Pipeline struct {
	Publisher   Publisher
	Transformer Transformer
	Subject     *subject.Template
	Encoding    natsout.Encoding
}

// Outcome is what became of one input event.
type Outcome struct {
	// Err is nil when everything produced for the event is in NATS (or the
	// transform deliberately dropped it).
	Err error
	// Published are the events that went out for it (not raw payloads), in
	// the order the transform produced them.
	Published []*event.Event
}

// ErrOutput is wrapped when a transform produced something that cannot be
// published (an invalid subject or event): retrying will not help, but
// nothing was published for the event either.
var ErrOutput = errors.New("unpublishable transform output")

// Process runs every event through the transform and publishes all results in
// one batch, so a multi-record request costs one flush or one round of acks.
// The returned slice has one Outcome per input event.
func (p *Pipeline) Process(ctx context.Context, events []event.Event) []Outcome {
	outcomes := make([]Outcome, len(events))
	msgs := make([]natsout.Message, 0, len(events))
	owners := make([]int, 0, len(events)) // msgs[j] was produced for events[owners[j]]

	for i := range events {
		ev := &events[i]
		if p.Transformer == nil {
			m, err := p.encode(ev, "", nil)
			if err != nil {
				outcomes[i].Err = fmt.Errorf("event %s: %w", ev.ID(), err)
				continue
			}
			msgs = append(msgs, m)
			owners = append(owners, i)
			outcomes[i].Published = []*event.Event{ev}
			continue
		}
		outs, err := p.Transformer.Transform(ctx, ev)
		if err != nil {
			outcomes[i].Err = fmt.Errorf("event %s: %w", ev.ID(), err)
			continue
		}
		first := len(msgs)
		for k, o := range outs {
			m, err := p.output(ev, o)
			if err != nil {
				outcomes[i].Err = fmt.Errorf("event %s: output %d: %w", ev.ID(), k, err)
				break
			}
			m.MsgID = uniqueMsgID(msgs[first:], m.MsgID, k)
			if m.Header != nil {
				m.Header.Set(nats.MsgIdHdr, m.MsgID)
			}
			msgs = append(msgs, m)
			owners = append(owners, i)
			if o.Event != nil {
				outcomes[i].Published = append(outcomes[i].Published, o.Event)
			}
		}
		if outcomes[i].Err != nil {
			// Publish all of an event's outputs or none of them.
			msgs, owners = msgs[:first], owners[:first]
			outcomes[i].Published = nil
		}
	}
	if len(msgs) == 0 {
		return outcomes
	}
	for j, err := range p.Publisher.Publish(ctx, msgs) {
		if err == nil {
			continue
		}
		o := &outcomes[owners[j]]
		if o.Err == nil {
			o.Err = fmt.Errorf("event %s: %w", events[owners[j]].ID(), err)
		}
	}
	return outcomes
}

func (p *Pipeline) output(in *event.Event, o lua.Output) (natsout.Message, error) {
	if o.Event == nil {
		if !subject.Valid(o.Subject) {
			return natsout.Message{}, fmt.Errorf("%w: raw publish to invalid subject %q", ErrOutput, o.Subject)
		}
		h := nats.Header(o.Header)
		if h == nil {
			h = nats.Header{}
		}
		return natsout.Message{Subject: o.Subject, Header: h, Data: o.Raw, MsgID: in.ID()}, nil
	}
	return p.encode(o.Event, o.Subject, nats.Header(o.Header))
}

func (p *Pipeline) encode(ev *event.Event, subj string, h nats.Header) (natsout.Message, error) {
	if subj == "" {
		subj = p.Subject.Execute(ev)
	}
	m, err := natsout.Encode(ev, subj, p.Encoding, h)
	if err != nil {
		return m, fmt.Errorf("%w: %w", ErrOutput, err)
	}
	return m, nil
}

// uniqueMsgID keeps JetStream from de-duplicating two different outputs of
// one event (a fan-out of copies that share the event id): a repeated id gets
// the output's index appended. The result depends only on the transform's
// output, so a redelivered event yields the same ids again.
func uniqueMsgID(earlier []natsout.Message, id string, k int) string {
	for _, m := range earlier {
		if m.MsgID == id {
			return id + "#" + strconv.Itoa(k)
		}
	}
	return id
}
