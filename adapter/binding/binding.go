// Package binding is the CloudEvents NATS protocol binding of rgw-nats:
// Encode turns an event into a NATS message in structured mode (the JSON
// event format, Content-Type: application/cloudevents+json) or binary mode
// (data as payload, attributes as percent-encoded ce- headers), with the
// event id as Nats-Msg-Id; Decode reads either mode back, and DecodeHTTP
// reads an HTTP binary-mode CloudEvent from its headers.
//
// It is written here rather than taken from sdk-go because sdk-go's binary
// mode neither percent-encodes header values nor lets a sender set a
// per-message Nats-Msg-Id, and its NATS senders own the connection.
//
// It is pure: it uses nats.go's message and header types only, never a
// connection. It must not import net/http, nats-server, the publisher
// (adapter/natsout), Lua, or the pipeline.
package binding

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/internal/percent"

	"github.com/cloudevents/sdk-go/v2/binding/spec"
	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// Message is one NATS message ready to publish. MsgID is the JetStream
// de-duplication id (the CloudEvent id); it also names the message in errors.
type Message struct {
	Subject string
	Header  nats.Header
	Data    []byte
	MsgID   string
}

// ErrRejected is wrapped by errors that retrying the same message cannot fix:
// an event that cannot be encoded, an invalid subject, a payload larger than
// the server accepts. The pipeline classifies it as permanent.
var ErrRejected = errors.New("message rejected")

// IsJSON tells whether a datacontenttype says the data is JSON: absent,
// application/json, text/json, or any +json suffix (the CloudEvents JSON
// format then embeds the data as JSON). It is the project's one answer to
// that question: ingress unwrapping, the encoder and the Lua event all ask
// it. text/plain is not JSON.
func IsJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	mt = strings.ToLower(strings.TrimSpace(mt))
	return mt == "" || mt == event.ApplicationJSON || mt == event.TextJSON || strings.HasSuffix(mt, "+json")
}

// Encoding is a content mode of the CloudEvents NATS binding.
type Encoding int

const (
	// Structured puts the whole event, in the JSON event format, in the
	// payload, with the header Content-Type: application/cloudevents+json.
	Structured Encoding = iota
	// Binary puts the event data in the payload and every attribute,
	// extensions included, in a percent-encoded ce-<name> header.
	Binary
)

func (e Encoding) String() string {
	switch e {
	case Structured:
		return "structured"
	case Binary:
		return "binary"
	}
	return fmt.Sprintf("Encoding(%d)", int(e))
}

// ParseEncoding reads "structured" or "binary" (any case).
func ParseEncoding(s string) (Encoding, error) {
	switch strings.ToLower(s) {
	case "structured", "":
		return Structured, nil
	case "binary":
		return Binary, nil
	}
	return Structured, fmt.Errorf("CloudEvents NATS binding mode must be structured or binary, not %q", s)
}

// UnmarshalText makes Encoding a configuration value (CE_MODE).
func (e *Encoding) UnmarshalText(b []byte) error {
	v, err := ParseEncoding(string(b))
	if err == nil {
		*e = v
	}
	return err
}

// MarshalText writes the name ParseEncoding reads.
func (e Encoding) MarshalText() ([]byte, error) { return []byte(e.String()), nil }

// Header names and values of the binding.
const (
	HeaderContentType = "Content-Type"
	HeaderMsgID       = jetstream.MsgIDHeader // "Nats-Msg-Id"
	// ContentTypeStructured marks a structured-mode message.
	ContentTypeStructured = "application/cloudevents+json"
	binaryPrefix          = "ce-"
)

// ErrNotCloudEvent is wrapped by Decode when a message is in neither mode.
var ErrNotCloudEvent = errors.New("not a CloudEvent")

// ceHeaders maps attribute names to ce- headers and back, per spec version.
var ceHeaders = spec.WithPrefix(binaryPrefix)

