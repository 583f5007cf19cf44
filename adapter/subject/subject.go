// Package subject builds NATS subjects from CloudEvents: a template such as
// "rgw.{bucket}.{event}" is parsed once and filled per event, and every value
// is escaped so that it is always exactly one valid subject token, whatever
// the bucket name or object key holds (dots, spaces, slashes, wildcards, any
// UTF-8).
//
// It imports only the CloudEvents event type; it must not import NATS, Lua or
// anything of HTTP.
package subject

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Empty is the token that stands for an empty or missing value: a subject
// cannot have an empty token.
const Empty = "_"

// Token escapes s into one subject token. Letters, digits, '-' and '_' stay;
// every other byte becomes %XX (so '.', ' ', '*', '>', '$', '%' and non-ASCII
// bytes never reach the subject raw). The mapping is reversible (see Unescape)
// except that the empty string becomes Empty.
func Token(s string) string {
	if s == "" {
		return Empty
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if !plain(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 2*n)
	appendToken(&b, s)
	return b.String()
}

func appendToken(b *strings.Builder, s string) {
	if s == "" {
		b.WriteString(Empty)
		return
	}
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(s); i++ {
		c := s[i]
		if plain(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
}

func plain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// MaxLen is the longest subject Valid accepts. nats-server reads a protocol
// line of at most 4096 bytes (max_control_line) and drops the connection,
// which every request shares, on a longer one; the publish line holds the
// subject, a reply inbox (JetStream acks) and two lengths besides, for which
// 256 bytes are left.
const MaxLen = 4096 - 256

// Short cuts a subject for an error message or a log line, saying how
// long it was: a subject can be as long as what the sender put in it.
func Short(s string) string {
	const keep = 120
	if len(s) <= keep {
		return s
	}
	return s[:keep] + "...(" + strconv.Itoa(len(s)) + " bytes)"
}

// Valid reports whether s can be published to: non-empty tokens separated by
// single dots, no whitespace or control characters, no wildcards, at most
// MaxLen bytes.
func Valid(s string) bool {
	if s == "" || len(s) > MaxLen || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	tokenStart := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '.':
			if tokenStart {
				return false
			}
			tokenStart = true
			continue
		case c <= ' ' || c == 0x7f:
			return false
		case (c == '*' || c == '>') && tokenStart && (i+1 == len(s) || s[i+1] == '.'):
			return false
		}
		tokenStart = false
	}
	return true
}

// Template is a parsed subject template. The zero value is not usable; get
// one from Parse. A Template is safe for concurrent use.
type Template struct {
	text  string
	parts []part
}

type part struct {
	literal string // when field == ""
	field   string // bucket, key, event, type, source, id, subject, or ext
	ext     string // extension name when field == "ext"
}

// ErrTemplate is wrapped by every error of Parse.
var ErrTemplate = errors.New("subject template")

// Parse compiles a template. Literal text must itself be valid subject text;
// fields are written {name}:
//
//	{bucket}   the bucket name
//	{key}      the object key
//	{event}    the event name, ':' turned into '.', so ObjectCreated:Put is two tokens
//	{type} {source} {id} {subject}   the CloudEvent attributes
//	{ext:NAME} any extension attribute
func Parse(text string) (*Template, error) {
	t := &Template{text: text}
	rest := text
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if open < 0 {
			t.parts = append(t.parts, part{literal: rest})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, part{literal: rest[:open]})
		}
		end := strings.IndexByte(rest[open:], '}')
		if end < 0 {
			return nil, fmt.Errorf("%w %q: unclosed {", ErrTemplate, text)
		}
		name := rest[open+1 : open+end]
		p, err := fieldPart(name)
		if err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrTemplate, text, err)
		}
		t.parts = append(t.parts, p)
		rest = rest[open+end+1:]
	}
	if strings.ContainsAny(t.literals(), "} \t") {
		return nil, fmt.Errorf("%w %q: stray } or blank", ErrTemplate, text)
	}
	// Every field yields at least one token, so a template that gives a valid
	// subject with placeholder values gives one for every event.
	if sample := t.fill(func(part) string { return "x" }); !Valid(sample) {
		return nil, fmt.Errorf("%w %q: not a valid subject (got %q with sample values)", ErrTemplate, text, sample)
	}
	return t, nil
}

