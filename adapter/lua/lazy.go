package lua

import (
	"slices"
	"strings"

	glua "github.com/yuin/gopher-lua"

	"github.com/rgw-nats/rgw-nats/internal/jsonstr"
)

// A transform that touches three fields of a record should cost about three
// fields, not the whole record decoded into Lua tables and encoded back. So
// ev.data is a view of its JSON text:
//
//   - One pass over the text checks it with the decoder's own rules and
//     writes an index (a tape: one jnode per value, with its byte span, its
//     key's span and where its subtree ends). Nothing is decoded yet. A
//     large text the caller checked already is not checked again: the pass
//     only finds where its containers end, and members are indexed as
//     they are read (lazyDoc, structure, expand).
//   - An object becomes a real Lua table, empty at first, whose metatable's
//     __index decodes a member when a script first reads it (found by its
//     key in the tape). What a member decoded to is kept for the call:
//     objects and arrays must stay one table (a script that changes rec.s3
//     changes the one table), and a scalar read twice is decoded once.
//     Arrays are decoded when reached (#, table.* and unpack read tables
//     raw), their objects lazily.
//   - Encoding the output splices: a member the script never assigned is
//     copied as the bytes it came as, a table never changed is its original
//     text, only what changed is encoded. An unchanged document is not even
//     copied.
//
// Scripts see the same tables: type() is "table", ipairs, #, table.* and
// assignment work as before. Whatever walks a whole table (pairs, next,
// rawget, rawset, setmetatable, ev:clone, json.encode, publishing a table)
// first decodes the rest of it (fill), in the order of the text, so pairs
// sees what it saw before. getmetatable of a view is nil, as it was.
//
// What differs: the output keeps the members in the order and the spelling
// they came in (the old path sorted keys and re-encoded every value); new
// members come after the original ones, sorted. Both are the same JSON
// value. An object whose keys repeat or hold escapes is decoded whole and
// encoded the old way. A view can only be read during the call it was made
// in: its text's index is reused by the next call.

// jnode is one value of an indexed JSON text.
type jnode struct {
	start, end int32 // the value's bytes
	key0, key1 int32 // its key, inside the quotes (members of objects)
	next       int32 // index of the node after this value and all it holds
	// The nodes of a container's members are kid0 to kidEnd (stepping by
	// next); kid0 is 0 while they are not indexed yet (trusted texts).
	kid0, kidEnd int32
	kind         byte // '{', '[', '"', '0' (number), 'l' (true, false, null)
	keyEsc       bool // the key holds escapes
}

// lazyDoc is an indexed JSON text.
//
// A text the caller vouched for (it passed binding.Check: TransformChecked)
// is not checked again nor indexed whole: one pass finds where each object
// and array ends (structure), and the members of a container are indexed
// when it is first read (expand). A 32 KiB record whose script reads a few
// fields is then stepped over, not indexed value by value.
type lazyDoc struct {
	raw     []byte
	tape    []jnode
	null    glua.LValue
	trusted bool
	opens   []int32 // trusted: where each container starts, in text order
	ends    []int32 // and where it ends (past its last byte)
}

// Member states of a view, until it is full (then its table says it all).
const (
	pending uint8 = iota // not decoded: the text stands
	cached               // decoded: orig
	written              // assigned by the script: val (nil: removed)
)

type lazyMember struct {
	at    int32 // the value's node
	state uint8
	orig  glua.LValue // what it decoded to (cached members; all once full)
	val   glua.LValue // what the script assigned (written)
}

// lazyNode is the view of one object or array of a lazyDoc.
type lazyNode struct {
	doc   *lazyDoc
	at    int32
	t     *glua.LTable
	arr   bool
	full  bool             // every member is in the table
	mem   []lazyMember     // members (elements) in the order of the text
	index map[string]int32 // key -> member, for objects of many members
}

// lazyViews holds the views of the running call; reset after each call.
type lazyViews struct {
	mt    *glua.LTable
	nodes map[*glua.LTable]*lazyNode
	pool  []*lazyNode
	used  int
	docs  []*lazyDoc
	ndocs int
	slab  []glua.LTable // tables for the next views (table)
}