// Encode turns ev into a message for subj. Both modes set Nats-Msg-Id and
// MsgID to the event id, so JetStream drops a redelivered event. header adds
// NATS headers (for example from a Lua script); it may override Nats-Msg-Id
// (and so MsgID) but not the headers the binding owns: Content-Type in
// structured mode, ce-* in binary mode. In binary mode Data shares memory
// with the event's data. Errors wrap ErrRejected.
func Encode(ev *event.Event, subj string, enc Encoding, header nats.Header) (Message, error) {
	return encode(ev, subj, enc, header, true, true)
}

// EncodeChecked is Encode for an event that passed Check and has not
// changed since: what ingress.Decode returns (its fuzz test holds it to
// that). Skipping the checks saves a quarter of the cost of encoding a
// record. An event that would fail Check may be encoded into a message
// that consumers cannot read.
func EncodeChecked(ev *event.Event, subj string, enc Encoding, header nats.Header) (Message, error) {
	return encode(ev, subj, enc, header, false, false)
}

// EncodeDataChecked is Encode for an event whose data is known to be valid
// JSON when it is declared JSON (data that passed Check unchanged, or JSON
// its producer wrote itself, as the Lua engine does): its attributes are
// checked, its data is not read again. For a large record that is most of
// what Check costs.
func EncodeDataChecked(ev *event.Event, subj string, enc Encoding, header nats.Header) (Message, error) {
	return encode(ev, subj, enc, header, true, false)
}

// Check is what Encode checks of an event before writing it: the
// CloudEvents rules (sdk-go's Validate), string attributes and extensions
// that are UTF-8, and, for the structured mode, data that is valid JSON when
// it is declared JSON. It wraps ErrRejected.
func Check(ev *event.Event) error {
	if ev == nil || ev.Context == nil {
		return fmt.Errorf("binding: %w: no event", ErrRejected)
	}
	err := check(ev)
	if err == nil {
		err = dataJSON(ev)
	}
	if err != nil {
		return fmt.Errorf("binding: event %q: %w: %w", ev.ID(), ErrRejected, err)
	}
	return nil
}

func check(ev *event.Event) error {
	if err := ev.Validate(); err != nil {
		return err
	}
	return checkUTF8(ev)
}

func encode(ev *event.Event, subj string, enc Encoding, header nats.Header, checks, checkData bool) (Message, error) {
	if ev == nil || ev.Context == nil {
		return Message{}, fmt.Errorf("binding: encode: %w: no event", ErrRejected)
	}
	id := ev.ID()
	if !subject.Valid(subj) {
		return Message{}, fmt.Errorf("binding: encode event %q: %w: invalid subject %q", id, ErrRejected, subject.Short(subj))
	}
	if checks {
		if err := check(ev); err != nil {
			return Message{}, fmt.Errorf("binding: encode event %q: %w: %w", id, ErrRejected, err)
		}
	}
	m := Message{Subject: subj, MsgID: id}
	var err error
	switch enc {
	case Structured:
		if checkData {
			err = dataJSON(ev)
		}
		if err == nil {
			m.Data, err = marshalStructured(ev)
		}
		m.Header = make(nats.Header, 2+len(header))
		// One allocation for both values; capped, so an Add copies.
		vals := [...]string{ContentTypeStructured, id}
		both := vals[:]
		m.Header[HeaderContentType] = both[0:1:1]
		m.Header[HeaderMsgID] = both[1:2:2]
	case Binary:
		m.Header, err = binaryHeader(ev, 1+len(header))
		m.Data = ev.Data()
	default:
		err = fmt.Errorf("unknown encoding %d", int(enc))
	}
	if err != nil {
		return Message{}, fmt.Errorf("binding: encode event %q: %w: %w", id, ErrRejected, err)
	}
	if enc != Structured {
		m.Header[HeaderMsgID] = []string{id}
	}
	if err := mergeHeader(&m, header, enc); err != nil {
		return Message{}, fmt.Errorf("binding: encode event %q: %w: %w", id, ErrRejected, err)
	}
	return m, nil
}

