package rgw

import (
	"strings"
	"unicode/utf8"

	"github.com/rgw-nats/rgw-nats/internal/jsonstr"
)

// scanEnvelope decodes the common envelope, as RGW sends it, in one pass
// without reflection: the Records array is copied once into a string and
// every field is a substring of it, so the records cost one allocation for
// their strings instead of one per field.
//
// It validates everything it reads, and it gives up (ok false) on anything
// where it could disagree with encoding/json: a member name that is not an
// exact field name but matches one case-insensitively, a repeated member, a
// null, a value of another type, a size that is not a plain integer, an
// empty or missing field that Decode must explain. The caller then decodes
// with encoding/json, so the result never depends on which path ran (the
// fuzz test checks this).
func scanEnvelope(body []byte) (recs []Record, ok bool) {
	i := jsonstr.Space(body, 0)
	if i >= len(body) || body[i] != '{' {
		return nil, false
	}
	i = jsonstr.Space(body, i+1)
	seenRecords := false
	if i < len(body) && body[i] == '}' {
		return nil, false // no Records: the slow path says so
	}
	for {
		if i >= len(body) || body[i] != '"' {
			return nil, false
		}
		keyStart := i
		i = jsonstr.Skip(body, i)
		key := body[keyStart:i]
		i = jsonstr.Space(body, i)
		if i >= len(body) || body[i] != ':' {
			return nil, false
		}
		i = jsonstr.Space(body, i+1)
		if i >= len(body) {
			return nil, false
		}
		if string(key) == `"Records"` {
			if seenRecords || body[i] != '[' {
				return nil, false
			}
			seenRecords = true
			if i, recs, ok = scanRecords(body, i); !ok {
				return nil, false
			}
		} else {
			if isRecordsKey(key) || !plainASCII(key) {
				return nil, false
			}
			// Another member: validated, then ignored, as encoding/json
			// does.
			sc := scanner{s: string(body[i:jsonstr.SkipValue(body, i)])}
			if !sc.skipAny() || sc.i != len(sc.s) {
				return nil, false
			}
			i += len(sc.s)
		}
		i = jsonstr.Space(body, i)
		if i >= len(body) {
			return nil, false
		}
		if body[i] == '}' {
			break
		}
		if body[i] != ',' {
			return nil, false
		}
		i = jsonstr.Space(body, i+1)
	}
	if jsonstr.Space(body, i+1) != len(body) || !seenRecords {
		return nil, false
	}
	return recs, true
}

// scanRecords reads the Records array starting at body[i] == '['. The array
// is copied into a string once and scanned in place: every field of every
// record is a substring of that copy, and Raw a subslice of body.
func scanRecords(body []byte, i int) (next int, recs []Record, ok bool) {
	sc := scanner{s: string(body[i:]), i: 1}
	sc.space()
	if sc.peek() == ']' {
		return 0, nil, false // no records: the slow path says so
	}
	for {
		if sc.peek() != '{' {
			return 0, nil, false
		}
		start := sc.i
		recs = append(recs, Record{})
		r := &recs[len(recs)-1]
		if !sc.record(r) {
			return 0, nil, false
		}
		r.Raw = body[i+start : i+sc.i : i+sc.i]
		sc.space()
		switch sc.peek() {
		case ']':
			return i + sc.i + 1, recs, true
		case ',':
			sc.i++
			sc.space()
		default:
			return 0, nil, false
		}
	}
}

// scanRecord decodes one record from s, which must be exactly one JSON
// object.
func scanRecord(s string, r *Record) bool {
	sc := scanner{s: s}
	return sc.record(r) && sc.i == len(s)
}

