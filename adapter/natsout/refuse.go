package natsout

import (
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// MaxHeaderBytes is the largest header block published: JetStream refuses
// to store a message whose headers pass 64 KiB (and core mode keeps the same
// bound, so that a stream added later captures what core mode published).
const MaxHeaderBytes = 65535

// refusal says why NATS would refuse m, before anything is written to the
// shared connection: a subject nats-server cannot read (invalid, or longer
// than its protocol line: it would drop the connection, and nats.go then
// closes it for good), a header block JetStream refuses, or a message over
// the server's max_payload (from its INFO). nil: m can be published.
func (p *Publisher) refusal(m *Message) error {
	if !subject.Valid(m.Subject) {
		if len(m.Subject) > subject.MaxLen {
			return fmt.Errorf("%w: subject of %d bytes, over the %d NATS allows", ErrRejected, len(m.Subject), subject.MaxLen)
		}
		return fmt.Errorf("%w: invalid subject", ErrRejected)
	}
	hdr := HeaderLen(m.Header)
	if hdr > MaxHeaderBytes {
		return fmt.Errorf("%w: header block of %d bytes, over the %d NATS allows", ErrRejected, hdr, MaxHeaderBytes)
	}
	if max := p.MaxPayload(); max > 0 && int64(hdr+len(m.Data)) > max {
		return fmt.Errorf("%w: %w: %d bytes with headers, over the server's max_payload of %d", ErrRejected, nats.ErrMaxPayload, hdr+len(m.Data), max)
	}
	return nil
}

// MaxPayload is the largest message (headers and data) the server accepts,
// from its INFO; 0 before the first connect.
func (p *Publisher) MaxPayload() int64 {
	return p.conn().MaxPayload()
}

// HeaderLen is the size of h on the wire ("NATS/1.0\r\n", one "Key: value\r\n"
// per value, "\r\n"); 0 for no header.
func HeaderLen(h nats.Header) int {
	if len(h) == 0 {
		return 0
	}
	n := len("NATS/1.0\r\n") + 2
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + 2 + len(v) + 2
		}
	}
	return n
}

// JetStream API error codes (nats-server's jetstream_errors_generated.go)
// that no retry of the same message passes.
const (
	jsMessageTooLarge  = 10054 // message size exceeds the stream's max_msg_size or max_payload
	jsHeaderTooLarge   = 10097 // header block over 64 KiB
	jsStoreFailed      = 10077 // storing failed: a full stream with discard new, or I/O
	jsErrMaxMsgs       = "maximum messages exceeded"
	jsErrMaxBytes      = "maximum bytes exceeded"
	jsErrMaxMsgsPerSub = "maximum messages per subject exceeded"
)

// classifyAPI classifies a JetStream ack error: a message the stream refuses
// as too large, a header block too large, and a full stream that discards
// new messages are permanent (ErrRejected: the same message is refused
// again until an operator changes the stream); any other store failure
// (I/O, a stream restarting) is transient. ok is false when err is no
// JetStream API error.
func classifyAPI(err error) (_ error, ok bool) {
	var api *jetstream.APIError
	if !errors.As(err, &api) {
		return nil, false
	}
	switch api.ErrorCode {
	case jsMessageTooLarge, jsHeaderTooLarge:
		return fmt.Errorf("%w: %w", ErrRejected, err), true
	case jsStoreFailed:
		d := strings.ToLower(api.Description)
		if strings.Contains(d, jsErrMaxMsgs) || strings.Contains(d, jsErrMaxBytes) || strings.Contains(d, jsErrMaxMsgsPerSub) {
			return fmt.Errorf("%w: stream full, discarding new messages: %w", ErrRejected, err), true
		}
	}
	return nil, false
}
