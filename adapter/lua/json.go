package lua

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/rgw-nats/rgw-nats/adapter/binding"
	"github.com/rgw-nats/rgw-nats/internal/jsonstr"

	glua "github.com/yuin/gopher-lua"
)

// maxJSONDepth bounds nesting both ways: deep input cannot exhaust the Go
// stack, and a table that contains itself fails instead of looping.
const maxJSONDepth = 200

var errJSONDepth = errors.New("json: nested too deeply (or a table contains itself)")

// jsonCodec converts between JSON text and Lua values inside one state. JSON
// arrays decode to tables carrying arrayMT, so that an empty array ("metadata":[])
// encodes back as [] and not as {}. JSON null decodes to the state's null
// sentinel (rgwnats.json.null, cjson.null) so it survives a round trip inside
// arrays and objects. Numbers are float64 in gopher-lua: integral values encode
// without a fraction or exponent, so integers stay integers (exactly up to 2^53).
//
// A codec is owned by one state and is not safe for concurrent use; its buffers
// are reused from call to call.
type jsonCodec struct {
	L       *glua.LState
	arrayMT *glua.LTable
	null    glua.LValue

	buf  []byte
	keys []string // a stack of object keys being sorted, shared by nested objects
	str  []byte   // scratch for unescaping strings

	// Decoding: a stack of the members of the objects and the elements of
	// the arrays being read, shared by nested ones, so that each table is
	// built once at its final size (see ltable.go).
	members []member
	elems   []glua.LValue
	// Object keys seen so far, boxed once: the same keys come back in
	// every event, and a table holds each of its keys as an LValue.
	interned map[string]glua.LValue
	// Encoding: a stack of the members of objects being written.
	sorted []member

	max     int          // encoding stops with errLimitHit past this many bytes
	expired *atomic.Bool // encoding stops with errExpired once it is set
	values  int

	// Views of event data (lazy.go); splice: encoding an output, where a
	// view is written from its text wherever it is unchanged.
	views  lazyViews
	splice bool
	open   []int32 // scratch: the containers open during structure
}

// decode parses one JSON text. null is what JSON null becomes (the sentinel,
// or LNil for lunajson, whose default is to drop nulls).
func (c *jsonCodec) decode(data []byte, null glua.LValue) (glua.LValue, error) {
	d := jsonDecoder{c: c, data: data, null: null}
	defer c.dropLargeStacks()
	d.skipSpace()
	v, err := d.value(0)
	if err != nil {
		return glua.LNil, err
	}
	d.skipSpace()
	if d.pos != len(d.data) {
		return glua.LNil, d.errorf("unexpected %q after the value", d.data[d.pos])
	}
	return v, nil
}

type jsonDecoder struct {
	c    *jsonCodec
	data []byte
	pos  int
	null glua.LValue
}

func (d *jsonDecoder) errorf(format string, args ...any) error {
	return fmt.Errorf("json: offset %d: %s", d.pos, fmt.Sprintf(format, args...))
}

func (d *jsonDecoder) skipSpace() { d.pos = space(d.data, d.pos) }

func (d *jsonDecoder) value(depth int) (glua.LValue, error) {
	if depth > maxJSONDepth {
		return glua.LNil, errJSONDepth
	}
	if d.pos >= len(d.data) {
		return glua.LNil, d.errorf("unexpected end of input")
	}
	switch c := d.data[d.pos]; {
	case c == '{':
		return d.object(depth)
	case c == '[':
		return d.array(depth)
	case c == '"':
		s, err := d.string()
		if err != nil {
			return glua.LNil, err
		}
		return glua.LString(s), nil
	case c == '-' || c >= '0' && c <= '9':
		return d.number()
	case c == 't':
		return glua.LTrue, d.literal("true")
	case c == 'f':
		return glua.LFalse, d.literal("false")
	case c == 'n':
		return d.null, d.literal("null")
	default:
		return glua.LNil, d.errorf("unexpected %q", c)
	}
}