// record reads the record object at sc.i.
func (sc *scanner) record(r *Record) bool {
	var seen fields
	ok := sc.object(func(key string) bool {
		switch key {
		case "eventVersion":
			return seen.once(0) && sc.str(&r.EventVersion)
		case "eventSource":
			return seen.once(1) && sc.str(&r.EventSource)
		case "awsRegion":
			return seen.once(2) && sc.str(&r.AWSRegion)
		case "eventTime":
			return seen.once(3) && sc.str(&r.EventTime)
		case "eventName":
			return seen.once(4) && sc.str(&r.EventName)
		case "userIdentity":
			return seen.once(5) && sc.identity(&r.UserIdentity)
		case "requestParameters":
			return seen.once(6) && sc.object(func(key string) bool {
				if key == "sourceIPAddress" {
					return seen.once(7) && sc.str(&r.RequestParameters.SourceIPAddress)
				}
				return sc.unknown(key, "sourceIPAddress")
			})
		case "responseElements":
			return seen.once(8) && sc.object(func(key string) bool {
				switch key {
				case "x-amz-request-id":
					return seen.once(9) && sc.str(&r.ResponseElements.RequestID)
				case "x-amz-id-2":
					return seen.once(10) && sc.str(&r.ResponseElements.HostID)
				}
				return sc.unknown(key, "x-amz-request-id", "x-amz-id-2")
			})
		case "s3":
			return seen.once(11) && sc.s3(&r.S3)
		case "eventId":
			return seen.once(12) && sc.str(&r.EventID)
		case "opaqueData":
			return seen.once(13) && sc.str(&r.OpaqueData)
		}
		// "Records" too: DecodeAny takes data with such a member for an
		// envelope.
		return sc.unknown(key, "eventVersion", "eventSource", "awsRegion", "eventTime", "eventName",
			"userIdentity", "requestParameters", "responseElements", "s3", "eventId", "opaqueData", "Records")
	})
	// What checkRecord refuses, the slow path explains.
	return ok && r.EventName != "" && r.S3.Bucket.Name != ""
}

// fields remembers which members of a record were seen, to give up on
// repeats (encoding/json would merge or overwrite them).
type fields uint64

func (f *fields) once(n uint) bool {
	if *f&(1<<n) != 0 {
		return false
	}
	*f |= 1 << n
	return true
}

func (sc *scanner) identity(id *Identity) bool {
	var seen fields
	return sc.object(func(key string) bool {
		if key == "principalId" {
			return seen.once(0) && sc.str(&id.PrincipalID)
		}
		return sc.unknown(key, "principalId")
	})
}

func (sc *scanner) s3(s3 *S3) bool {
	var seen fields
	return sc.object(func(key string) bool {
		switch key {
		case "s3SchemaVersion":
			return seen.once(0) && sc.str(&s3.SchemaVersion)
		case "configurationId":
			return seen.once(1) && sc.str(&s3.ConfigurationID)
		case "bucket":
			return seen.once(2) && sc.object(func(key string) bool {
				b := &s3.Bucket
				switch key {
				case "name":
					return seen.once(3) && sc.str(&b.Name)
				case "id":
					return seen.once(4) && sc.str(&b.ID)
				case "arn":
					return seen.once(5) && sc.str(&b.ARN)
				case "ownerIdentity":
					return seen.once(6) && sc.identity(&b.OwnerIdentity)
				}
				return sc.unknown(key, "name", "id", "arn", "ownerIdentity")
			})
		case "object":
			var eTag, etag string
			ok := seen.once(7) && sc.object(func(key string) bool {
				o := &s3.Object
				switch key {
				case "key":
					return seen.once(8) && sc.str(&o.Key)
				case "size":
					return seen.once(9) && sc.size(&o.Size)
				case "eTag":
					// eTag wins over etag, whatever their order.
					return seen.once(10) && sc.str(&eTag)
				case "etag":
					return seen.once(11) && sc.str(&etag)
				case "versionId":
					return seen.once(12) && sc.str(&o.VersionID)
				case "sequencer":
					return seen.once(13) && sc.str(&o.Sequencer)
				case "metadata":
					return seen.once(14) && sc.keyVals(&o.Metadata)
				case "tags":
					return seen.once(15) && sc.keyVals(&o.Tags)
				}
				return sc.unknown(key, "key", "size", "eTag", "etag", "versionId", "sequencer", "metadata", "tags")
			})
			s3.Object.ETag = eTag
			if eTag == "" {
				s3.Object.ETag = etag
			}
			return ok
		}
		return sc.unknown(key, "s3SchemaVersion", "configurationId", "bucket", "object")
	})
}

