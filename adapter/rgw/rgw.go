// Package rgw decodes Ceph RGW bucket notifications leniently: every form that
// Ceph releases from Octopus to Squid send, and the documentation's example,
// decode to the same Record. Each Record keeps the bytes RGW sent, so that
// what is published downstream is what RGW said, not a lossy re-encoding.
//
// It knows only the RGW notification format: it must not import CloudEvents,
// NATS, Lua or HTTP packages.
package rgw

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Errors returned by the decoders; they are wrapped with details.
var (
	// ErrNotNotification: the body is not JSON, or not an object with a
	// "Records" array.
	ErrNotNotification = errors.New("not an RGW notification")
	// ErrNoRecords: the envelope holds an empty "Records" array.
	ErrNoRecords = errors.New("notification has no records")
	// ErrBadRecord: a record is not an object or lacks eventName or s3.
	ErrBadRecord = errors.New("bad notification record")
)

// Record is one notification record.
type Record struct {
	EventVersion      string            `json:"eventVersion"`
	EventSource       string            `json:"eventSource"`
	AWSRegion         string            `json:"awsRegion"`
	EventTime         string            `json:"eventTime"` // as sent; see Time
	EventName         string            `json:"eventName"` // as sent; see Name
	UserIdentity      Identity          `json:"userIdentity"`
	RequestParameters RequestParameters `json:"requestParameters"`
	ResponseElements  ResponseElements  `json:"responseElements"`
	S3                S3                `json:"s3"`
	EventID           string            `json:"eventId"`
	OpaqueData        string            `json:"opaqueData"`

	// Raw is the record exactly as received.
	Raw json.RawMessage `json:"-"`
}

// Identity names an RGW user, possibly "tenant$user".
type Identity struct {
	PrincipalID string `json:"principalId"`
}

// RequestParameters of the S3 request; RGW always sends an empty address.
type RequestParameters struct {
	SourceIPAddress string `json:"sourceIPAddress"`
}

// ResponseElements carry RGW's request identifiers.
type ResponseElements struct {
	RequestID string `json:"x-amz-request-id"`
	HostID    string `json:"x-amz-id-2"`
}

// S3 is the bucket and object part of a record.
type S3 struct {
	SchemaVersion   string `json:"s3SchemaVersion"`
	ConfigurationID string `json:"configurationId"`
	Bucket          Bucket `json:"bucket"`
	Object          Object `json:"object"`
}

// Bucket of the event; Name carries no tenant.
type Bucket struct {
	Name          string   `json:"name"`
	ID            string   `json:"id"`
	ARN           string   `json:"arn"`
	OwnerIdentity Identity `json:"ownerIdentity"`
}

// Object of the event. Key is not URL-encoded.
type Object struct {
	Key       string
	Size      int64
	ETag      string
	VersionID string
	Sequencer string
	Metadata  []KeyVal // keys keep their x-amz-meta- prefix; may hold request headers
	Tags      []KeyVal // a key may repeat
}

// KeyVal is one metadata or tag entry.
type KeyVal struct {
	Key string `json:"key"`
	Val string `json:"val"`
}