func fieldPart(name string) (part, error) {
	switch name {
	case "bucket", "key", "event", "type", "source", "id", "subject":
		return part{field: name}, nil
	}
	if ext, ok := strings.CutPrefix(name, "ext:"); ok && ext != "" {
		// Extension names are lower case: {ext:Foo} reads foo.
		return part{field: "ext", ext: strings.ToLower(ext)}, nil
	}
	return part{}, fmt.Errorf("unknown field {%s}", name)
}

func (t *Template) literals() string {
	var b strings.Builder
	for _, p := range t.parts {
		b.WriteString(p.literal)
	}
	return b.String()
}

// String returns the template text.
func (t *Template) String() string { return t.text }

// Execute fills the template from ev. Every value is one or more whole
// tokens, but long values make a subject longer than MaxLen: check the
// result with Valid before publishing.
func (t *Template) Execute(ev *event.Event) string {
	return t.fill(func(p part) string { return fieldValue(ev, p) })
}

func (t *Template) fill(value func(part) string) string {
	var b strings.Builder
	b.Grow(len(t.text) + 32)
	for _, p := range t.parts {
		switch p.field {
		case "":
			b.WriteString(p.literal)
		case "event":
			name := value(p)
			name = strings.TrimPrefix(name, "s3:")
			if name == "" {
				b.WriteString(Empty)
				continue
			}
			for i, seg := range strings.Split(name, ":") {
				if i > 0 {
					b.WriteByte('.')
				}
				appendToken(&b, seg)
			}
		default:
			appendToken(&b, value(p))
		}
	}
	return b.String()
}

func fieldValue(ev *event.Event, p part) string {
	if ev.Context == nil {
		return ""
	}
	switch p.field {
	case "bucket":
		return extString(ev, cloudevent.ExtBucket)
	case "key":
		return extString(ev, cloudevent.ExtObjectKey)
	case "event":
		return extString(ev, cloudevent.ExtEventName)
	case "type":
		return ev.Type()
	case "source":
		return ev.Source()
	case "id":
		return ev.ID()
	case "subject":
		return ev.Subject()
	case "ext":
		return extString(ev, p.ext)
	}
	return ""
}

func extString(ev *event.Event, name string) string {
	if ev.Context == nil {
		return ""
	}
	// Names are lower case (SetExtension lowers them), so a plain lookup
	// finds what Context.GetExtension finds by comparing with every name.
	v := cloudevent.Extensions(ev)[name]
	if v == nil {
		return ""
	}
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// StreamSubjects is the subject filter a JetStream stream needs to capture
// every subject the template can produce: its leading literal tokens followed
// by ">" (for example "rgw.>" for "rgw.{bucket}.{event}").
func (t *Template) StreamSubjects() string {
	if len(t.parts) == 0 || t.parts[0].field != "" {
		return ">"
	}
	lit := t.parts[0].literal
	if len(t.parts) == 1 {
		return lit // a fixed subject
	}
	// Only whole tokens count: "rgw.x{bucket}" contributes "rgw." not "rgw.x".
	if i := strings.LastIndexByte(lit, '.'); i >= 0 {
		return lit[:i+1] + ">"
	}
	return ">"
}

// UnmarshalText makes a Template a configuration value (NATS_SUBJECT).
func (t *Template) UnmarshalText(b []byte) error {
	p, err := Parse(string(b))
	if err != nil {
		return err
	}
	*t = *p
	return nil
}

// MarshalText writes the template's text.
func (t Template) MarshalText() ([]byte, error) { return []byte(t.text), nil }

// Overlap reports whether some subject matches both filters (tokens, '*'
// for one token, '>' for the rest), e.g. rgw.> and rgw.*.x do, rgw.> and
// rgwnats.> do not.
func Overlap(a, b string) bool {
	ta, tb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(ta) && i < len(tb); i++ {
		x, y := ta[i], tb[i]
		if x == ">" || y == ">" {
			return true
		}
		if x != "*" && y != "*" && x != y {
			return false
		}
	}
	return len(ta) == len(tb)
}