// keyVals reads a metadata or tags array; [] gives an empty, non-nil slice
// as encoding/json does.
func (sc *scanner) keyVals(dst *[]KeyVal) bool {
	if !sc.expect('[') {
		return false
	}
	kvs := []KeyVal{}
	sc.space()
	if sc.peek() == ']' {
		sc.i++
		*dst = kvs
		return true
	}
	for {
		var kv KeyVal
		var seen fields
		valSet := false
		ok := sc.object(func(key string) bool {
			switch key {
			case "key":
				return seen.once(0) && sc.str(&kv.Key)
			case "val":
				valSet = true
				return seen.once(1) && sc.str(&kv.Val)
			case "value":
				var v string
				if !seen.once(2) || !sc.str(&v) {
					return false
				}
				if !valSet {
					kv.Val = v
				}
				return true
			}
			return sc.unknown(key, "key", "val", "value")
		})
		if !ok {
			return false
		}
		kvs = append(kvs, kv)
		sc.space()
		switch sc.peek() {
		case ']':
			sc.i++
			*dst = kvs
			return true
		case ',':
			sc.i++
			sc.space()
		default:
			return false
		}
	}
}

// scanner reads JSON from a string; every method returns false where the
// fast path gives up.
type scanner struct {
	s     string
	i     int
	depth int
}

// maxDepth bounds the nesting the fast path follows (records nest four
// deep); deeper input goes to encoding/json, which has its own limit.
const maxDepth = 32

func (sc *scanner) peek() byte {
	if sc.i < len(sc.s) {
		return sc.s[sc.i]
	}
	return 0
}

func (sc *scanner) space() { sc.i = jsonstr.Space(sc.s, sc.i) }

func (sc *scanner) expect(c byte) bool {
	sc.space()
	if sc.peek() != c {
		return false
	}
	sc.i++
	return true
}

// object reads {"name": value, ...}, calling member with the scanner at
// each value. Names with escapes or outside ASCII are given up on: they may
// unescape or fold to a field name.
func (sc *scanner) object(member func(name string) bool) bool {
	if !sc.expect('{') || sc.depth >= maxDepth {
		return false
	}
	sc.depth++
	defer func() { sc.depth-- }()
	sc.space()
	if sc.peek() == '}' {
		sc.i++
		return true
	}
	for {
		lit, plain, ok := sc.literal()
		if !ok || !plain {
			return false
		}
		if !sc.expect(':') {
			return false
		}
		sc.space()
		if !member(lit[1 : len(lit)-1]) {
			return false
		}
		sc.space()
		switch sc.peek() {
		case '}':
			sc.i++
			return true
		case ',':
			sc.i++
			sc.space()
		default:
			return false
		}
	}
}

// unknown skips the value of a member that is none of names; a name that
// encoding/json would match to one of them case-insensitively is given up on.
func (sc *scanner) unknown(name string, names ...string) bool {
	for _, n := range names {
		if strings.EqualFold(name, n) {
			return false
		}
	}
	return sc.skipAny()
}

// literal returns the string literal at sc.i, quotes included, after
// checking it holds no control characters; plain says that it has no
// escapes and only ASCII, so that its content is itself.
func (sc *scanner) literal() (lit string, plain, ok bool) {
	lit, escaped, ascii, ok := sc.quoted()
	return lit, ok && !escaped && ascii, ok
}