// What a state keeps of its views for the next call is bounded: the tape
// nodes of a text, the views (and the map that finds them), whatever the
// last document was.
const (
	maxKeptTape  = 8192
	maxKeptViews = 1024
)

// indexMembers is the number of members from which a view finds keys
// through a map instead of by a linear search.
const indexMembers = 16

func (v *lazyViews) reset() {
	for _, n := range v.pool[:v.used] {
		clear(n.mem)
		*n = lazyNode{mem: n.mem[:0]}
		if cap(n.mem) > maxKeptStack {
			n.mem = nil
		}
	}
	v.used = 0
	if len(v.pool) > maxKeptViews {
		clear(v.pool[maxKeptViews:])
		v.pool = v.pool[:maxKeptViews:maxKeptViews]
	}
	if len(v.nodes) > maxKeptViews {
		v.nodes = nil // clear would keep its size
	}
	clear(v.nodes)
	for _, d := range v.docs[:v.ndocs] {
		d.raw, d.null, d.trusted = nil, nil, false
		if cap(d.tape) > maxKeptTape {
			d.tape = nil
		}
		if cap(d.opens) > maxKeptTape {
			d.opens, d.ends = nil, nil
		}
		d.tape, d.opens, d.ends = d.tape[:0], d.opens[:0], d.ends[:0]
	}
	v.ndocs = 0
	if len(v.docs) > maxKeptViews {
		clear(v.docs[maxKeptViews:])
		v.docs = v.docs[:maxKeptViews:maxKeptViews]
	}
}

// viewSlab is how many view tables one allocation makes. Each is handed
// out once and never reused: a script may keep a view past its call (using
// it then fails, but it must not turn into another event's data), so a kept
// view keeps its slab alive, no more.
const viewSlab = 32

// table returns a new empty table with metatable mt.
func (v *lazyViews) table(mt glua.LValue) *glua.LTable {
	if len(v.slab) == 0 {
		v.slab = make([]glua.LTable, viewSlab)
	}
	t := &v.slab[0]
	v.slab = v.slab[1:]
	t.Metatable = mt
	return t
}

func (v *lazyViews) newNode(d *lazyDoc, at int32, t *glua.LTable, arr bool) *lazyNode {
	if v.used == len(v.pool) {
		v.pool = append(v.pool, new(lazyNode))
	}
	n := v.pool[v.used]
	v.used++
	n.doc, n.at, n.t, n.arr = d, at, t, arr
	if v.nodes == nil {
		v.nodes = make(map[*glua.LTable]*lazyNode)
	}
	v.nodes[t] = n
	return n
}

// node returns the view of t, nil when t is no view of this call.
func (v *lazyViews) node(t *glua.LTable) *lazyNode {
	if len(v.nodes) == 0 {
		return nil
	}
	return v.nodes[t]
}

// view indexes raw and returns ev.data as a view: a table for an object or
// an array, the value itself for a scalar. Invalid text gets the error the
// decoder gives it. trusted: raw is valid JSON (the caller checked it), only
// its structure is read now.
func (c *jsonCodec) view(raw []byte, null glua.LValue, trusted bool) (glua.LValue, error) {
	v := &c.views
	if v.ndocs == len(v.docs) {
		v.docs = append(v.docs, new(lazyDoc))
	}
	doc := v.docs[v.ndocs]
	v.ndocs++
	doc.raw, doc.null, doc.tape = raw, null, doc.tape[:0]
	if trusted && len(raw) >= minStructure && c.structure(doc) {
		return c.nodeValue(doc, 0), nil
	}
	doc.trusted, doc.opens, doc.ends = false, doc.opens[:0], doc.ends[:0]
	d := jsonDecoder{c: c, data: raw, null: null}
	d.skipSpace()
	err := d.scan(0, &doc.tape)
	d.skipSpace()
	if err != nil || d.pos != len(d.data) {
		return c.decode(raw, null) // its error, exactly as the decoder words it
	}
	return c.nodeValue(doc, 0), nil
}

