// Package cloudevent maps an RGW notification record to a CloudEvent the way
// RGW's own CloudEvents mode names things (source "ceph:s3.<region>.<bucket>",
// type "com.amazonaws.<eventName>"), with an id that is unique per record and
// stable across redeliveries, and extension attributes that Knative Trigger
// filters and NATS subject templates can use.
//
// It knows RGW records and CloudEvents only: it must not import NATS, Lua or
// HTTP packages.
package cloudevent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"

	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

// Extension attribute names set on every fromRecord event. They follow the
// CloudEvents naming rule (lower-case a-z0-9, at most 20 characters).
const (
	ExtBucket          = "bucket"
	ExtObjectKey       = "objectkey"
	ExtEventName       = "eventname"
	ExtOpaqueData      = "opaquedata"
	ExtConfigurationID = "configurationid"
)

// TypePrefix is what RGW puts before the event name in its CloudEvents type.
const TypePrefix = "com.amazonaws."

// Options tune the mapping. The zero value maps a record to an event whose
// data is the record itself.
type Options struct {
	// Envelope makes the data {"Records":[record]}, as RGW POSTs it and as
	// consumers that read data.Records[0] expect.
	Envelope bool
	// Extensions are set on every event (K_CE_OVERRIDES of a SinkBinding);
	// they win over the fromRecord ones.
	Extensions map[string]any
}

// ParseOverrides reads K_CE_OVERRIDES: {"extensions":{"name":"value",...}}.
// Values are converted to CloudEvents types; a name that is not a valid
// extension attribute, or a value that has no CloudEvents type, is an error.
func ParseOverrides(s string) (map[string]any, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var o struct {
		Extensions map[string]any `json:"extensions"`
	}
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		return nil, fmt.Errorf(`K_CE_OVERRIDES: want {"extensions":{"name":"value",...}}: %s`, jsonReason(err))
	}
	probe := event.New()
	for name, v := range o.Extensions {
		if strings.EqualFold(name, "data") {
			return nil, fmt.Errorf("K_CE_OVERRIDES: extension %q: the name is reserved for the event data", name)
		}
		switch v := v.(type) {
		case float64:
			if v != math.Trunc(v) || v < math.MinInt32 || v > math.MaxInt32 {
				return nil, fmt.Errorf("K_CE_OVERRIDES: extension %q: %v is not a 32-bit integer (quote it to send a string)", name, v)
			}
		case map[string]any, []any:
			return nil, fmt.Errorf("K_CE_OVERRIDES: extension %q: want a string, number or boolean, not a JSON object or array", name)
		}
		if err := probe.Context.SetExtension(name, v); err != nil {
			return nil, fmt.Errorf("K_CE_OVERRIDES: extension %q: %w", name, err)
		}
	}
	// The probe holds the values converted to CloudEvents types.
	return probe.Extensions(), nil
}

// jsonReason says what is wrong with a JSON text without Go type names.
func jsonReason(err error) string {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Sprintf("invalid JSON at byte %d: %v", syn.Offset, syn)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		if typ.Field == "" {
			return "got JSON " + typ.Value
		}
		return fmt.Sprintf("%s is JSON %s", typ.Field, typ.Value)
	}
	return err.Error()
}

// ID is the CloudEvent id of a record: its eventId, qualified by the
// notification configuration when there is one (one S3 request that matches
// two configurations yields two records with the same eventId, and they must
// not de-duplicate each other). A record without eventId gets an id derived
// from its bytes (Raw), so a redelivery of the same record gets the same id.
func ID(rec *rgw.Record) string {
	if strings.TrimSpace(rec.EventID) == "" {
		sum := sha256.Sum256(rec.Raw)
		return "rgw-" + hex.EncodeToString(sum[:16])
	}
	if rec.S3.ConfigurationID == "" {
		return rec.EventID
	}
	return rec.EventID + "." + rec.S3.ConfigurationID
}

// sourceURI is RGW's CloudEvents source: ceph:s3.<region>.<bucket>. Region
// and bucket are percent-encoded where they hold characters that a URI
// cannot (RGW's own names never do), so that the source is always a valid
// URI-reference.
func sourceURI(rec *rgw.Record) types.URIRef {
	return types.URIRef{URL: url.URL{
		Scheme: sourceScheme,
		Opaque: "s3." + url.PathEscape(rec.AWSRegion) + "." + url.PathEscape(rec.S3.Bucket.Name),
	}}
}