func (d *jsonDecoder) literal(word string) error {
	if len(d.data)-d.pos < len(word) || string(d.data[d.pos:d.pos+len(word)]) != word {
		return d.errorf("invalid literal, want %s", word)
	}
	d.pos += len(word)
	return nil
}

// member is one key and value of an object.
type member struct {
	key  string
	lkey glua.LValue // key as an LValue (interned for decoding)
	val  glua.LValue
}

// Interning is bounded: keys are the names of fields, short and few; a
// stream of distinct keys (a map of ids) must not fill the state.
const (
	maxInterned    = 512
	maxInternedLen = 32
)

// maxKeptStack is the most entries of members, elems or sorted a state
// keeps for reuse: one huge document must not pin its scratch.
const maxKeptStack = 1024

func (c *jsonCodec) dropLargeStacks() {
	if cap(c.members) > maxKeptStack {
		c.members = nil
	}
	if cap(c.elems) > maxKeptStack {
		c.elems = nil
	}
	if cap(c.sorted) > maxKeptStack {
		c.sorted = nil
	}
}

// key returns the object key b as a string and an LValue, interned.
func (c *jsonCodec) key(b []byte) (string, glua.LValue) {
	if lv, ok := c.interned[string(b)]; ok {
		return string(lv.(glua.LString)), lv
	}
	s := string(b)
	lv := glua.LValue(glua.LString(s))
	if len(b) <= maxInternedLen && len(c.interned) < maxInterned {
		if c.interned == nil {
			c.interned = make(map[string]glua.LValue)
		}
		c.interned[s] = lv
	}
	return s, lv
}

func (d *jsonDecoder) object(depth int) (glua.LValue, error) {
	d.pos++ // {
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return d.c.L.CreateTable(0, 0), nil
	}
	c := d.c
	base := len(c.members)
	defer func() {
		clear(c.members[base:]) // the stack must not keep the tables alive
		c.members = c.members[:base]
	}()
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return glua.LNil, d.errorf("object key must be a string")
		}
		b, err := d.stringBytes()
		if err != nil {
			return glua.LNil, err
		}
		key, lkey := c.key(b)
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return glua.LNil, d.errorf("missing ':' after object key")
		}
		d.pos++
		d.skipSpace()
		v, err := d.value(depth + 1)
		if err != nil {
			return glua.LNil, err
		}
		if v != glua.LNil {
			c.members = append(c.members, member{key, lkey, v})
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return glua.LNil, d.errorf("unterminated object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return newObject(c.members[base:]), nil
		default:
			return glua.LNil, d.errorf("want ',' or '}' in object, got %q", d.data[d.pos])
		}
	}
}

// newObject makes the table of an object's members, none of them nil. A
// key that comes again replaces the value and keeps its place, as with
// RawSetString.
func newObject(ms []member) *glua.LTable {
	t := &glua.LTable{Metatable: glua.LNil}
	if !ltLayout {
		for _, m := range ms {
			t.RawSetString(m.key, m.val)
		}
		return t
	}
	f := fieldsOf(t)
	f.strdict = make(map[string]glua.LValue, len(ms))
	f.keys = make([]glua.LValue, 0, len(ms))
	f.k2i = make(map[glua.LValue]int, len(ms))
	for _, m := range ms {
		f.strdict[m.key] = m.val
		if len(f.strdict) > len(f.keys) { // not a key that came again
			f.k2i[m.lkey] = len(f.keys)
			f.keys = append(f.keys, m.lkey)
		}
	}
	return t
}

func (d *jsonDecoder) array(depth int) (glua.LValue, error) {
	d.pos++ // [
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		t := d.c.L.CreateTable(0, 0)
		t.Metatable = d.c.arrayMT
		return t, nil
	}
	c := d.c
	base := len(c.elems)
	defer func() {
		clear(c.elems[base:])
		c.elems = c.elems[:base]
	}()
	for {
		d.skipSpace()
		v, err := d.value(depth + 1)
		if err != nil {
			return glua.LNil, err
		}
		c.elems = append(c.elems, v)
		d.skipSpace()
		if d.pos >= len(d.data) {
			return glua.LNil, d.errorf("unterminated array")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			t := newArray(c.elems[base:])
			t.Metatable = c.arrayMT
			return t, nil
		default:
			return glua.LNil, d.errorf("want ',' or ']' in array, got %q", d.data[d.pos])
		}
	}
}