// scan checks one value as value would decode it and appends its nodes.
func (d *jsonDecoder) scan(depth int, tape *[]jnode) error {
	if depth > maxJSONDepth {
		return errJSONDepth
	}
	if d.pos >= len(d.data) {
		return d.errorf("unexpected end of input")
	}
	i := len(*tape)
	*tape = append(*tape, jnode{start: int32(d.pos)})
	var kind byte
	var err error
	switch c := d.data[d.pos]; {
	case c == '{':
		kind, err = '{', d.scanObject(depth, tape)
	case c == '[':
		kind, err = '[', d.scanArray(depth, tape)
	case c == '"':
		kind = '"'
		_, err = d.stringBytes()
	case c == '-' || c >= '0' && c <= '9':
		kind = '0'
		_, _, err = d.numberText()
	case c == 't':
		kind, err = 'l', d.literal("true")
	case c == 'f':
		kind, err = 'l', d.literal("false")
	case c == 'n':
		kind, err = 'l', d.literal("null")
	default:
		return d.errorf("unexpected %q", c)
	}
	if err != nil {
		return err
	}
	n := &(*tape)[i]
	n.kind, n.end, n.next = kind, int32(d.pos), int32(len(*tape))
	n.kid0, n.kidEnd = int32(i)+1, n.next
	return nil
}

// structure reads a trusted text for what views need before anything is
// read: where each object and array ends. Strings are stepped over eight
// bytes at a time (jsonstr.Quote) and numbers checked as the decoder
// checks them; nothing is indexed. It refuses (false) what the decoder
// would refuse even in valid JSON (nesting deeper than maxJSONDepth, a
// number out of float64's range) and a text that is not a container with
// nothing but space around it: the caller then indexes the text the
// checking way, which decides, and words the error, exactly as before.
func (c *jsonCodec) structure(doc *lazyDoc) bool {
	raw := doc.raw
	start := jsonstr.Space(raw, 0)
	if start == len(raw) || raw[start] != '{' && raw[start] != '[' {
		return false // a scalar: nothing to step over
	}
	opens, ends, stack := doc.opens[:0], doc.ends[:0], c.open[:0]
	ok := true
	for i := start; i < len(raw) && ok; {
		switch structural[raw[i]] {
		case 0: // ':', ',', space, the letters of true, false and null
			i++
			for i < len(raw) && structural[raw[i]] == 0 {
				i++
			}
		case '"':
			i = jsonstr.Skip(raw, i)
		case '{':
			if len(stack) >= maxJSONDepth {
				ok = false
				break
			}
			stack = append(stack, int32(len(opens)))
			opens, ends = append(opens, int32(i)), append(ends, 0)
			i++
		case '}':
			if len(stack) == 0 {
				ok = false
				break
			}
			ends[stack[len(stack)-1]] = int32(i + 1)
			stack = stack[:len(stack)-1]
			i++
		case '0':
			d := jsonDecoder{c: c, data: raw, pos: i}
			if _, _, err := d.numberText(); err != nil {
				ok = false
			}
			i = d.pos
		}
	}
	doc.opens, doc.ends, c.open = opens, ends, stack[:0]
	if !ok || len(stack) != 0 || jsonstr.Space(raw, int(ends[0])) != len(raw) {
		return false
	}
	doc.trusted = true
	doc.tape = append(doc.tape, jnode{start: int32(start), end: ends[0], next: 1, kind: raw[start]})
	return true
}

// minStructure is the size from which a trusted text is stepped over
// rather than indexed whole. Below it the whole index costs no more than
// the pass over the structure (short strings dominate both) and saves
// indexing again the objects a script reads: a 1 KiB record through
// anonymize.lua costs 4 % more instructions stepped over, a 32 KiB one
// about a third less.
const minStructure = 4 << 10

// structural classes the bytes structure stops at: '"' a string, '{' an
// object or array, '}' its end, '0' a number; 0 the bytes it steps over.
var structural = func() (t [256]byte) {
	t['"'], t['{'], t['['], t['}'], t[']'], t['-'] = '"', '{', '{', '}', '}', '0'
	for c := '0'; c <= '9'; c++ {
		t[c] = '0'
	}
	return t
}()

// endOf returns the end of the container that starts at pos.
func (doc *lazyDoc) endOf(pos int32) int32 {
	if i, ok := slices.BinarySearch(doc.opens, pos); ok {
		return doc.ends[i]
	}
	return pos + 1 // not a container: only a text that is not JSON gets here
}

