// Package ingress turns one request, its headers and body, into the events it
// carries: one CloudEvent per RGW record, wherever the records came from (a
// raw RGW POST, RGW's own cloudevents=true mode, a Knative KafkaSource or
// CephSource delivery, a CloudEvents batch), and any other CloudEvent as it
// is. The mode is read from the headers before anything is decoded.
//
// It decides what is bad input and says so in one line; it does not know
// where the request came in. It must not import net/http (Header is the same
// map type as http.Header, so a caller converts without copying), NATS, Lua
// or the pipeline.
package ingress

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/textproto"
	"strings"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

// Header is a request's header with canonical keys, as net/http keeps it.
type Header map[string][]string

// Get returns the first value of key (any case).
func (h Header) Get(key string) string { return textproto.MIMEHeader(h).Get(key) }

// Mode is how a request carries its notifications.
type Mode int

// The ingress modes.
const (
	Raw        Mode = iota // an RGW POST of {"Records":[...]}
	Binary                 // a CloudEvent in ce- headers, data in the body
	Structured             // application/cloudevents+json
	Batch                  // application/cloudevents-batch+json
)

// Modes lists every mode, for tables and metrics.
var Modes = [...]Mode{Raw, Binary, Structured, Batch}

func (m Mode) String() string {
	switch m {
	case Raw:
		return "raw"
	case Binary:
		return "binary"
	case Structured:
		return "structured"
	case Batch:
		return "batch"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// DetectMode tells the mode from the headers alone.
func DetectMode(h Header) Mode {
	ct := strings.ToLower(strings.TrimSpace(h.Get("Content-Type")))
	switch {
	case strings.HasPrefix(ct, "application/cloudevents-batch"):
		return Batch
	case strings.HasPrefix(ct, "application/cloudevents"):
		return Structured
	case h.Get("Ce-Specversion") != "":
		return Binary
	}
	return Raw
}

// Errors wrapped by Decode. Both mean the request is bad input: the same
// request will fail again, and nothing of it was published.
var (
	// ErrInvalid: the body is not a notification or CloudEvent the service
	// can use.
	ErrInvalid = errors.New("invalid request")
	// ErrUnsupported: the Content-Type cannot be a notification.
	ErrUnsupported = errors.New("unsupported Content-Type")
)

// Request is what Decode made of one request.
type Request struct {
	Mode   Mode
	Events []event.Event
	// FromRGW is true when RGW itself sent the request: a raw POST, or a
	// binary CloudEvent of RGW's cloudevents=true mode. RGW retries every
	// failure forever, so the pipeline dead-letters bad input from it
	// instead of refusing it.
	FromRGW bool
}

// Sender tells, from the headers alone, the request's mode and whether RGW
// itself sent it (Request.FromRGW).
func Sender(h Header) (mode Mode, fromRGW bool) {
	mode = DetectMode(h)
	return mode, mode == Raw || mode == Binary && strings.HasPrefix(h.Get("Ce-Source"), "ceph:s3")
}

// Decode decodes a request body. opts.Extensions (K_CE_OVERRIDES) are set on
// every event. Every event it returns passes binding.Check, so it can be
// encoded as it is with binding.EncodeChecked. A non-nil error wraps ErrInvalid or ErrUnsupported and its
// message is one line meant for the sender; the Request still tells the
// mode and whether RGW sent it.
func Decode(h Header, body []byte, opts cloudevent.Options) (Request, error) {
	var req Request
	req.Mode, req.FromRGW = Sender(h)
	var err error
	if req.Mode == Raw {
		req.Events, err = decodeRaw(h, body, opts)
		return req, err
	}
	if req.Mode != Binary && !utf8.Valid(body) {
		return req, invalid("%s CloudEvent: body is not valid UTF-8", req.Mode)
	}
	var in []event.Event
	switch req.Mode {
	case Binary:
		var ev event.Event
		if ev, err = binding.DecodeHTTPBinary(h, body); err == nil {
			in = []event.Event{ev}
		} else if req.FromRGW {
			// RGW's own cloudevents=true push: its records replace the
			// wrapper's attributes anyway, and Tentacle puts the raw key in
			// Ce-Subject, no valid header value for a key like "100%.txt".
			// The records decide, as in a raw POST.
			if evs, rawErr := decodeRaw(h, body, opts); rawErr == nil {
				req.Events = evs
				return req, nil
			}
		}
	case Structured:
		var ev event.Event
		err = json.Unmarshal(body, &ev)
		in = []event.Event{ev}
	case Batch:
		err = json.Unmarshal(body, &in)
		if err == nil && len(in) == 0 {
			return req, invalid("empty CloudEvents batch")
		}
	}
	if err != nil {
		return req, invalid("invalid CloudEvent (%s mode): %s", req.Mode, OneLine(err))
	}
	out := make([]event.Event, 0, len(in))
	for i := range in {
		if out, err = unwrap(out, &in[i], opts); err != nil {
			return req, err
		}
	}
	req.Events = out
	return req, nil
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// rawContentTypeOK says what a raw POST may declare: RGW sends
// application/json or (Octopus, early Pacific) nothing; people with curl send
// the others. This is about what a sender may call a raw POST, not about
// what counts as JSON data (binding.IsJSON).
func rawContentTypeOK(ct string) bool {
	switch ct {
	case "", "application/json": // what RGW sends: no parsing needed
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "text/plain", "application/x-www-form-urlencoded":
		return true
	}
	return binding.IsJSON(mt)
}

func decodeRaw(h Header, body []byte, opts cloudevent.Options) ([]event.Event, error) {
	if ct := h.Get("Content-Type"); !rawContentTypeOK(ct) {
		return nil, fmt.Errorf("%w %q: send an RGW notification as JSON, or a CloudEvent", ErrUnsupported, ct)
	}
	recs, err := rgw.Decode(body)
	if err != nil {
		return nil, invalid("%s", OneLine(err))
	}
	return mapRecords(make([]event.Event, 0, len(recs)), recs, opts)
}

func mapRecords(out []event.Event, recs []rgw.Record, opts cloudevent.Options) ([]event.Event, error) {
	for i := range recs {
		ev, err := cloudevent.FromRecord(&recs[i], opts)
		if err != nil {
			return nil, invalid("record %d: %s", i, OneLine(err))
		}
		out = append(out, ev)
	}
	return out, nil
}

// unwrap appends what one incoming CloudEvent stands for: one event per RGW
// record when its data is a notification envelope (KafkaSource, RGW's
// cloudevents=true) or a single record (CephSource), else the event itself.
// A notification that cannot be used (an empty envelope, a broken record)
// and data declared JSON that is not are bad input, whatever the mode.
func unwrap(out []event.Event, ev *event.Event, opts cloudevent.Options) ([]event.Event, error) {
	if err := ev.Validate(); err != nil {
		return nil, invalid("invalid CloudEvent %q: %s", ev.ID(), OneLine(err))
	}
	if binding.IsJSON(ev.DataContentType()) {
		data := ev.Data()
		switch {
		case len(bytes.TrimSpace(data)) == 0:
			// Blanks are no JSON value: the sender sent no data.
			if !ev.DataBase64 {
				ev.DataEncoded = nil
			}
		case !utf8.Valid(data):
			return nil, invalid("CloudEvent %q: data is declared %s but is not valid UTF-8", ev.ID(), contentTypeName(ev))
		case !json.Valid(data):
			return nil, invalid("CloudEvent %q: data is declared %s but is not valid JSON", ev.ID(), contentTypeName(ev))
		}
		recs, err := rgw.DecodeAny(data)
		switch {
		case err == nil:
			return mapRecords(out, recs, opts)
		case !errors.Is(err, rgw.ErrNotNotification):
			return nil, invalid("CloudEvent %q: %s", ev.ID(), OneLine(err))
		}
	}
	for name, v := range opts.Extensions {
		ev.SetExtension(name, v)
	}
	return append(out, *ev), nil
}

func contentTypeName(ev *event.Event) string {
	if ct := ev.DataContentType(); ct != "" {
		return ct
	}
	return "JSON (no datacontenttype)"
}

// OneLine keeps an error message to its first line, for an HTTP answer or a
// NATS header.
func OneLine(err error) string {
	s := err.Error()
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}