// quoted is literal with both things plain is made of.
func (sc *scanner) quoted() (lit string, escaped, ascii, ok bool) {
	if sc.peek() != '"' {
		return "", false, false, false
	}
	start := sc.i
	ascii = true
	for i := start + 1; ; {
		i = jsonstr.Stop(sc.s, i)
		if i >= len(sc.s) {
			return "", false, false, false
		}
		switch c := sc.s[i]; {
		case c == '"':
			sc.i = i + 1
			return sc.s[start:sc.i], escaped, ascii, true
		case c == '\\':
			escaped = true
			i += 2
		case c < 0x20:
			return "", false, false, false
		default:
			ascii = false
			i++
		}
	}
}

// str reads a string value into dst: a substring when it has no escapes and
// is valid UTF-8 (the common case), else decoded as encoding/json decodes it.
func (sc *scanner) str(dst *string) bool {
	lit, escaped, ascii, ok := sc.quoted()
	if !ok {
		return false
	}
	body := lit[1 : len(lit)-1]
	if !escaped && (ascii || utf8.ValidString(body)) {
		*dst = body
		return true
	}
	v, err := unquote([]byte(lit))
	if err != nil {
		return false
	}
	*dst = v
	return true
}

// size reads a plain non-negative integer; anything else (a string, a
// fraction, an exponent) is left to parseSize on the slow path.
func (sc *scanner) size(dst *int64) bool {
	start := sc.i
	var n int64
	for sc.i < len(sc.s) && sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9' {
		n = n*10 + int64(sc.s[sc.i]-'0')
		sc.i++
	}
	digits := sc.i - start
	if digits == 0 || digits > 18 || (digits > 1 && sc.s[start] == '0') {
		return false
	}
	switch sc.peek() {
	case '.', 'e', 'E':
		return false
	}
	*dst = n
	return true
}

// skipAny validates and skips any JSON value.
func (sc *scanner) skipAny() bool {
	sc.space()
	switch c := sc.peek(); {
	case c == '"':
		lit, plain, ok := sc.literal()
		if !ok {
			return false
		}
		if !plain {
			// Escapes must be valid; bytes that are not UTF-8 are replaced
			// by encoding/json, not rejected.
			_, err := unquote([]byte(lit))
			return err == nil
		}
		return true
	case c == '{':
		return sc.object(func(string) bool { return sc.skipAny() })
	case c == '[':
		if sc.depth >= maxDepth {
			return false
		}
		sc.depth++
		defer func() { sc.depth-- }()
		sc.i++
		sc.space()
		if sc.peek() == ']' {
			sc.i++
			return true
		}
		for {
			if !sc.skipAny() {
				return false
			}
			sc.space()
			switch sc.peek() {
			case ']':
				sc.i++
				return true
			case ',':
				sc.i++
			default:
				return false
			}
		}
	case c == 't':
		return sc.word("true")
	case c == 'f':
		return sc.word("false")
	case c == 'n':
		return sc.word("null")
	case c == '-' || (c >= '0' && c <= '9'):
		return sc.number()
	}
	return false
}

func (sc *scanner) word(w string) bool {
	if !strings.HasPrefix(sc.s[sc.i:], w) {
		return false
	}
	sc.i += len(w)
	return true
}

// number checks the JSON number grammar: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
func (sc *scanner) number() bool {
	if sc.peek() == '-' {
		sc.i++
	}
	switch c := sc.peek(); {
	case c == '0':
		sc.i++
	case c >= '1' && c <= '9':
		sc.digits()
	default:
		return false
	}
	if sc.peek() == '.' {
		sc.i++
		if !sc.digits() {
			return false
		}
	}
	if c := sc.peek(); c == 'e' || c == 'E' {
		sc.i++
		if c := sc.peek(); c == '+' || c == '-' {
			sc.i++
		}
		if !sc.digits() {
			return false
		}
	}
	return true
}

func (sc *scanner) digits() bool {
	start := sc.i
	for sc.i < len(sc.s) && sc.s[sc.i] >= '0' && sc.s[sc.i] <= '9' {
		sc.i++
	}
	return sc.i > start
}

func plainASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 || c == '\\' {
			return false
		}
	}
	return true
}