// kids returns the range of the nodes of a container's members, indexing
// them first if need be.
//
// An array is indexed whole, its elements' members too: an array is read
// whole (viewArray), and its objects (metadata, tags) are small and all
// read by a script that reads one (a loop over kv.key), so one pass of the
// indexer beats a pass per element that reads its strings again.
func (c *jsonCodec) kids(doc *lazyDoc, at int32) (int32, int32) {
	if n := doc.tape[at]; n.kid0 == 0 {
		k := int32(len(doc.tape))
		d := jsonDecoder{c: c, data: doc.raw[:n.end], pos: int(n.start), null: doc.null}
		if n.kind != '[' || d.scan(0, &doc.tape) != nil {
			doc.tape = doc.tape[:k]
			c.expand(doc, at)
		} else {
			doc.tape[at].kid0, doc.tape[at].kidEnd = doc.tape[k].kid0, doc.tape[k].kidEnd
		}
	}
	n := &doc.tape[at]
	return n.kid0, n.kidEnd
}

// expand indexes the members (elements) of the container at node at of a
// trusted text: a shallow pass that steps over strings eight bytes at a
// time and over nested containers by their ends. (It keeps in bounds and
// moves on whatever the text: one that is not JSON after all gives wrong
// values, never a crash or a loop.)
func (c *jsonCodec) expand(doc *lazyDoc, at int32) {
	raw := doc.raw
	n := doc.tape[at]
	first := int32(len(doc.tape))
	obj := n.kind == '{'
	end := int(n.end) - 1 // the closing bracket
	for i := int(n.start) + 1; ; {
		if i = space(raw, i); i >= end {
			break
		}
		var k0, k1 int
		esc := false
		if obj {
			var j int
			j, esc = skipString(raw, i)
			k0, k1 = min(i+1, j), max(j-1, i+1)
			if i = space(raw, j) + 1; i >= end { // past ':'
				break
			}
			i = space(raw, i)
		}
		s := i
		var kind byte
		switch raw[i] {
		case '{', '[':
			kind, i = raw[i], int(doc.endOf(int32(i)))
		case '"':
			kind = '"'
			i, _ = skipString(raw, i)
		case 't', 'n':
			kind, i = 'l', i+4
		case 'f':
			kind, i = 'l', i+5
		default:
			d := jsonDecoder{c: c, data: raw[:end], pos: i}
			_, _, _ = d.numberText() // checked by structure
			kind, i = '0', d.pos
		}
		i = min(max(i, s+1), end)
		next := int32(len(doc.tape)) + 1
		doc.tape = append(doc.tape, jnode{start: int32(s), end: int32(i), key0: int32(k0), key1: int32(k1), next: next, kind: kind, keyEsc: esc})
		if i = space(raw, i); i < end && raw[i] == ',' {
			i++
		}
	}
	doc.tape[at].kid0, doc.tape[at].kidEnd = first, int32(len(doc.tape))
}

// space is jsonstr.Space without the call where there is no space, which
// is nearly always in what ingress wrote (compact JSON).
func space(raw []byte, i int) int {
	if i < len(raw) && raw[i] > ' ' {
		return i
	}
	return jsonstr.Space(raw, i)
}

// skipString returns the end of the string whose quote is at raw[i] and
// whether it holds escapes: one search for the common string without.
func skipString(raw []byte, i int) (int, bool) {
	if q := jsonstr.Quote(raw, i+1); q < len(raw) && raw[q] == '"' {
		return q + 1, false
	}
	return jsonstr.Skip(raw, i), true
}

func (d *jsonDecoder) scanObject(depth int, tape *[]jnode) error {
	d.pos++ // {
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == '}' {
		d.pos++
		return nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != '"' {
			return d.errorf("object key must be a string")
		}
		k0 := d.pos + 1
		b, err := d.stringBytes()
		if err != nil {
			return err
		}
		k1 := d.pos - 1
		d.skipSpace()
		if d.pos >= len(d.data) || d.data[d.pos] != ':' {
			return d.errorf("missing ':' after object key")
		}
		d.pos++
		d.skipSpace()
		i := len(*tape)
		if err := d.scan(depth+1, tape); err != nil {
			return err
		}
		// Escapes always make a string shorter than its text.
		n := &(*tape)[i]
		n.key0, n.key1, n.keyEsc = int32(k0), int32(k1), len(b) != k1-k0
		d.skipSpace()
		if d.pos >= len(d.data) {
			return d.errorf("unterminated object")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return nil
		default:
			return d.errorf("want ',' or '}' in object, got %q", d.data[d.pos])
		}
	}
}