// checkUTF8 refuses string attributes that are not UTF-8: the JSON format
// cannot carry them and binary-mode receivers must reject them.
func checkUTF8(ev *event.Event) error {
	for _, a := range [...]struct{ name, value string }{
		{"id", ev.ID()}, {"source", ev.Source()}, {"type", ev.Type()}, {"subject", ev.Subject()},
		{"datacontenttype", ev.DataContentType()}, {"dataschema", ev.DataSchema()},
	} {
		if !utf8.ValidString(a.value) {
			return fmt.Errorf("attribute %s is not valid UTF-8", a.name)
		}
	}
	for name, v := range cloudevent.Extensions(ev) {
		if s, ok := v.(string); ok && !utf8.ValidString(s) {
			return fmt.Errorf("extension %s is not valid UTF-8", name)
		}
	}
	return nil
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// dataJSON refuses data declared JSON that is not: the structured mode
// writes JSON data verbatim, and a broken value would make the whole message
// unreadable for every consumer.
func dataJSON(ev *event.Event) error {
	if !ev.DataBase64 && len(ev.DataEncoded) > 0 && IsJSON(ev.DataContentType()) && !validJSON(ev.DataEncoded) {
		return errors.New("data is declared JSON but is not valid JSON")
	}
	return nil
}

func marshalStructured(ev *event.Event) ([]byte, error) {
	// sdk-go writes data of "Application/JSON" as JSON but reads it back
	// only from a string; media types ignore case, so lower it (rare path).
	if ct := ev.DataContentType(); ct != "" {
		mt, params, _ := strings.Cut(ct, ";")
		if lower := strings.ToLower(mt); lower != mt {
			c := ev.Clone()
			if params != "" {
				lower += ";" + params
			}
			c.SetDataContentType(lower)
			ev = &c
		}
	}
	if c, ok := ev.Context.(*event.EventContextV1); ok {
		if b, ok := appendStructuredV1(ev, c); ok {
			return b, nil
		}
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer func() {
		if buf.Cap() <= 1<<20 {
			bufPool.Put(buf)
		}
	}()
	if err := event.WriteJson(ev, buf); err != nil {
		return nil, err
	}
	return bytes.Clone(buf.Bytes()), nil
}

// extensions returns the event's extensions without the copy that
// Event.Extensions makes for a 1.0 event. Read only.

func binaryHeader(ev *event.Event, extra int) (nats.Header, error) {
	if c, ok := ev.Context.(*event.EventContextV1); ok {
		return binaryHeaderV1(c, extra)
	}
	v := ceHeaders.Version(ev.SpecVersion())
	if v == nil {
		return nil, fmt.Errorf("unsupported specversion %q", ev.SpecVersion())
	}
	exts := ev.Extensions()
	h := make(nats.Header, len(v.Attributes())+len(exts)+extra)
	for _, a := range v.Attributes() {
		val := a.Get(ev.Context)
		if val == nil {
			continue
		}
		s, err := types.Format(val)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", a.Name(), err)
		}
		h[a.PrefixedName()] = []string{percentEncode(s)}
	}
	for name, val := range exts {
		s, err := types.Format(val)
		if err != nil {
			return nil, fmt.Errorf("extension %s: %w", name, err)
		}
		h[binaryPrefix+name] = []string{percentEncode(s)}
	}
	return h, nil
}

// binaryHeaderV1 is binaryHeader for the 1.0 events the service makes,
// reading the context directly instead of through sdk-go's boxed accessors:
// one allocation for all values, none per attribute.
func binaryHeaderV1(c *event.EventContextV1, extra int) (nats.Header, error) {
	n := 4 + len(c.Extensions)
	h := make(nats.Header, n+4+extra)
	vals := make([]string, 0, n+4)
	set := func(name, value string) {
		vals = append(vals, percentEncode(value))
		h[name] = vals[len(vals)-1 : len(vals) : len(vals)] // capped: an Add copies
	}
	set("ce-specversion", event.CloudEventsVersionV1)
	set("ce-id", c.ID)
	set("ce-source", c.Source.String())
	set("ce-type", c.Type)
	if c.Subject != nil && *c.Subject != "" {
		set("ce-subject", *c.Subject)
	}
	if c.Time != nil && !c.Time.IsZero() {
		set("ce-time", types.FormatTime(c.Time.Time))
	}
	if c.DataContentType != nil && *c.DataContentType != "" {
		set("ce-datacontenttype", *c.DataContentType)
	}
	if c.DataSchema != nil {
		set("ce-dataschema", c.DataSchema.String())
	}
	for name, val := range c.Extensions {
		s, err := types.Format(val)
		if err != nil {
			return nil, fmt.Errorf("extension %s: %w", name, err)
		}
		set(binaryPrefix+name, s)
	}
	return h, nil
}

func mergeHeader(m *Message, extra nats.Header, enc Encoding) error {
	for k, vs := range extra {
		switch {
		case strings.EqualFold(k, HeaderMsgID):
			if len(vs) > 0 && vs[0] != "" {
				m.Header[HeaderMsgID] = []string{vs[0]}
				m.MsgID = vs[0]
			}
			continue
		case enc == Structured && strings.EqualFold(k, HeaderContentType),
			enc == Binary && len(k) >= len(binaryPrefix) && strings.EqualFold(k[:len(binaryPrefix)], binaryPrefix):
			return fmt.Errorf("header %q belongs to the CloudEvents %s mode; change the event instead", k, enc)
		case !ValidHeaderName(k):
			return fmt.Errorf("invalid header name %q", k)
		}
		m.Header[k] = append(m.Header[k], vs...)
	}
	return nil
}

// ValidHeaderName accepts what nats.go can write as a header name:
// printable ASCII without a colon.
func ValidHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c < 0x21 || c > 0x7e || c == ':' {
			return false
		}
	}
	return true
}

