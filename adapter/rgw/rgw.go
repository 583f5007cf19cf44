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
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Errors returned by the decoders; they are wrapped with details.
var (
	// ErrNotNotification: the body is not JSON, or not an object with a
	// "Records" array.
	ErrNotNotification = errors.New("not an RGW notification")
	// ErrNoRecords: the envelope holds an empty "Records" array.
	ErrNoRecords = errors.New("notification has no records")
	// ErrBadRecord: a record is not an object, lacks eventName or
	// s3.bucket.name, or has a member of the wrong type (a size that is not
	// a whole number of bytes, for one).
	ErrBadRecord = errors.New("bad notification record")
	// ErrNotUTF8: the JSON is not valid UTF-8. encoding/json would replace
	// the bad bytes with U+FFFD, so attributes taken from the record (the
	// object key) would no longer match the record's bytes.
	ErrNotUTF8 = errors.New("not valid UTF-8")
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

	// Raw is the record exactly as received: a slice of the input it was
	// decoded from, which the caller must not modify while Raw is in use.
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
	var w kvWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*kv = w.keyVal()
	return nil
}

// UnmarshalJSON takes eTag or etag (Octopus and early Pacific), and a size
// given as a number or as a string (the documentation's example).
func (o *Object) UnmarshalJSON(b []byte) error {
	var w objectWire
	if err := json.Unmarshal(b, &w); err != nil {
		return err
	}
	*o = w.object()
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

// The wire types below are what records are decoded into. They have no
// UnmarshalJSON methods of their own (only the literals size and optString
// have cheap ones), so a record is validated and decoded by encoding/json
// once, not once more for every nested object as custom methods that call
// json.Unmarshal would.
type recordWire struct {
	EventVersion      string            `json:"eventVersion"`
	EventSource       string            `json:"eventSource"`
	AWSRegion         string            `json:"awsRegion"`
	EventTime         string            `json:"eventTime"`
	EventName         string            `json:"eventName"`
	UserIdentity      Identity          `json:"userIdentity"`
	RequestParameters RequestParameters `json:"requestParameters"`
	ResponseElements  ResponseElements  `json:"responseElements"`
	S3                struct {
		SchemaVersion   string     `json:"s3SchemaVersion"`
		ConfigurationID string     `json:"configurationId"`
		Bucket          Bucket     `json:"bucket"`
		Object          objectWire `json:"object"`
	} `json:"s3"`
	EventID    string `json:"eventId"`
	OpaqueData string `json:"opaqueData"`
}

func (w *recordWire) record(raw []byte) Record {
	return Record{
		EventVersion: w.EventVersion, EventSource: w.EventSource, AWSRegion: w.AWSRegion,
		EventTime: w.EventTime, EventName: w.EventName,
		UserIdentity: w.UserIdentity, RequestParameters: w.RequestParameters, ResponseElements: w.ResponseElements,
		S3: S3{
			SchemaVersion: w.S3.SchemaVersion, ConfigurationID: w.S3.ConfigurationID,
			Bucket: w.S3.Bucket, Object: w.S3.Object.object(),
		},
		EventID: w.EventID, OpaqueData: w.OpaqueData,
		Raw: raw,
	}
}

type objectWire struct {
	Key       string   `json:"key"`
	Size      size     `json:"size"`
	ETag      string   `json:"eTag"`
	Etag      string   `json:"etag"`
	VersionID string   `json:"versionId"`
	Sequencer string   `json:"sequencer"`
	Metadata  []kvWire `json:"metadata"`
	Tags      []kvWire `json:"tags"`
}

func (w *objectWire) object() Object {
	o := Object{
		Key: w.Key, Size: int64(w.Size), ETag: w.ETag, VersionID: w.VersionID,
		Sequencer: w.Sequencer, Metadata: keyVals(w.Metadata), Tags: keyVals(w.Tags),
	}
	if o.ETag == "" {
		o.ETag = w.Etag
	}
	return o
}

type kvWire struct {
	Key   string    `json:"key"`
	Val   optString `json:"val"`
	Value optString `json:"value"`
}

func (w *kvWire) keyVal() KeyVal {
	if !w.Val.set && w.Value.set {
		return KeyVal{Key: w.Key, Val: w.Value.s}
	}
	return KeyVal{Key: w.Key, Val: w.Val.s}
}

// keyVals keeps the difference between an absent or null list (nil) and an
// empty one.
func keyVals(ws []kvWire) []KeyVal {
	if ws == nil {
		return nil
	}
	kvs := make([]KeyVal, len(ws))
	for i := range ws {
		kvs[i] = ws[i].keyVal()
	}
	return kvs
}

// optString is a JSON string that remembers whether it was present and not
// null.
type optString struct {
	s   string
	set bool
}

func (o *optString) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	s, err := unquote(b)
	if err != nil {
		return err
	}
	*o = optString{s: s, set: true}
	return nil
}