func (d *jsonDecoder) scanArray(depth int, tape *[]jnode) error {
	d.pos++ // [
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == ']' {
		d.pos++
		return nil
	}
	for {
		d.skipSpace()
		if err := d.scan(depth+1, tape); err != nil {
			return err
		}
		d.skipSpace()
		if d.pos >= len(d.data) {
			return d.errorf("unterminated array")
		}
		switch d.data[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return nil
		default:
			return d.errorf("want ',' or ']' in array, got %q", d.data[d.pos])
		}
	}
}

// nodeValue is the Lua value of node at: a view for an object or an array,
// the decoded value otherwise.
func (c *jsonCodec) nodeValue(doc *lazyDoc, at int32) glua.LValue {
	n := &doc.tape[at]
	switch n.kind {
	case '{':
		return c.viewObject(doc, at)
	case '[':
		return c.viewArray(doc, at)
	}
	d := jsonDecoder{c: c, data: doc.raw[:n.end], pos: int(n.start), null: doc.null}
	v, err := d.value(0)
	if err != nil {
		// The scan accepted this text: the decoder cannot refuse it.
		panic("lua: json view: " + err.Error())
	}
	return v
}

func (c *jsonCodec) keyOf(doc *lazyDoc, n *jnode) (string, glua.LValue) {
	return c.key(doc.raw[n.key0:n.key1])
}

func (c *jsonCodec) viewObject(doc *lazyDoc, at int32) *glua.LTable {
	v := &c.views
	t := v.table(v.mt)
	ln := v.newNode(doc, at, t, false)
	plain := false
	kid0, kidEnd := c.kids(doc, at)
	for i := kid0; i < kidEnd; i = doc.tape[i].next {
		ln.mem = append(ln.mem, lazyMember{at: i})
		plain = plain || doc.tape[i].keyEsc
	}
	plain = plain || ln.duplicates()
	if plain {
		// Escaped or repeated keys: decoded now, encoded the old way.
		delete(v.nodes, t)
		t.Metatable = glua.LNil
		for _, m := range ln.mem {
			jn := &doc.tape[m.at]
			d := jsonDecoder{c: c, data: doc.raw, pos: int(jn.key0) - 1}
			b, _ := d.stringBytes()
			// The key first: b may be the codec's scratch, which decoding
			// the value (a nested escaped key) would overwrite.
			key, _ := c.key(b)
			t.RawSetString(key, c.nodeValue(doc, m.at))
		}
		clear(ln.mem)
		ln.mem = ln.mem[:0]
	}
	return t
}

// duplicates reports whether a key comes twice (building the key index of
// a large object on the way).
func (ln *lazyNode) duplicates() bool {
	raw, tape := ln.doc.raw, ln.doc.tape
	key := func(m lazyMember) []byte { n := &tape[m.at]; return raw[n.key0:n.key1] }
	if len(ln.mem) > indexMembers {
		ln.index = make(map[string]int32, len(ln.mem))
		for i, m := range ln.mem {
			ln.index[string(key(m))] = int32(i)
		}
		return len(ln.index) != len(ln.mem)
	}
	// Keys of other lengths differ: a key is compared with the earlier
	// ones only when a key of its length (modulo 64) came before.
	var lengths uint64
	for i := range ln.mem {
		a := &tape[ln.mem[i].at]
		bit := uint64(1) << ((a.key1 - a.key0) & 63)
		if lengths&bit != 0 {
			for j := range i {
				if b := &tape[ln.mem[j].at]; a.key1-a.key0 == b.key1-b.key0 && string(key(ln.mem[i])) == string(key(ln.mem[j])) {
					return true
				}
			}
		}
		lengths |= bit
	}
	return false
}

// find returns the member of key, -1 when the object has none.
func (ln *lazyNode) find(key string) int {
	if ln.index != nil {
		if i, ok := ln.index[key]; ok {
			return int(i)
		}
		return -1
	}
	raw, tape := ln.doc.raw, ln.doc.tape
	for i, m := range ln.mem {
		if n := &tape[m.at]; string(raw[n.key0:n.key1]) == key {
			return i
		}
	}
	return -1
}