// percentEncode applies the binding's rule: space, double quote, percent
// and everything outside printable ASCII become %XX of their UTF-8 bytes.
func percentEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if mustEncode(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if mustEncode(c) {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

func mustEncode(c byte) bool {
	return c <= ' ' || c == '"' || c == '%' || c >= 0x7f
}

// percentDecode reverses percentEncode for a received header value: a
// double-quoted value is unquoted first (older senders), every %XX is
// decoded (lower-case hex too), and the result must be valid UTF-8, which
// also rejects overlong encodings.
func percentDecode(v string) (string, error) {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var err error
		if v, err = unquote(v[1 : len(v)-1]); err != nil {
			return "", err
		}
	}
	d, err := percent.Decode(v)
	if err != nil {
		return "", err
	}
	if !utf8.ValidString(d) {
		return "", errors.New("percent-encoding is not valid UTF-8")
	}
	return d, nil
}

// unquote undoes the backslash escapes of an RFC 7230 quoted string whose
// surrounding quotes are already removed.
func unquote(s string) (string, error) {
	if strings.IndexByte(s, '\\') < 0 {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i == len(s) {
				return "", errors.New("quoted value ends in a backslash")
			}
		}
		b.WriteByte(s[i])
	}
	return b.String(), nil
}

// Decode reads a CloudEvent from a message in either mode: structured when
// Content-Type starts with application/cloudevents (or, without that header,
// when the payload is a JSON object and no ce-specversion header is set),
// binary when a ce-specversion header is present. Header names match in any
// case. The event's data shares memory with msg.Data.
func Decode(msg *nats.Msg) (event.Event, error) {
	ct := HeaderFold(msg.Header, HeaderContentType)
	if ct != "" && hasPrefixFold(ct, "application/cloudevents") {
		if hasPrefixFold(ct, "application/cloudevents-batch") {
			return event.Event{}, fmt.Errorf("binding: message on %q: %w: batch mode is not part of the NATS binding", msg.Subject, ErrNotCloudEvent)
		}
		return decodeStructured(msg)
	}
	if sv := HeaderFold(msg.Header, binaryPrefix+"specversion"); sv != "" {
		return decodeBinary(msg, sv, false)
	}
	if bytes.HasPrefix(bytes.TrimLeft(msg.Data, " \t\r\n"), []byte("{")) {
		return decodeStructured(msg)
	}
	return event.Event{}, fmt.Errorf("binding: message on %q: %w: no cloudevents Content-Type, no ce-specversion header, payload not a JSON object", msg.Subject, ErrNotCloudEvent)
}