// unquote decodes a JSON string literal that encoding/json has already
// validated; literals without escapes, the common case, need no decoder.
func unquote(b []byte) (string, error) {
	if len(b) >= 2 && b[0] == '"' && b[len(b)-1] == '"' &&
		bytes.IndexByte(b, '\\') < 0 && utf8.Valid(b) {
		return string(b[1 : len(b)-1]), nil
	}
	var s string
	err := json.Unmarshal(b, &s)
	return s, err
}

// size is an object size sent as a number or, in the documentation's
// example, as a string.
type size int64

func (n *size) UnmarshalJSON(b []byte) error {
	v, err := parseSize(b)
	*n = size(v)
	return err
}

func parseSize(raw []byte) (int64, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, nil
	}
	var s string
	switch raw[0] {
	case '"':
		var err error
		if s, err = unquote(raw); err != nil {
			return 0, fmt.Errorf("object size: %s", jsonReason(err))
		}
		s = strings.TrimSpace(s)
		if s == "" {
			return 0, nil
		}
	case '{', '[', 't', 'f':
		return 0, fmt.Errorf("object size must be a number or a string, not JSON %s", jsonKindOf(raw[0]))
	default:
		s = string(raw)
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		// A float such as 1.5e3 is still a size. The range is checked
		// before converting: float-to-int overflow differs across CPUs.
		f, ferr := strconv.ParseFloat(s, 64)
		switch {
		case f < 0: // -Inf too
			return 0, fmt.Errorf("object size %.40q is negative", s)
		case errors.Is(ferr, strconv.ErrRange) || f >= 1<<63:
			return 0, fmt.Errorf("object size %.40q is too large", s)
		case ferr != nil || f != math.Trunc(f):
			return 0, fmt.Errorf("object size %.40q is not a whole number of bytes", s)
		}
		n = int64(f)
	}
	if n < 0 {
		return 0, fmt.Errorf("object size %.40q is negative", s)
	}
	return n, nil
}

func jsonKindOf(first byte) string {
	switch first {
	case '{':
		return "object"
	case '[':
		return "array"
	}
	return "boolean"
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

// Decode decodes a {"Records":[...]} envelope. The records' Raw fields are
// slices of body, which must not be modified while they are in use.
func Decode(body []byte) ([]Record, error) {
	if err := checkUTF8(body); err != nil {
		return nil, err
	}
	if recs, ok := scanEnvelope(body); ok {
		return recs, nil
	}
	var env struct {
		Records *[]recordWire `json:"Records"`
	}
	if json.Unmarshal(body, &env) != nil || env.Records == nil {
		return decodeEnvelope(body) // explains what is wrong
	}
	return assemble(body, *env.Records)
}

// assemble completes the records of an envelope that encoding/json decoded
// in one pass (the fast path: the body is scanned twice by encoding/json,
// and once more by recordSpans to find each record's bytes).
func assemble(body []byte, ws []recordWire) ([]Record, error) {
	if len(ws) == 0 {
		return nil, ErrNoRecords
	}
	var one [1][]byte
	spans, ok := recordSpans(body, one[:0])
	if !ok || len(spans) != len(ws) {
		// A body recordSpans does not read the way encoding/json did
		// (duplicate "Records" members): decode each record on its own.
		return decodeEnvelope(body)
	}
	recs := make([]Record, len(ws))
	for i := range ws {
		if len(spans[i]) == 0 || spans[i][0] != '{' {
			return nil, fmt.Errorf("record %d: %w: not a JSON object", i, ErrBadRecord)
		}
		if err := checkRecord(&ws[i], spans[i], &recs[i]); err != nil {
			return nil, fmt.Errorf("record %d: %w", i, err)
		}
	}
	return recs, nil
}

// decodeEnvelope is the slow path of Decode: it finds the records first and
// then decodes each on its own, so that an error names the record and what
// is wrong with it.
func decodeEnvelope(body []byte) ([]Record, error) {
	if err := checkUTF8(body); err != nil {
		return nil, err
	}
	var env envelope
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("%w: %s", ErrNotNotification, jsonReason(err))
	}
	if env.Records == nil {
		return nil, fmt.Errorf("%w: no \"Records\" array", ErrNotNotification)
	}
	return decodeRecords(*env.Records)
}