// viewArray decodes an array at once (its objects stay views): #, table.*
// and unpack read and write array tables raw.
func (c *jsonCodec) viewArray(doc *lazyDoc, at int32) *glua.LTable {
	t := c.views.table(c.arrayMT)
	ln := c.views.newNode(doc, at, t, true)
	ln.full = true
	var elems []glua.LValue
	kid0, kidEnd := c.kids(doc, at)
	if n := kidEnd - kid0; n > 0 {
		elems = make([]glua.LValue, 0, min(n, 64))
	}
	for i := kid0; i < kidEnd; i = doc.tape[i].next {
		e := c.nodeValue(doc, i)
		elems = append(elems, e)
		ln.mem = append(ln.mem, lazyMember{at: i, state: cached, orig: e})
	}
	if ltLayout {
		fieldsOf(t).array = elems
	} else {
		for i, e := range elems {
			t.RawSetInt(i+1, e)
		}
	}
	return t
}

// get is a view's __index: t[key] for a key not in the table. Until the
// view is full its members live in the view, not in the table: a table
// that only had members read or assigned never grows a hash part.
func (c *jsonCodec) get(ln *lazyNode, key glua.LValue) glua.LValue {
	k, ok := key.(glua.LString)
	if !ok || ln.arr || ln.full {
		return glua.LNil // not in the table is not there
	}
	i := ln.find(string(k))
	if i < 0 {
		return glua.LNil
	}
	switch m := &ln.mem[i]; m.state {
	case cached:
		return m.orig
	case written:
		return m.val
	}
	return c.member(ln, i)
}

// member decodes member i of an object view and keeps what it decoded:
// objects and arrays must stay the same table, and a scalar read again
// (if rec.x then f(rec.x) end) is then neither decoded nor boxed again.
func (c *jsonCodec) member(ln *lazyNode, i int) glua.LValue {
	m := &ln.mem[i]
	v := c.nodeValue(ln.doc, m.at)
	m.state, m.orig = cached, v
	return v
}

// set is a view's __newindex: t[key] = value for a key not in the table.
func (c *jsonCodec) set(ln *lazyNode, key, value glua.LValue) {
	if k, ok := key.(glua.LString); ok && !ln.arr && !ln.full {
		if i := ln.find(string(k)); i >= 0 {
			m := &ln.mem[i]
			m.state, m.orig, m.val = written, nil, value
			return
		}
	}
	ln.t.RawSet(key, value)
}

// fill puts every member of a view into its table, in the order of the
// text, and puts the table's keys in that order too (those the script
// added come after), as a whole decoding would have left them.
func (c *jsonCodec) fill(ln *lazyNode) {
	if ln.full {
		return
	}
	ln.full = true
	doc := ln.doc
	for i := range ln.mem {
		m := &ln.mem[i]
		var v glua.LValue
		switch m.state {
		case pending:
			v = c.nodeValue(doc, m.at)
			m.orig = v
		case cached:
			v = m.orig
		case written:
			v, m.orig = m.val, nil // encoded as it is now
		}
		m.state, m.val = cached, nil
		if v != glua.LNil {
			key, lkey := c.keyOf(doc, &doc.tape[m.at])
			setString(ln.t, key, lkey, v)
		}
	}
	if !ltLayout {
		return
	}
	f := fieldsOf(ln.t)
	if len(f.keys) == 0 {
		return
	}
	keys := make([]glua.LValue, 0, len(f.keys))
	for _, m := range ln.mem {
		_, lkey := c.keyOf(doc, &doc.tape[m.at])
		if _, ok := f.k2i[lkey]; ok {
			keys = append(keys, lkey)
		}
	}
	for _, k := range f.keys {
		if s, ok := k.(glua.LString); !ok || ln.find(string(s)) < 0 {
			keys = append(keys, k)
		}
	}
	for i, k := range keys {
		f.k2i[k] = i
	}
	f.keys = keys
}