// newArray makes the table of an array's elements; a nil element (a JSON
// null decoded as nil) is a hole, as with RawSetInt.
func newArray(vs []glua.LValue) *glua.LTable {
	t := glua.LTable{Metatable: glua.LNil}
	if !ltLayout {
		for i, v := range vs {
			t.RawSetInt(i+1, v)
		}
		return &t
	}
	fieldsOf(&t).array = slices.Clone(vs)
	return &t
}

func (d *jsonDecoder) number() (glua.LValue, error) {
	text, exact, err := d.numberText()
	if err != nil {
		return glua.LNil, err
	}
	if exact {
		// Exact in a float64 and the common case (sizes, counts): no
		// string conversion needed.
		var v int64
		digits := text
		if digits[0] == '-' {
			digits = digits[1:]
		}
		for _, c := range digits {
			v = v*10 + int64(c-'0')
		}
		if text[0] == '-' {
			v = -v
		}
		return glua.LNumber(v), nil
	}
	f, _ := strconv.ParseFloat(string(text), 64)
	return glua.LNumber(f), nil
}

// numberText reads a number and checks it: exact when it is an integer of
// at most 15 digits (then it needs no strconv), otherwise ParseFloat must
// take it.
func (d *jsonDecoder) numberText() (text []byte, exact bool, err error) {
	start := d.pos
	if d.data[d.pos] == '-' {
		d.pos++
	}
	digits := func() int {
		n := 0
		for d.pos < len(d.data) && d.data[d.pos] >= '0' && d.data[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	intStart := d.pos
	n := digits()
	if n == 0 {
		return nil, false, d.errorf("invalid number")
	}
	if n > 1 && d.data[intStart] == '0' {
		return nil, false, d.errorf("invalid number: leading zero")
	}
	integral := true
	if d.pos < len(d.data) && d.data[d.pos] == '.' {
		integral = false
		d.pos++
		if digits() == 0 {
			return nil, false, d.errorf("invalid number: no digits after '.'")
		}
	}
	if d.pos < len(d.data) && (d.data[d.pos] == 'e' || d.data[d.pos] == 'E') {
		integral = false
		d.pos++
		if d.pos < len(d.data) && (d.data[d.pos] == '+' || d.data[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return nil, false, d.errorf("invalid number: no digits in exponent")
		}
	}
	text = d.data[start:d.pos]
	if integral && n <= 15 {
		return text, true, nil
	}
	if _, err := strconv.ParseFloat(string(text), 64); err != nil {
		return nil, false, d.errorf("invalid number %q", text)
	}
	return text, false, nil
}

// string reads a JSON string starting at its opening quote.
func (d *jsonDecoder) string() (string, error) {
	b, err := d.stringBytes()
	return string(b), err
}

// stringBytes is string without the copy: the bytes are the input's or the
// codec's scratch, valid until the next string is read.
func (d *jsonDecoder) stringBytes() ([]byte, error) {
	d.pos++ // "
	start := d.pos
	for {
		d.pos = jsonstr.Stop(d.data, d.pos)
		if d.pos >= len(d.data) {
			break
		}
		c := d.data[d.pos]
		if c == '"' {
			d.pos++
			return d.data[start : d.pos-1], nil
		}
		if c == '\\' {
			break
		}
		if c < 0x20 {
			return nil, d.errorf("control character in string")
		}
		d.pos++ // a byte outside ASCII
	}
	// Slow path: escapes.
	b := append(d.c.str[:0], d.data[start:d.pos]...)
	for {
		if d.pos >= len(d.data) {
			return nil, d.errorf("unterminated string")
		}
		c := d.data[d.pos]
		switch {
		case c == '"':
			d.pos++
			d.c.str = b
			return b, nil
		case c < 0x20:
			return nil, d.errorf("control character in string")
		case c != '\\':
			b = append(b, c)
			d.pos++
			continue
		}
		d.pos++
		if d.pos >= len(d.data) {
			return nil, d.errorf("unterminated escape")
		}
		e := d.data[d.pos]
		d.pos++
		switch e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := d.hex4()
			if !ok {
				return nil, d.errorf("invalid \\u escape")
			}
			if utf16.IsSurrogate(r) {
				r2 := utf8.RuneError
				if len(d.data)-d.pos >= 6 && d.data[d.pos] == '\\' && d.data[d.pos+1] == 'u' {
					save := d.pos
					d.pos += 2
					if lo, ok := d.hex4(); ok {
						r2 = utf16.DecodeRune(r, lo)
					}
					if r2 == utf8.RuneError {
						d.pos = save
					}
				}
				r = r2
			}
			b = utf8.AppendRune(b, r)
		default:
			return nil, d.errorf("invalid escape \\%c", e)
		}
	}
}

func (d *jsonDecoder) hex4() (rune, bool) {
	if len(d.data)-d.pos < 4 {
		return 0, false
	}
	var r rune
	for _, c := range d.data[d.pos : d.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, false
		}
	}
	d.pos += 4
	return r, true
}

// encodeMax is encode bounded: it fails with errLimitHit once the text is
// longer than max bytes (returning what it has, longer than max), and with
// errExpired once expired (checked every 1024 values) is set: the deadline
// passed. A table of a million entries is one Go call for the VM: these
// checks are what bound it.
func (c *jsonCodec) encodeMax(v glua.LValue, max int, expired *atomic.Bool) ([]byte, error) {
	c.buf = c.buf[:0]
	c.keys = c.keys[:0]
	c.max, c.expired, c.values = max, expired, 0
	err := c.value(v, 0)
	c.dropLargeStacks()
	if err == nil && len(c.buf) > max {
		err = errLimitHit
	}
	if cap(c.buf) > maxKeptBuffer {
		// One huge encoding must not pin its buffer in the state.
		b := c.buf
		c.buf = nil
		return b, err
	}
	return c.buf, err
}

// encodeOutput is encodeMax for the data of an output event: views are
// spliced (see lazy.go).
func (c *jsonCodec) encodeOutput(v glua.LValue, max int, expired *atomic.Bool) ([]byte, error) {
	c.splice = true
	defer func() { c.splice = false }()
	return c.encodeMax(v, max, expired)
}

// maxKeptBuffer is the largest encoding buffer a state keeps for reuse.
const maxKeptBuffer = 256 << 10

func (c *jsonCodec) value(v glua.LValue, depth int) error {
	if len(c.buf) > c.max {
		return errLimitHit
	}
	if c.values++; c.values%1024 == 0 && c.expired != nil && c.expired.Load() {
		return errExpired
	}
	switch v := v.(type) {
	case *glua.LNilType:
		c.buf = append(c.buf, "null"...)
	case glua.LBool:
		c.buf = strconv.AppendBool(c.buf, bool(v))
	case glua.LNumber:
		return c.number(float64(v))
	case glua.LString:
		c.buf = binding.AppendJSONString(c.buf, string(v))
	case *glua.LTable:
		if depth >= maxJSONDepth {
			return errJSONDepth
		}
		if ln := c.views.node(v); ln != nil {
			if c.splice {
				return c.spliceView(ln, depth)
			}
			c.fill(ln)
		}
		return c.tableOf(v, depth)
	default:
		if v == c.null {
			c.buf = append(c.buf, "null"...)
			return nil
		}
		return fmt.Errorf("json: cannot encode a %s", v.Type())
	}
	return nil
}

func (c *jsonCodec) number(f float64) error {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return fmt.Errorf("json: cannot encode %v", f)
	}
	if f == math.Trunc(f) && math.Abs(f) < 1e21 {
		c.buf = strconv.AppendFloat(c.buf, f, 'f', -1, 64)
		return nil
	}
	n := len(c.buf)
	c.buf = strconv.AppendFloat(c.buf, f, 'g', -1, 64)
	// 1e-07 -> 1e-7, as encoding/json writes it.
	if b := c.buf[n:]; len(b) >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
		b[len(b)-2] = b[len(b)-1]
		c.buf = c.buf[:len(c.buf)-1]
	}
	return nil
}