// checkUTF8 refuses a body that is not UTF-8, before encoding/json would
// silently replace the bad bytes; both paths of Decode start with it.
func checkUTF8(body []byte) error {
	if !utf8.Valid(body) {
		return fmt.Errorf("%w: %w", ErrNotNotification, ErrNotUTF8)
	}
	return nil
}

// envelope finds the records without decoding them.
type envelope struct {
	Records *[]rawRecord `json:"Records"`
}

// rawRecord keeps the bytes encoding/json found for one record. Holding on
// to them is safe because they are a slice of the body given to
// json.Unmarshal, which the caller owns (Decode documents this).
type rawRecord []byte

func (r *rawRecord) UnmarshalJSON(b []byte) error {
	*r = b
	return nil
}

func decodeRecords(raws []rawRecord) ([]Record, error) {
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

func decodeRecord(raw []byte, r *Record) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return fmt.Errorf("%w: not a JSON object", ErrBadRecord)
	}
	if !utf8.Valid(raw) {
		return fmt.Errorf("%w: %w", ErrBadRecord, ErrNotUTF8)
	}
	var w recordWire
	if err := json.Unmarshal(raw, &w); err != nil {
		return fmt.Errorf("%w: %s", ErrBadRecord, jsonReason(err))
	}
	return checkRecord(&w, raw, r)
}

func checkRecord(w *recordWire, raw []byte, r *Record) error {
	if w.EventName == "" {
		return fmt.Errorf("%w: no eventName", ErrBadRecord)
	}
	if w.S3.Bucket.Name == "" {
		return fmt.Errorf("%w: no s3.bucket.name", ErrBadRecord)
	}
	*r = w.record(raw)
	return nil
}

// DecodeAny decodes data that is either an envelope or a single record, as
// found in the data of CloudEvents that wrap notifications (KafkaSource,
// RGW's cloudevents=true mode, CephSource). Data is an envelope when it has a
// top-level "Records" member, whatever its records hold. Raw fields are
// slices of data. An error that wraps ErrNotNotification means the data is
// some other document; any other error means it is a notification that
// cannot be used (an empty or broken envelope, a broken record).
func DecodeAny(data []byte) ([]Record, error) {
	data = bytes.TrimSpace(data)
	if !mayBeNotification(data) {
		return nil, fmt.Errorf("%w: neither Records nor eventName", ErrNotNotification)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: %w", ErrBadRecord, ErrNotUTF8)
	}
	// The fast path takes only an exact "Records" name for an envelope: data
	// without one is at most a record.
	if bytes.Contains(data, []byte(`"Records"`)) {
		if recs, ok := scanEnvelope(data); ok {
			return recs, nil
		}
	}
	if r := (Record{}); scanRecord(string(data), &r) {
		r.Raw = data
		return []Record{r}, nil
	}
	// One pass decodes a single record, or an envelope's records.
	var w struct {
		Records *[]recordWire `json:"Records"`
		recordWire
	}
	if err := json.Unmarshal(data, &w); err != nil {
		// Tell apart a bad envelope from a bad record, as Decode and
		// DecodeRecord would.
		var env envelope
		if err := json.Unmarshal(data, &env); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrNotNotification, jsonReason(err))
		}
		if env.Records != nil {
			return decodeRecords(*env.Records)
		}
		return nil, fmt.Errorf("%w: %s", ErrBadRecord, jsonReason(err))
	}
	if w.Records != nil {
		return assemble(data, *w.Records)
	}
	recs := make([]Record, 1)
	if err := checkRecord(&w.recordWire, data, &recs[0]); err != nil {
		return nil, err
	}
	return recs, nil
}

// mayBeNotification is a cheap test that rules out most other JSON before
// anything is decoded.
func mayBeNotification(data []byte) bool {
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
	if errors.As(err, &typ) && typ.Type != nil {
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