// setString is t[key] = v with the key boxed once per state.
func setString(t *glua.LTable, key string, lkey glua.LValue, v glua.LValue) {
	if !ltLayout || v == glua.LNil {
		t.RawSetString(key, v)
		return
	}
	f := fieldsOf(t)
	if f.strdict == nil {
		f.strdict = make(map[string]glua.LValue, 4)
		f.keys = make([]glua.LValue, 0, 4)
		f.k2i = make(map[glua.LValue]int, 4)
	}
	f.strdict[key] = v
	if _, ok := f.k2i[lkey]; !ok {
		f.k2i[lkey] = len(f.keys)
		f.keys = append(f.keys, lkey)
	}
}

// spliceView encodes a view: the text's own bytes wherever the script left
// it as it was.
func (c *jsonCodec) spliceView(ln *lazyNode, depth int) error {
	if ln.arr {
		return c.spliceArray(ln, depth)
	}
	doc, t := ln.doc, ln.t
	base := len(c.sorted)
	defer func() {
		clear(c.sorted[base:])
		c.sorted = c.sorted[:base]
	}()
	// The keys the script added (before the view is full, every key in the
	// table is one).
	for k, v := t.Next(glua.LNil); k != glua.LNil; k, v = t.Next(k) {
		s, ok := k.(glua.LString)
		if !ok {
			// A key that is no string: whatever the old path makes of
			// it (an array, or the error of mixed keys).
			return c.plain(ln, depth)
		}
		if !ln.full || ln.find(string(s)) < 0 {
			c.sorted = append(c.sorted, member{key: string(s), val: v})
		}
	}
	c.buf = append(c.buf, '{')
	first := true
	for i := range ln.mem {
		m := &ln.mem[i]
		jn := &doc.tape[m.at]
		var v glua.LValue
		switch {
		case ln.full:
			key, _ := c.keyOf(doc, jn)
			v = t.RawGetString(key)
		case m.state == pending:
			v = nil
		case m.state == cached:
			v = m.orig
		default:
			v = m.val
		}
		if v == glua.LNil {
			continue // removed
		}
		c.buf = appendSep(c.buf, &first)
		if _, tbl := v.(*glua.LTable); v == nil || !tbl && v == m.orig {
			c.buf = append(c.buf, doc.raw[jn.key0-1:jn.end]...) // as it came
			continue
		}
		c.buf = append(c.buf, doc.raw[jn.key0-1:jn.key1+1]...)
		c.buf = append(c.buf, ':')
		if err := c.value(v, depth+1); err != nil {
			return err
		}
	}
	extra := c.sorted[base:]
	slices.SortFunc(extra, func(a, b member) int { return strings.Compare(a.key, b.key) })
	for _, m := range extra {
		c.buf = appendSep(c.buf, &first)
		c.buf = appendJSONKey(c.buf, m.key)
		if err := c.value(m.val, depth+1); err != nil {
			return err
		}
	}
	c.buf = append(c.buf, '}')
	return nil
}

func (c *jsonCodec) spliceArray(ln *lazyNode, depth int) error {
	doc, t := ln.doc, ln.t
	n := t.Len()
	c.buf = append(c.buf, '[')
	for i := 1; i <= n; i++ {
		if i > 1 {
			c.buf = append(c.buf, ',')
		}
		v := t.RawGetInt(i)
		if i <= len(ln.mem) {
			m := &ln.mem[i-1]
			if _, tbl := v.(*glua.LTable); !tbl && v == m.orig {
				jn := &doc.tape[m.at]
				c.buf = append(c.buf, doc.raw[jn.start:jn.end]...)
				continue
			}
		}
		if err := c.value(v, depth+1); err != nil {
			return err
		}
	}
	c.buf = append(c.buf, ']')
	return nil
}

// unchanged reports whether t is a view that its script left as it came,
// all the way down: then the output's data is the text itself, neither
// spliced nor compared (a script that only reads, like a router, is the
// common case). It errs on the side of false: a view made full, or a table
// with anything assigned raw, is spliced as before.
func (c *jsonCodec) unchanged(t *glua.LTable, depth int) bool {
	ln := c.views.node(t)
	if ln == nil || depth > maxJSONDepth {
		return false
	}
	if ln.arr {
		if t.Len() != len(ln.mem) {
			return false
		}
		for i := range ln.mem {
			m := &ln.mem[i]
			v := t.RawGetInt(i + 1)
			if v != m.orig {
				return false
			}
			if e, ok := v.(*glua.LTable); ok && !c.unchanged(e, depth+1) {
				return false
			}
		}
		// Keys other than 1..n (which splicing leaves out) are changes too.
		return ltLayout && len(fieldsOf(t).strdict) == 0 && len(fieldsOf(t).dict) == 0
	}
	if ln.full {
		return false
	}
	if k, _ := t.Next(glua.LNil); k != glua.LNil {
		return false // a key the script added
	}
	for i := range ln.mem {
		switch m := &ln.mem[i]; m.state {
		case written:
			return false
		case cached:
			if e, ok := m.orig.(*glua.LTable); ok && !c.unchanged(e, depth+1) {
				return false
			}
		}
	}
	return true
}