// UnmarshalJSON accepts {"key","val"} as RGW sends it and {"key","value"}.
func (kv *KeyVal) UnmarshalJSON(b []byte) error {
	var w struct {
		Key   string  `json:"key"`
		Val   *string `json:"val"`
		Value *string `json:"value"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	kv.Key = w.Key
	switch {
	case w.Val != nil:
		kv.Val = *w.Val
	case w.Value != nil:
		kv.Val = *w.Value
	default:
		kv.Val = ""
	}
	return nil
}

// UnmarshalJSON takes eTag or etag (Octopus and early Pacific), and a size
// given as a number or as a string (the documentation's example).
func (o *Object) UnmarshalJSON(b []byte) error {
	var w struct {
		Key       string          `json:"key"`
		Size      json.RawMessage `json:"size"`
		ETag      string          `json:"eTag"`
		Etag      string          `json:"etag"`
		VersionID string          `json:"versionId"`
		Sequencer string          `json:"sequencer"`
		Metadata  []KeyVal        `json:"metadata"`
		Tags      []KeyVal        `json:"tags"`
	}
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	size, err := parseSize(w.Size)
	if err != nil {
		return err
	}
	*o = Object{
		Key: w.Key, Size: size, ETag: w.ETag, VersionID: w.VersionID,
		Sequencer: w.Sequencer, Metadata: w.Metadata, Tags: w.Tags,
	}
	if o.ETag == "" {
		o.ETag = w.Etag
	}
	return nil
}

// MarshalJSON writes the form current RGW releases send.
func (o Object) MarshalJSON() ([]byte, error) {
	type wire struct {
		Key       string   `json:"key"`
		Size      int64    `json:"size"`
		ETag      string   `json:"eTag"`
		VersionID string   `json:"versionId"`
		Sequencer string   `json:"sequencer"`
		Metadata  []KeyVal `json:"metadata"`
		Tags      []KeyVal `json:"tags"`
	}
	w := wire(o)
	if w.Metadata == nil {
		w.Metadata = []KeyVal{}
	}
	if w.Tags == nil {
		w.Tags = []KeyVal{}
	}
	return json.Marshal(w)
}

func parseSize(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	s := string(raw)
	if raw[0] == '"' {
		if err := json.Unmarshal(raw, &s); err != nil {
			return 0, err
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, nil
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// A float such as 1.5e3 is still a size.
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || f < 0 || f != float64(int64(f)) {
			return 0, fmt.Errorf("object size %s is not a whole number", raw)
		}
		n = int64(f)
	}
	if n < 0 {
		return 0, fmt.Errorf("object size %s is negative", raw)
	}
	return n, nil
}

// Name is the event name without the "s3:" prefix that Octopus and early
// Pacific put on it, e.g. "ObjectCreated:Put".
func (r *Record) Name() string { return strings.TrimPrefix(r.EventName, "s3:") }

// Time parses EventTime, which is RFC 3339 with up to nine fractional digits,
// or the same with a space instead of the 'T' (seen in old captures).
func (r *Record) Time() (time.Time, error) {
	s := r.EventTime
	if len(s) > 10 && s[10] == ' ' {
		s = s[:10] + "T" + s[11:]
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("event time %q: %w", r.EventTime, err)
	}
	return t, nil
}

// Decode decodes a {"Records":[...]} envelope.
func Decode(body []byte) ([]Record, error) {
	var env struct {
		Records *[]json.RawMessage `json:"Records"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotNotification, jsonReason(err))
	}
	if env.Records == nil {
		return nil, fmt.Errorf("%w: no \"Records\" array", ErrNotNotification)
	}
	raws := *env.Records
	if len(raws) == 0 {
		return nil, ErrNoRecords
	}
	recs := make([]Record, len(raws))
	for i, raw := range raws {
		if err := decodeRecord(raw, &recs[i]); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
	}
	return recs, nil
}

// DecodeRecord decodes a single record (the data of a CephSource event).
func DecodeRecord(raw []byte) (Record, error) {
	var r Record
	err := decodeRecord(raw, &r)
	return r, err
}

func decodeRecord(raw []byte, r *Record) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrBadRecord)
	}
	if err := json.Unmarshal(raw, r); err != nil {
		return fmt.Errorf("%w: %s", ErrBadRecord, jsonReason(err))
	}
	if r.EventName == "" {
		return fmt.Errorf("%w: no eventName", ErrBadRecord)
	}
	if r.S3.Bucket.Name == "" {
		return fmt.Errorf("%w: no s3.bucket.name", ErrBadRecord)
	}
	r.Raw = json.RawMessage(raw)
	return nil
}

// DecodeAny decodes data that is either an envelope or a single record, as
// found in the data of CloudEvents that wrap notifications (KafkaSource,
// RGW's cloudevents=true mode, CephSource).
func DecodeAny(data []byte) ([]Record, error) {
	if !mayBeNotification(data) {
		return nil, fmt.Errorf("%w: neither Records nor eventName", ErrNotNotification)
	}
	if bytes.Contains(data, []byte(`"Records"`)) {
		return Decode(data)
	}
	r, err := DecodeRecord(data)
	if err != nil {
		return nil, err
	}
	return []Record{r}, nil
}

// mayBeNotification is a cheap test that rules out most other JSON before
// anything is decoded.
func mayBeNotification(data []byte) bool {
	data = bytes.TrimSpace(data)
	return len(data) > 0 && data[0] == '{' &&
		(bytes.Contains(data, []byte(`"Records"`)) || bytes.Contains(data, []byte(`"eventName"`)))
}

// FromData returns the one record carried by a CloudEvent's data: a single
// record or an envelope that holds exactly one. ok is false otherwise.
func FromData(data []byte) (rec Record, ok bool) {
	recs, err := DecodeAny(data)
	if err != nil || len(recs) != 1 {
		return Record{}, false
	}
	return recs[0], true
}

// jsonReason shortens encoding/json's messages to something a sender can act
// on, without Go type names.
func jsonReason(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		field := typ.Field
		if field == "" {
			field = "document"
		}
		return fmt.Sprintf("%s: expected %s, got JSON %s", field, jsonKind(typ.Type.Kind().String()), typ.Value)
	}
	return err.Error()
}

func jsonKind(goKind string) string {
	switch goKind {
	case "struct", "map", "ptr":
		return "object"
	case "slice", "array":
		return "array"
	case "string":
		return "string"
	}
	return "number"
}