const sourceScheme = "ceph"

// FromRecord maps one record to a CloudEvent. The event's data shares its
// bytes with rec.Raw. Every attribute is built valid (the tests check it with
// the SDK's Validate), so the SDK's validation is not run per event.
func FromRecord(rec *rgw.Record, opts Options) (event.Event, error) {
	if len(rec.Raw) == 0 {
		return event.Event{}, errors.New("cloudevent: record has no raw bytes (decode it with package rgw)")
	}
	name := rec.Name()
	if strings.TrimSpace(name) == "" {
		return event.Event{}, fmt.Errorf("cloudevent: record %s has no event name", ID(rec))
	}
	// One allocation for the context and what its pointers point to.
	m := &fromRecord{
		ctx: event.EventContextV1{
			ID:     ID(rec),
			Source: sourceURI(rec),
			Type:   TypePrefix + name,
		},
		key:         rec.S3.Object.Key,
		contentType: event.ApplicationJSON,
	}
	ctx := &m.ctx
	if strings.TrimSpace(m.key) != "" {
		// Not SetSubject: it trims spaces, which are part of a key.
		ctx.Subject = &m.key
	}
	if t, ok := eventTime(rec); ok {
		m.time.Time = t
		ctx.Time = &m.time
	}
	ctx.DataContentType = &m.contentType

	ext := make(map[string]any, 5+len(opts.Extensions))
	ext[ExtBucket] = rec.S3.Bucket.Name
	ext[ExtObjectKey] = rec.S3.Object.Key
	ext[ExtEventName] = name
	if rec.S3.ConfigurationID != "" {
		ext[ExtConfigurationID] = rec.S3.ConfigurationID
	}
	if rec.OpaqueData != "" {
		ext[ExtOpaqueData] = rec.OpaqueData
	}
	ctx.Extensions = ext
	for k, v := range opts.Extensions {
		// SetExtension checks the name and converts the value, for
		// callers that fill Options.Extensions without ParseOverrides.
		if err := ctx.SetExtension(k, v); err != nil {
			return event.Event{}, fmt.Errorf("cloudevent: event %s: extension %q: %w", ctx.ID, k, err)
		}
	}

	ev := event.Event{Context: ctx}
	if opts.Envelope {
		data := make([]byte, 0, len(rec.Raw)+len(envelopeOpen)+len(envelopeClose))
		data = append(data, envelopeOpen...)
		data = append(data, rec.Raw...)
		ev.DataEncoded = append(data, envelopeClose...)
	} else {
		ev.DataEncoded = rec.Raw
	}
	return ev, nil
}

// Extensions returns the event's extensions without the copy that
// Event.Extensions makes: the caller must not change the map.
func Extensions(ev *event.Event) map[string]any {
	if ev == nil || ev.Context == nil {
		return nil
	}
	if c, ok := ev.Context.(*event.EventContextV1); ok {
		return c.Extensions
	}
	return ev.Extensions()
}

// fromRecord holds an event context with the values its pointers point to.
type fromRecord struct {
	ctx         event.EventContextV1
	key         string
	contentType string
	time        types.Timestamp
}

// eventTime is the record's eventTime, or, when that is not a time (Tentacle's
// POST form upload sends "0.000000"), the time its eventId starts with:
// <10-digit seconds>.<6-digit microseconds>.<etag>. RGW writes both from the
// same clock, so the fallback is the same instant to the microsecond.
func eventTime(rec *rgw.Record) (time.Time, bool) {
	if t, err := rec.Time(); err == nil && t.Unix() > 0 {
		return t, true
	}
	return timeOfEventID(rec.EventID)
}

func timeOfEventID(id string) (time.Time, bool) {
	sec, rest, _ := strings.Cut(id, ".")
	usec, _, _ := strings.Cut(rest, ".")
	if len(sec) != 10 || len(usec) != 6 || !digits(sec) || !digits(usec) {
		return time.Time{}, false
	}
	s, _ := strconv.ParseInt(sec, 10, 64)
	us, _ := strconv.ParseInt(usec, 10, 64)
	if s == 0 {
		return time.Time{}, false
	}
	return time.Unix(s, us*1000).UTC(), true
}

func digits(s string) bool {
	for i := range len(s) {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

const (
	envelopeOpen  = `{"Records":[`
	envelopeClose = `]}`
)
