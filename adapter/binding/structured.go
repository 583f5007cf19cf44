package binding

import (
	"encoding/base64"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/internal/jsonstr"
)

// appendStructuredV1 writes a 1.0 event in the JSON event format, as
// sdk-go's event.WriteJson does (same members, same data rules, extensions
// in name order), without reflection or an intermediate buffer: one
// allocation for the message payload. ok is false for what it does not
// write itself (an extension value that is not a string, a number or a
// boolean); the caller then uses sdk-go.
func appendStructuredV1(ev *event.Event, c *event.EventContextV1) (b []byte, ok bool) {
	var names [16]string
	n := 0
	for name, v := range c.Extensions {
		switch v.(type) {
		case string, int32, bool:
		default:
			return nil, false
		}
		if n == len(names) {
			return nil, false
		}
		names[n] = name
		n++
	}
	// Insertion sort: a handful of names, no allocation.
	for i := 1; i < n; i++ {
		for j := i; j > 0 && names[j] < names[j-1]; j-- {
			names[j], names[j-1] = names[j-1], names[j]
		}
	}

	size := 128 + len(c.ID) + len(c.Type) + len(c.Source.Opaque) + len(c.Source.Host) + len(c.Source.Path) + len(ev.DataEncoded)*4/3
	if c.Subject != nil {
		size += len(*c.Subject)
	}
	for _, name := range names[:n] {
		size += len(name) + 8
		if s, ok := c.Extensions[name].(string); ok {
			size += len(s)
		}
	}
	b = make([]byte, 0, size+size/8)

	b = append(b, `{"specversion":"1.0","id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"source":`...)
	b = appendURI(b, &c.Source.URL)
	b = append(b, `,"type":`...)
	b = appendString(b, c.Type)
	if c.Subject != nil {
		b = append(b, `,"subject":`...)
		b = appendString(b, *c.Subject)
	}
	if c.DataContentType != nil {
		b = append(b, `,"datacontenttype":`...)
		b = appendString(b, *c.DataContentType)
	}
	if c.DataSchema != nil {
		b = append(b, `,"dataschema":`...)
		b = appendURI(b, &c.DataSchema.URL)
	}
	if c.Time != nil {
		b = append(b, `,"time":"`...)
		b = c.Time.Time.UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if ev.DataEncoded != nil {
		mediaType := event.ApplicationJSON
		if c.DataContentType != nil {
			mt, _, _ := strings.Cut(*c.DataContentType, ";")
			mediaType = strings.TrimSpace(strings.ToLower(mt))
		}
		switch {
		case sdkJSONMedia(mediaType) && !ev.DataBase64:
			b = append(b, `,"data":`...)
			b = append(b, ev.DataEncoded...)
		case ev.DataBase64:
			b = append(b, `,"data_base64":"`...)
			b = base64.StdEncoding.AppendEncode(b, ev.DataEncoded)
			b = append(b, '"')
		default:
			b = append(b, `,"data":`...)
			b = appendString(b, string(ev.DataEncoded))
		}
	}
	for _, name := range names[:n] {
		b = append(b, ',')
		b = appendString(b, name)
		b = append(b, ':')
		switch v := c.Extensions[name].(type) {
		case string:
			b = appendString(b, v)
		case int32:
			b = strconv.AppendInt(b, int64(v), 10)
		case bool:
			b = strconv.AppendBool(b, v)
		}
	}
	return append(b, '}'), true
}

// sdkJSONMedia is sdk-go's rule for writing data as JSON rather than as a
// string (exact media types; +json suffixes other than CloudEvents' own are
// written as strings).
func sdkJSONMedia(mediaType string) bool {
	switch mediaType {
	case "", event.ApplicationJSON, event.TextJSON, event.ApplicationCloudEventsJSON, event.ApplicationCloudEventsBatchJSON:
		return true
	}
	return false
}

// appendURI writes u.String() as a JSON string; the common opaque form
// (ceph:s3.region.bucket) without building the string first.
func appendURI(b []byte, u *url.URL) []byte {
	if u.Scheme != "" && u.Opaque != "" && u.RawQuery == "" && !u.ForceQuery && u.Fragment == "" {
		b = append(b, '"')
		b = appendEscaped(b, u.Scheme)
		b = append(b, ':')
		b = appendEscaped(b, u.Opaque)
		return append(b, '"')
	}
	return appendString(b, u.String())
}

func appendString(b []byte, s string) []byte { return AppendJSONString(b, s) }

// AppendJSONString appends s as a JSON string literal: what encoding/json
// escapes, except <, > and & (no HTML here); invalid UTF-8 becomes U+FFFD.
// It is the one JSON string writer of the project (the Lua JSON encoder can
// use it too).
func AppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendEscaped(b, s)
	return append(b, '"')
}

const hexDigits = "0123456789abcdef"

// appendEscaped writes s as the inside of a JSON string literal, escaping
// what encoding/json escapes except <, > and & (no HTML context here).
// Invalid UTF-8 becomes U+FFFD, as in encoding/json.
func appendEscaped(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		if i = jsonstr.Stop(s, i); i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&15])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&15])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}
