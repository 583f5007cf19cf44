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
	"maps"
	"strings"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/rgw"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// Extension attribute names set on every mapped event. They follow the
// CloudEvents naming rule (lower-case a-z0-9, at most 20 characters).
const (
	ExtBucket          = subject.ExtBucket
	ExtObjectKey       = subject.ExtObjectKey
	ExtEventName       = subject.ExtEventName
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
	// they win over the mapped ones.
	Extensions map[string]any
}

// ParseOverrides reads K_CE_OVERRIDES: {"extensions":{"name":"value",...}}.
func ParseOverrides(s string) (map[string]any, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var o struct {
		Extensions map[string]any `json:"extensions"`
	}
	if err := json.Unmarshal([]byte(s), &o); err != nil {
		return nil, fmt.Errorf("K_CE_OVERRIDES: %w", err)
	}
	probe := event.New()
	for name, v := range o.Extensions {
		if err := probe.Context.SetExtension(name, v); err != nil {
			return nil, fmt.Errorf("K_CE_OVERRIDES: extension %q: %w", name, err)
		}
	}
	// The probe holds the values converted to CloudEvents types.
	return probe.Extensions(), nil
}

// ID is the CloudEvent id of a record: its eventId, qualified by the
// notification configuration when there is one (one S3 request that matches
// two configurations yields two records with the same eventId, and they must
// not de-duplicate each other). A record without eventId gets an id derived
// from its bytes, so a redelivery of the same record gets the same id.
func ID(rec *rgw.Record) string {
	if rec.EventID == "" {
		sum := sha256.Sum256(rec.Raw)
		return "rgw-" + hex.EncodeToString(sum[:16])
	}
	if rec.S3.ConfigurationID == "" {
		return rec.EventID
	}
	return rec.EventID + "." + rec.S3.ConfigurationID
}

// Source is RGW's CloudEvents source: ceph:s3.<region>.<bucket>.
func Source(rec *rgw.Record) string {
	return "ceph:s3." + rec.AWSRegion + "." + rec.S3.Bucket.Name
}

// FromRecord maps one record to a CloudEvent.
func FromRecord(rec *rgw.Record, opts Options) (event.Event, error) {
	if len(rec.Raw) == 0 {
		return event.Event{}, errors.New("cloudevent: record has no raw bytes (decode it with package rgw)")
	}
	ev := event.New(event.CloudEventsVersionV1)
	ctx := ev.Context.(*event.EventContextV1)
	ctx.ID = ID(rec)
	ev.SetSource(Source(rec))
	ev.SetType(TypePrefix + rec.Name())
	if rec.S3.Object.Key != "" {
		ev.SetSubject(rec.S3.Object.Key)
	}
	if t, err := rec.Time(); err == nil {
		ev.SetTime(t)
	}
	ct := event.ApplicationJSON
	ctx.DataContentType = &ct

	ext := make(map[string]any, 5+len(opts.Extensions))
	ext[ExtBucket] = rec.S3.Bucket.Name
	ext[ExtObjectKey] = rec.S3.Object.Key
	ext[ExtEventName] = rec.Name()
	if rec.S3.ConfigurationID != "" {
		ext[ExtConfigurationID] = rec.S3.ConfigurationID
	}
	if rec.OpaqueData != "" {
		ext[ExtOpaqueData] = rec.OpaqueData
	}
	maps.Copy(ext, opts.Extensions)
	ctx.Extensions = ext

	if opts.Envelope {
		data := make([]byte, 0, len(rec.Raw)+len(envelopeOpen)+len(envelopeClose))
		data = append(data, envelopeOpen...)
		data = append(data, rec.Raw...)
		ev.DataEncoded = append(data, envelopeClose...)
	} else {
		ev.DataEncoded = rec.Raw
	}
	ev.DataBase64 = false
	if err := ev.Validate(); err != nil {
		return event.Event{}, fmt.Errorf("cloudevent: event %s: %w", ctx.ID, err)
	}
	return ev, nil
}

const (
	envelopeOpen  = `{"Records":[`
	envelopeClose = `]}`
)