func decodeStructured(msg *nats.Msg) (event.Event, error) {
	var ev event.Event
	if err := ev.UnmarshalJSON(msg.Data); err != nil {
		return event.Event{}, fmt.Errorf("binding: message on %q: %w: structured: %w", msg.Subject, ErrNotCloudEvent, err)
	}
	if err := ev.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("binding: message on %q, event %q: invalid: %w", msg.Subject, ev.ID(), err)
	}
	if err := checkUTF8(&ev); err != nil {
		return event.Event{}, fmt.Errorf("binding: message on %q, event %q: invalid: %w", msg.Subject, ev.ID(), err)
	}
	return ev, nil
}

// DecodeHTTPBinary reads a binary-mode CloudEvent of the HTTP binding from
// its header (canonical or any case) and body: attributes from percent-encoded
// Ce- headers, datacontenttype from Content-Type (the HTTP binding has no
// ce-datacontenttype). The event's data shares memory with body.
func DecodeHTTPBinary(h map[string][]string, body []byte) (event.Event, error) {
	sv := HeaderFold(h, binaryPrefix+"specversion")
	if sv == "" {
		return event.Event{}, fmt.Errorf("binding: %w: no ce-specversion header", ErrNotCloudEvent)
	}
	return decodeBinary(&nats.Msg{Header: h, Data: body}, sv, true)
}

func decodeBinary(msg *nats.Msg, rawVersion string, http bool) (event.Event, error) {
	sv, err := percentDecode(rawVersion)
	if err != nil {
		return event.Event{}, fmt.Errorf("binding: message on %q: header ce-specversion: %w", msg.Subject, err)
	}
	v := ceHeaders.Version(sv)
	if v == nil {
		return event.Event{}, fmt.Errorf("binding: message on %q: unsupported specversion %q", msg.Subject, sv)
	}
	ev := event.Event{Context: v.NewContext()}
	for k, vs := range msg.Header {
		if len(vs) == 0 || len(k) <= len(binaryPrefix) || !strings.EqualFold(k[:len(binaryPrefix)], binaryPrefix) {
			continue
		}
		name := strings.ToLower(k)
		if name == binaryPrefix+"specversion" || http && name == binaryPrefix+"datacontenttype" {
			continue
		}
		val, err := percentDecode(vs[0])
		if err != nil {
			return event.Event{}, fmt.Errorf("binding: message on %q: header %s: %w", msg.Subject, k, err)
		}
		if err := v.SetAttribute(ev.Context, name, val); err != nil {
			return event.Event{}, fmt.Errorf("binding: message on %q: header %s: %w", msg.Subject, k, err)
		}
	}
	if http {
		if ct := HeaderFold(msg.Header, HeaderContentType); ct != "" {
			ev.SetDataContentType(ct)
		}
	}
	if len(msg.Data) > 0 {
		ev.DataEncoded = msg.Data
		// Keeps a re-encoding to JSON lossless: bytes that are not text go
		// to data_base64.
		ev.DataBase64 = !utf8.Valid(msg.Data)
	}
	if err := ev.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("binding: message on %q, event %q: invalid: %w", msg.Subject, ev.ID(), err)
	}
	return ev, nil
}

// HeaderFold returns the first value of key in h, matching the name in
// any case: NATS keeps header names as they were sent.
func HeaderFold(h nats.Header, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	for k, v := range h {
		if len(v) > 0 && strings.EqualFold(k, key) {
			return v[0]
		}
	}
	return ""
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
