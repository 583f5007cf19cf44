package function

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/event"
	cehttp "github.com/cloudevents/sdk-go/v2/protocol/http"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

// Mode is how a request carries its notifications.
type Mode int

// The ingress modes, detected from the headers before anything is decoded.
const (
	ModeRaw        Mode = iota // an RGW POST of {"Records":[...]}
	ModeBinary                 // a CloudEvent in ce- headers, data in the body
	ModeStructured             // application/cloudevents+json
	ModeBatch                  // application/cloudevents-batch+json
)

func (m Mode) String() string {
	return [...]string{"raw", "binary", "structured", "batch"}[m]
}

// DetectMode tells the ingress mode from the request headers alone. sdk-go
// would answer 415 to RGW's raw JSON and 500 to batch mode, so it is only
// handed requests that are known to be CloudEvents.
func DetectMode(h http.Header) Mode {
	ct := strings.ToLower(strings.TrimSpace(h.Get("Content-Type")))
	switch {
	case strings.HasPrefix(ct, "application/cloudevents-batch"):
		return ModeBatch
	case strings.HasPrefix(ct, "application/cloudevents"):
		return ModeStructured
	case h.Get("Ce-Specversion") != "":
		return ModeBinary
	}
	return ModeRaw
}

// httpError is a request that cannot be accepted, with its status code.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func badRequest(format string, args ...any) *httpError {
	return &httpError{code: http.StatusBadRequest, msg: fmt.Sprintf(format, args...)}
}

// Decode turns one request body into the events to publish: one per RGW
// record, wherever the records came from, and any other CloudEvent as it is;
// opts.Extensions (K_CE_OVERRIDES) are set on every event. The returned error
// is meant for the sender: one line, naming what is wrong.
func Decode(ctx context.Context, h http.Header, body []byte, opts cloudevent.Options) (Mode, []event.Event, error) {
	mode := DetectMode(h)
	var (
		in  []event.Event
		err error
	)
	switch mode {
	case ModeRaw:
		evs, err := decodeRaw(h, body, opts)
		return mode, evs, err
	case ModeBinary:
		var ev *event.Event
		ev, err = binding.ToEvent(ctx, cehttp.NewMessage(h, io.NopCloser(bytes.NewReader(body))))
		if err == nil {
			in = []event.Event{*ev}
		}
	case ModeStructured:
		var ev event.Event
		err = json.Unmarshal(body, &ev)
		in = []event.Event{ev}
	case ModeBatch:
		err = json.Unmarshal(body, &in)
		if err == nil && len(in) == 0 {
			return mode, nil, badRequest("empty CloudEvents batch")
		}
	}
	if err != nil {
		return mode, nil, badRequest("invalid CloudEvent (%s mode): %s", mode, oneLine(err))
	}
	out := make([]event.Event, 0, len(in))
	for i := range in {
		if err := in[i].Validate(); err != nil {
			return mode, nil, badRequest("invalid CloudEvent %q: %s", in[i].ID(), oneLine(err))
		}
		out, err = unwrap(out, &in[i], opts)
		if err != nil {
			return mode, nil, err
		}
	}
	return mode, out, nil
}

// rawContentTypes are what a raw POST may declare: RGW sends
// application/json or (Octopus, early Pacific) nothing; people with curl send
// the others.
func rawContentTypeOK(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	switch mt {
	case "application/json", "text/json", "text/plain", "application/x-www-form-urlencoded":
		return true
	}
	return strings.HasSuffix(mt, "+json")
}

func decodeRaw(h http.Header, body []byte, opts cloudevent.Options) ([]event.Event, error) {
	if ct := h.Get("Content-Type"); !rawContentTypeOK(ct) {
		return nil, &httpError{code: http.StatusUnsupportedMediaType,
			msg: fmt.Sprintf("unsupported Content-Type %q: send an RGW notification as JSON, or a CloudEvent", ct)}
	}
	recs, err := rgw.Decode(body)
	if err != nil {
		return nil, badRequest("%s", oneLine(err))
	}
	return mapRecords(make([]event.Event, 0, len(recs)), recs, opts)
}

func mapRecords(out []event.Event, recs []rgw.Record, opts cloudevent.Options) ([]event.Event, error) {
	for i := range recs {
		ev, err := cloudevent.FromRecord(&recs[i], opts)
		if err != nil {
			return nil, badRequest("record %d: %s", i, oneLine(err))
		}
		out = append(out, ev)
	}
	return out, nil
}

// unwrap appends what one incoming CloudEvent stands for: one event per RGW
// record when its data is a notification envelope (KafkaSource, RGW's
// cloudevents=true) or a single record (CephSource), else the event itself.
func unwrap(out []event.Event, ev *event.Event, opts cloudevent.Options) ([]event.Event, error) {
	if isJSON(ev.DataContentType()) {
		if recs, err := rgw.DecodeAny(ev.Data()); err == nil {
			return mapRecords(out, recs, opts)
		}
	}
	for name, v := range opts.Extensions {
		ev.SetExtension(name, v)
	}
	return append(out, *ev), nil
}

func isJSON(ct string) bool {
	if ct == "" {
		return true
	}
	mt, _, _ := strings.Cut(ct, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "application/json" || mt == "text/json" || strings.HasSuffix(mt, "+json") || mt == "text/plain"
}

// oneLine keeps an error message to one line for an HTTP answer.
func oneLine(err error) string {
	s := err.Error()
	if i := strings.IndexAny(s, "\r\n"); i >= 0 {
		s = s[:i]
	}
	return s
}

// readBody reads at most limit bytes; one allocation when Content-Length is
// known.
func readBody(r *http.Request, w http.ResponseWriter, limit int64) ([]byte, error) {
	if r.ContentLength > limit {
		return nil, tooLarge(limit)
	}
	body := http.MaxBytesReader(w, r.Body, limit)
	var (
		b   []byte
		err error
	)
	if n := r.ContentLength; n >= 0 {
		b = make([]byte, n)
		_, err = io.ReadFull(body, b)
	} else {
		b, err = io.ReadAll(body)
	}
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tooLarge(limit)
		}
		return nil, badRequest("reading body: %s", oneLine(err))
	}
	return b, nil
}

func tooLarge(limit int64) *httpError {
	return &httpError{code: http.StatusRequestEntityTooLarge,
		msg: fmt.Sprintf("body larger than %d bytes (MAX_BODY_BYTES)", limit)}
}