// tableOf encodes t as an array when it carries arrayMT or holds exactly the
// keys 1..n (n > 0), and as an object when all its keys are strings.
func (c *jsonCodec) tableOf(t *glua.LTable, depth int) error {
	if t.Metatable == c.arrayMT {
		return c.array(t, t.Len(), depth)
	}
	if ltLayout {
		// Only string keys: read them straight from the table's map,
		// without next's lookup of each key's position.
		if f := fieldsOf(t); len(f.dict) == 0 && !slices.ContainsFunc(f.array, isNotNil) {
			return c.object(f.strdict, depth)
		}
	}
	base := len(c.keys)
	defer func() { c.keys = c.keys[:base] }()
	count, maxInt, other := 0, 0, false
	for k, _ := t.Next(glua.LNil); k != glua.LNil; k, _ = t.Next(k) {
		count++
		switch k := k.(type) {
		case glua.LString:
			c.keys = append(c.keys, string(k))
		case glua.LNumber:
			if i := int(k); float64(i) == float64(k) && i >= 1 {
				maxInt = max(maxInt, i)
				continue
			}
			other = true
		default:
			other = true
		}
	}
	strKeys := len(c.keys) - base
	switch {
	case count == 0:
		c.buf = append(c.buf, "{}"...)
		return nil
	case strKeys == 0 && !other && maxInt == count:
		return c.array(t, count, depth)
	case strKeys != count:
		return errors.New("json: cannot encode a table mixing array and object keys (or with sparse, non-string keys)")
	}
	keys := c.keys[base:]
	slices.Sort(keys)
	c.buf = append(c.buf, '{')
	for i, k := range keys {
		if i > 0 {
			c.buf = append(c.buf, ',')
		}
		c.buf = binding.AppendJSONString(c.buf, k)
		c.buf = append(c.buf, ':')
		if err := c.value(t.RawGetString(k), depth+1); err != nil {
			return err
		}
	}
	c.buf = append(c.buf, '}')
	return nil
}