// plain encodes a view as the old path did: all of it, keys sorted.
func (c *jsonCodec) plain(ln *lazyNode, depth int) error {
	c.fill(ln)
	return c.tableOf(ln.t, depth)
}

func appendSep(b []byte, first *bool) []byte {
	if *first {
		*first = false
		return b
	}
	return append(b, ',')
}

// initViews makes the metatable of views: reads and writes of members not
// in the table yet, and pairs over the whole table.
func (st *state) initViews() {
	L := st.L
	mt := L.NewTable()
	mt.RawSetString("__index", L.NewFunction(func(L *glua.LState) int {
		ln := st.viewOf(L, 1)
		L.Push(st.json.get(ln, L.Get(2)))
		return 1
	}))
	mt.RawSetString("__newindex", L.NewFunction(func(L *glua.LState) int {
		ln := st.viewOf(L, 1)
		k := L.Get(2)
		if k == glua.LNil {
			L.RaiseError("table index is nil")
		}
		st.json.set(ln, k, L.Get(3))
		return 0
	}))
	mt.RawSetString("__pairs", L.NewFunction(func(L *glua.LState) int {
		ln := st.viewOf(L, 1)
		st.json.fill(ln)
		L.Push(st.globals.RawGetString("next"))
		L.Push(ln.t)
		L.Push(glua.LNil)
		return 3
	}))
	st.json.views.mt = mt
}

// viewOf returns the view of argument n, a table with the views' metatable.
func (st *state) viewOf(L *glua.LState, n int) *lazyNode {
	t := L.CheckTable(n)
	ln := st.json.views.node(t)
	if ln == nil {
		L.RaiseError("this table is event data of an earlier call; copy what you keep between calls")
	}
	return ln
}

// fillView fills argument n when it is a view.
func (st *state) fillView(L *glua.LState, n int) {
	if t, ok := L.Get(n).(*glua.LTable); ok && t.Metatable == st.json.views.mt {
		st.json.fill(st.viewOf(L, n))
	}
}

// unview turns a view into a plain table (whole, with no metatable), which
// the old path encodes; its members stay views.
func (st *state) unview(L *glua.LState, t *glua.LTable) {
	ln := st.viewOf(L, 1)
	st.json.fill(ln)
	delete(st.json.views.nodes, t)
	t.Metatable = glua.LNil
}

// field is t[key] for Go code: a view's member is decoded as a read would.
func (st *state) field(t *glua.LTable, key string) glua.LValue {
	if v := t.RawGetString(key); v != glua.LNil {
		return v
	}
	if ln := st.json.views.node(t); ln != nil {
		return st.json.get(ln, glua.LString(key))
	}
	return glua.LNil
}

// present reports whether t[key] is not nil, without decoding it.
func (st *state) present(t *glua.LTable, key string) bool {
	if t.RawGetString(key) != glua.LNil {
		return true
	}
	if ln := st.json.views.node(t); ln != nil && !ln.arr {
		if ln.full {
			return false
		}
		// No member decodes to nil: JSON null is the null sentinel here.
		i := ln.find(key)
		if i < 0 {
			return false
		}
		m := &ln.mem[i]
		return m.state != written || m.val != glua.LNil
	}
	return false
}

// unchangedText reports whether t is the view of the whole of raw (not of a
// part of it), left as it came.
func (c *jsonCodec) unchangedText(t *glua.LTable, raw []byte) bool {
	ln := c.views.node(t)
	return ln != nil && ln.at == 0 && sameBytes(ln.doc.raw, raw) && c.unchanged(t, 0)
}