func isNotNil(v glua.LValue) bool { return v != glua.LNil }

func appendJSONKey(b []byte, key string) []byte {
	return append(binding.AppendJSONString(b, key), ':')
}

// object encodes the members of a table with only string keys, sorted.
func (c *jsonCodec) object(m map[string]glua.LValue, depth int) error {
	if len(m) == 0 {
		c.buf = append(c.buf, "{}"...)
		return nil
	}
	base := len(c.sorted)
	defer func() {
		clear(c.sorted[base:])
		c.sorted = c.sorted[:base]
	}()
	for k, v := range m {
		c.sorted = append(c.sorted, member{key: k, val: v})
	}
	slices.SortFunc(c.sorted[base:], func(a, b member) int { return strings.Compare(a.key, b.key) })
	c.buf = append(c.buf, '{')
	for i := base; i < len(c.sorted); i++ {
		if i > base {
			c.buf = append(c.buf, ',')
		}
		m := c.sorted[i]
		c.buf = binding.AppendJSONString(c.buf, m.key)
		c.buf = append(c.buf, ':')
		if err := c.value(m.val, depth+1); err != nil {
			return err
		}
	}
	c.buf = append(c.buf, '}')
	return nil
}

func (c *jsonCodec) array(t *glua.LTable, n, depth int) error {
	c.buf = append(c.buf, '[')
	for i := 1; i <= n; i++ {
		if i > 1 {
			c.buf = append(c.buf, ',')
		}
		if err := c.value(t.RawGetInt(i), depth+1); err != nil {
			return err
		}
	}
	c.buf = append(c.buf, ']')
	return nil
}
