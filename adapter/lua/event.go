package lua

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/binding"

	"github.com/cloudevents/sdk-go/v2/event"
	"github.com/cloudevents/sdk-go/v2/types"
	glua "github.com/yuin/gopher-lua"

	"github.com/rgw-nats/rgw-nats/adapter/subject"
)

// luaEvent is the event a transform function receives: a userdata whose
// fields map onto the CloudEvent. The event given to Transform is never
// written: the first change copies its context (copy on write), and the
// data is decoded only when the script reads ev.data and re-encoded only
// then.
type luaEvent struct {
	ud  glua.LUserData
	gen uint64 // the call it belongs to

	src *event.Event // as received
	mod *event.Event // the copy changes go to; nil while unchanged

	data      glua.LValue // ev.data once read or assigned
	dataSet   bool
	checked   bool // src's data is valid JSON: the caller checked it
	dataDirty bool // data must be encoded into the output

	subject  string       // NATS subject; "" = the service's template
	header   *glua.LTable // NATS headers once the script touched them
	inHeader map[string][]string

	// The proxies ev.ext and ev.nats, made together on first use of
	// either: one allocation for both, none for a script that uses neither.
	proxies *eventProxies
}

type eventProxies struct{ ext, nats glua.LUserData }

func (st *state) proxies(le *luaEvent) *eventProxies {
	if le.proxies == nil {
		le.proxies = &eventProxies{
			ext:  glua.LUserData{Value: le, Env: st.globals, Metatable: st.extMT},
			nats: glua.LUserData{Value: le, Env: st.globals, Metatable: st.natsMT},
		}
	}
	return le.proxies
}

func (le *luaEvent) current() *event.Event {
	if le.mod != nil {
		return le.mod
	}
	return le.src
}

// writable returns the event to change, copying the received one first.
func (le *luaEvent) writable() *event.Event {
	if le.mod == nil {
		le.mod = copyEvent(le.src)
	}
	return le.mod
}

// copyEvent copies the context (extensions included); data bytes are shared,
// as they are only ever replaced, never written in place.
//
// The same holds for a CloudEvents 1.0 context: its setters replace its
// time, source and schema, never write into them, so a copy of the struct
// and of the extensions map (SetExtension writes into that one) is a copy.
// sdk-go's Clone copies every attribute deeply besides, which was most of
// what changing one attribute cost a script (6 allocations of 8).
func copyEvent(src *event.Event) *event.Event {
	m := *src
	switch c := src.Context.(type) {
	case nil:
		m.Context = (&event.EventContextV1{}).AsV1()
	case *event.EventContextV1:
		cc := *c
		cc.Extensions = maps.Clone(c.Extensions)
		m.Context = &cc
	default:
		m.Context = src.Context.Clone()
	}
	return &m
}

func (st *state) newEvent(in Output) *glua.LUserData {
	le := &luaEvent{gen: st.gen, src: in.Event, subject: in.Subject, inHeader: in.Header, checked: in.DataJSON}
	le.ud = glua.LUserData{Value: le, Env: st.globals, Metatable: st.eventMT}
	return &le.ud
}

func (st *state) initEvents() {
	L := st.L
	st.clone = L.NewFunction(st.evClone)
	st.eventMT = st.protectedMeta(map[string]glua.LValue{
		"__index":    L.NewFunction(st.evIndex),
		"__newindex": L.NewFunction(st.evNewIndex),
		"__tostring": L.NewFunction(func(L *glua.LState) int {
			le := st.checkEvent(L, 1)
			L.Push(glua.LString("event " + le.current().ID()))
			return 1
		}),
	})
	st.extMT = st.protectedMeta(map[string]glua.LValue{
		"__index":    L.NewFunction(st.extIndex),
		"__newindex": L.NewFunction(st.extNewIndex),
		"__pairs":    L.NewFunction(st.extPairs),
	})
	st.natsMT = st.protectedMeta(map[string]glua.LValue{
		"__index":    L.NewFunction(st.natsIndex),
		"__newindex": L.NewFunction(st.natsNewIndex),
	})
}

func (st *state) checkEvent(L *glua.LState, n int) *luaEvent {
	ud := L.CheckUserData(n)
	le, ok := ud.Value.(*luaEvent)
	if !ok {
		L.ArgError(n, "event expected")
	}
	if st.cur == nil || le.gen != st.gen {
		L.RaiseError("this event belongs to an earlier call; events cannot be kept between calls")
	}
	return le
}

func optString(s string) glua.LValue {
	if s == "" {
		return glua.LNil
	}
	return glua.LString(s)
}

func (st *state) evIndex(L *glua.LState) int {
	le := st.checkEvent(L, 1)
	key := L.CheckString(2)
	ev := le.current()
	var v glua.LValue
	switch key {
	case "id":
		v = glua.LString(ev.ID())
	case "source":
		v = glua.LString(ev.Source())
	case "type":
		v = glua.LString(ev.Type())
	case "subject":
		v = optString(ev.Subject())
	case "time":
		if t := ev.Time(); !t.IsZero() {
			v = glua.LString(types.FormatTime(t))
		} else {
			v = glua.LNil
		}
	case "datacontenttype":
		v = optString(ev.DataContentType())
	case "dataschema":
		v = optString(ev.DataSchema())
	case "specversion":
		v = glua.LString(ev.SpecVersion())
	case "data":
		v = st.loadData(L, le)
	case "record":
		v = st.record(L, le)
	case "ext":
		v = &st.proxies(le).ext
	case "nats":
		v = &st.proxies(le).nats
	case "clone":
		v = st.clone
	default:
		L.RaiseError("event has no field %q (extensions are ev.ext.%s)", key, key)
	}
	L.Push(v)
	return 1
}

func (st *state) evNewIndex(L *glua.LState) int {
	le := st.checkEvent(L, 1)
	key := L.CheckString(2)
	v := L.Get(3)
	if key == "data" {
		le.data, le.dataSet, le.dataDirty = v, true, true
		return 0
	}
	if key == "time" {
		st.setTime(L, le, v)
		return 0
	}
	var s string
	switch v := v.(type) {
	case glua.LString:
		s = string(v)
	case *glua.LNilType:
	case glua.LNumber:
		s = v.String()
	default:
		L.RaiseError("ev.%s must be a string, not a %s", key, v.Type())
	}
	ctx := le.writable().Context
	var err error
	switch key {
	case "id":
		err = ctx.SetID(s)
	case "source":
		err = ctx.SetSource(s)
	case "type":
		err = ctx.SetType(s)
	case "subject":
		err = ctx.SetSubject(s)
	case "datacontenttype":
		err = ctx.SetDataContentType(s)
	case "dataschema":
		err = ctx.SetDataSchema(s)
	case "specversion", "record", "ext", "nats", "clone":
		L.RaiseError("ev.%s cannot be assigned", key)
	default:
		L.RaiseError("event has no field %q (extensions are set with ev.ext.%s = value)", key, key)
	}
	if err != nil {
		L.RaiseError("ev.%s: %s", key, err.Error())
	}
	return 0
}

func (st *state) setTime(L *glua.LState, le *luaEvent, v glua.LValue) {
	var t time.Time
	switch v := v.(type) {
	case *glua.LNilType:
	case glua.LString:
		var err error
		if t, err = types.ParseTime(string(v)); err != nil {
			L.RaiseError("ev.time: %s", err.Error())
		}
	case glua.LNumber:
		sec, frac := math.Modf(float64(v))
		t = time.Unix(int64(sec), int64(frac*1e9)).UTC()
	default:
		L.RaiseError("ev.time must be an RFC 3339 string or Unix seconds, not a %s", v.Type())
	}
	if err := le.writable().Context.SetTime(t); err != nil {
		L.RaiseError("ev.time: %s", err.Error())
	}
}

// loadData returns ev.data, decoding the JSON data on first use.
func (st *state) loadData(L *glua.LState, le *luaEvent) glua.LValue {
	if le.dataSet {
		return le.data
	}
	ev := le.current()
	raw := ev.Data()
	var v glua.LValue = glua.LNil
	switch {
	case len(raw) == 0:
	case binding.IsJSON(ev.DataMediaType()) && !ev.DataBase64:
		var err error
		if st.s.eng.cfg.eagerData {
			v, err = st.json.decode(raw, st.null)
		} else {
			v, err = st.json.view(raw, st.null, le.checked && sameBytes(raw, le.src.DataEncoded))
		}
		if err != nil {
			L.RaiseError("ev.data: %s", err.Error())
		}
	default:
		v = glua.LString(raw)
	}
	le.data, le.dataSet = v, true
	// A table can be changed in place: it has to be encoded again.
	_, le.dataDirty = v.(*glua.LTable)
	return v
}

// record returns the RGW record in the data: the data itself, or the single
// record of a {"Records":[...]} envelope; nil otherwise. It is part of
// ev.data, so changing it changes the data.
func (st *state) record(L *glua.LState, le *luaEvent) glua.LValue {
	t, ok := st.loadData(L, le).(*glua.LTable)
	if !ok {
		return glua.LNil
	}
	if recs, ok := st.field(t, "Records").(*glua.LTable); ok {
		if rec, ok := recs.RawGetInt(1).(*glua.LTable); ok && recs.Len() == 1 {
			return rec
		}
		return glua.LNil
	}
	if st.present(t, "eventName") || st.present(t, "s3") {
		return t
	}
	return glua.LNil
}

// evClone is ev:clone(). A clone is an output in the making: it counts
// against LUA_MAX_OUTPUTS when it is made, and its data against
// LUA_MAX_OUTPUT_BYTES (the bytes of unchanged data, an estimate of the JSON
// of a decoded table as it is copied), so a loop of clones fails early.
func (st *state) evClone(L *glua.LState) int {
	le := st.checkEvent(L, 1)
	n := 0
	switch v := le.data.(type) {
	case nil:
		n = len(le.current().Data())
	case glua.LString:
		n = len(v)
	}
	st.charge(L, 1, n)
	c := &luaEvent{gen: st.gen, src: le.src, subject: le.subject, inHeader: le.inHeader, checked: le.checked}
	if le.mod != nil {
		c.mod = copyEvent(le.mod)
	}
	cp := copier{st: st, L: L}
	if le.dataSet {
		c.data = cp.copy(le.data, 0)
		c.dataSet, c.dataDirty = true, le.dataDirty
	}
	if le.header != nil {
		c.header = cp.copy(le.header, 0).(*glua.LTable)
	}
	cp.flush()
	c.ud = glua.LUserData{Value: c, Env: st.globals, Metatable: st.eventMT}
	L.Push(&c.ud)
	return 1
}

// copier deep-copies tables for ev:clone, charging the call the size their
// JSON will roughly have and stopping at the deadline: one clone of a huge
// table is a single Go call the VM cannot interrupt.
type copier struct {
	st      *state
	L       *glua.LState
	bytes   int // not charged yet
	entries int
}

func (cp *copier) copy(v glua.LValue, depth int) glua.LValue {
	switch v := v.(type) {
	case glua.LString:
		cp.bytes += len(v) + 3 // quotes and a separator
		return v
	case *glua.LTable:
		if depth > maxJSONDepth {
			cp.L.RaiseError("clone: %s", errJSONDepth.Error())
		}
		if ln := cp.st.json.views.node(v); ln != nil {
			cp.st.json.fill(ln)
		}
		c := cp.L.CreateTable(v.Len(), 0)
		c.Metatable = v.Metatable
		if c.Metatable == cp.st.json.views.mt {
			c.Metatable = glua.LNil // a copy is a plain table
		}
		cp.bytes += 2
		for k, e := v.Next(glua.LNil); k != glua.LNil; k, e = v.Next(k) {
			if cp.entries++; cp.entries%1024 == 0 {
				cp.flush()
			}
			c.RawSet(cp.copy(k, depth+1), cp.copy(e, depth+1))
		}
		return c
	}
	cp.bytes += 8
	return v
}

func (cp *copier) flush() {
	cp.st.charge(cp.L, 0, cp.bytes)
	cp.bytes = 0
	if cp.st.deadline.expired.Load() {
		cp.L.RaiseError("clone: deadline exceeded")
	}
}

func (st *state) extIndex(L *glua.LState) int {
	le := st.checkEvent(L, 1)
	L.Push(extValue(extension(le.current(), strings.ToLower(L.CheckString(2)))))
	return 1
}

// extension is ev's extension name (lower case). sdk-go's Extensions()
// copies the whole map at each call: a read of the one value does not.
func extension(ev *event.Event, name string) any {
	if c, ok := ev.Context.(*event.EventContextV1); ok {
		return c.Extensions[name]
	}
	return ev.Extensions()[name]
}

func extValue(v any) glua.LValue {
	switch v := v.(type) {
	case nil:
		return glua.LNil
	case string:
		return glua.LString(v)
	case bool:
		return glua.LBool(v)
	case int32:
		return glua.LNumber(v)
	}
	s, err := types.Format(v)
	if err != nil {
		s = fmt.Sprint(v)
	}
	return glua.LString(s)
}

func (st *state) extNewIndex(L *glua.LState) int {
	le := st.checkEvent(L, 1)
	name := L.CheckString(2)
	var v any
	switch lv := L.Get(3).(type) {
	case *glua.LNilType:
	case glua.LString:
		v = string(lv)
	case glua.LBool:
		v = bool(lv)
	case glua.LNumber:
		f := float64(lv)
		if f != math.Trunc(f) || f < math.MinInt32 || f > math.MaxInt32 {
			L.RaiseError("ev.ext.%s: %v is not a 32-bit integer, the only CloudEvents number; use tostring()", name, f)
		}
		v = int32(f)
	default:
		L.RaiseError("ev.ext.%s must be a string, boolean or integer, not a %s", name, lv.Type())
	}
	if err := le.writable().Context.SetExtension(name, v); err != nil {
		L.RaiseError("ev.ext.%s: %s", name, err.Error())
	}
	return 0
}

func (st *state) extPairs(L *glua.LState) int {
	le := st.checkEvent(L, 1)
	exts := le.current().Extensions()
	t := L.CreateTable(0, len(exts))
	for _, k := range slices.Sorted(maps.Keys(exts)) {
		t.RawSetString(k, extValue(exts[k]))
	}
	L.Push(st.globals.RawGetString("next"))
	L.Push(t)
	L.Push(glua.LNil)
	return 3
}

func (st *state) natsIndex(L *glua.LState) int {
	le := st.checkEvent(L, 1)
	switch key := L.CheckString(2); key {
	case "subject":
		L.Push(optString(le.subject))
	case "header", "headers":
		L.Push(st.headerTable(L, le))
	default:
		L.RaiseError("ev.nats has no field %q (it has subject and header)", key)
	}
	return 1
}

func (st *state) natsNewIndex(L *glua.LState) int {
	le := st.checkEvent(L, 1)
	switch key := L.CheckString(2); key {
	case "subject":
		switch v := L.Get(3).(type) {
		case *glua.LNilType:
			le.subject = ""
		case glua.LString:
			if v != "" && !subject.Valid(string(v)) {
				L.RaiseError("ev.nats.subject: %q is not a valid NATS subject (escape values with rgwnats.token)", subject.Short(string(v)))
			}
			le.subject = string(v)
		default:
			L.RaiseError("ev.nats.subject must be a string, not a %s", v.Type())
		}
	case "header", "headers":
		switch v := L.Get(3).(type) {
		case *glua.LNilType:
			le.header, le.inHeader = L.NewTable(), nil
		case *glua.LTable:
			le.header, le.inHeader = v, nil
		default:
			L.RaiseError("ev.nats.header must be a table, not a %s", v.Type())
		}
	default:
		L.RaiseError("ev.nats has no field %q (it has subject and header)", key)
	}
	return 0
}

func (st *state) headerTable(L *glua.LState, le *luaEvent) *glua.LTable {
	if le.header == nil {
		le.header = L.CreateTable(0, len(le.inHeader))
		for k, vs := range le.inHeader {
			if len(vs) == 1 {
				le.header.RawSetString(k, glua.LString(vs[0]))
				continue
			}
			list := L.CreateTable(len(vs), 0)
			for _, v := range vs {
				list.Append(glua.LString(v))
			}
			le.header.RawSetString(k, list)
		}
		le.inHeader = nil
	}
	return le.header
}

// output turns a returned event into an Output, encoding changed data, and
// says how many bytes it weighs (data and headers). Encoding stops once it
// passes left bytes: then the weight is more than left and the caller fails.
func (st *state) output(le *luaEvent, left int) (Output, int, error) {
	fail := func(format string, args ...any) (Output, int, error) {
		return Output{}, 0, &ScriptError{Script: st.s.name, EventID: st.cur.id, Msg: fmt.Sprintf(format, args...)}
	}
	if le.gen != st.gen {
		return fail("%s returned an event of an earlier call", st.s.eng.cfg.function)
	}
	dataJSON := false
	if le.dataDirty {
		ev := le.current()
		var raw []byte
		switch v := le.data.(type) {
		case *glua.LNilType:
		case glua.LString:
			if !binding.IsJSON(ev.DataMediaType()) {
				raw = []byte(v)
				break
			}
			raw = binding.AppendJSONString(nil, string(v))
		default:
			if !binding.IsJSON(ev.DataMediaType()) {
				return fail("ev.data: data of content type %q must be a string, not a %s", ev.DataContentType(), v.Type())
			}
			if t, ok := v.(*glua.LTable); ok && !ev.DataBase64 && st.json.unchangedText(t, ev.DataEncoded) {
				// Only read: the data stays, shared, and the event
				// unchanged, without encoding it to find that out.
				raw = ev.DataEncoded
				break
			}
			var b []byte
			var err error
			// Large data is encoded into a buffer of its own, handed to
			// the output as it is, instead of into the codec's and copied.
			own := len(ev.DataEncoded) >= ownBuffer
			if own {
				st.json.buf = make([]byte, 0, len(ev.DataEncoded)+len(ev.DataEncoded)/8+64)
			}
			if st.s.eng.cfg.eagerData {
				b, err = st.json.encodeMax(v, left, &st.deadline.expired)
			} else {
				b, err = st.json.encodeOutput(v, left, &st.deadline.expired)
			}
			if own {
				st.json.buf = nil
			}
			switch {
			case errors.Is(err, errLimitHit):
				return Output{}, len(b), nil
			case errors.Is(err, errExpired):
				return Output{}, 0, err
			case err != nil:
				return fail("ev.data: %s", err.Error())
			}
			if !ev.DataBase64 && bytes.Equal(b, ev.DataEncoded) {
				// A view written back as it came (read, not changed):
				// the data stays, shared, and the event unchanged.
				raw = ev.DataEncoded
				break
			}
			if own {
				raw = b
				break
			}
			raw = slices.Clone(b)
		}
		if raw == nil || !sameBytes(raw, ev.DataEncoded) || ev.DataBase64 {
			ev = le.writable()
			ev.DataEncoded, ev.DataBase64 = raw, false
			if raw != nil && ev.DataContentType() == "" {
				_ = ev.Context.SetDataContentType(event.ApplicationJSON)
			}
			dataJSON = binding.IsJSON(ev.DataMediaType())
		}
	}
	// JSON data kept as it came is as valid as it came.
	if cur := le.current(); le.checked && !cur.DataBase64 && binding.IsJSON(cur.DataMediaType()) && sameBytes(cur.DataEncoded, le.src.DataEncoded) {
		dataJSON = true
	}
	o := Output{Event: le.current(), Subject: le.subject, DataJSON: dataJSON}
	n := len(o.Event.Data())
	switch {
	case le.header != nil:
		h, err := headerMap(le.header, left-n)
		if errors.Is(err, errLimitHit) {
			return Output{}, left + 1, nil
		}
		if err != nil {
			return fail("ev.nats.header: %s", err.Error())
		}
		o.Header = h
	case len(le.inHeader) > 0:
		o.Header = make(map[string][]string, len(le.inHeader))
		for k, v := range le.inHeader {
			o.Header[k] = slices.Clone(v)
		}
	}
	return o, n + headerSize(o.Header), nil
}

// ownBuffer is the size of data from which an output's encoding gets a
// buffer of its own (see output).
const ownBuffer = 8 << 10

// sameBytes reports whether a and b are the same slice (not just equal).
func sameBytes(a, b []byte) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0]) && cap(a) == cap(b)
}

// headerMap converts a Lua table of NATS headers: values are strings (or
// numbers, booleans) or lists of them. It fails with errLimitHit once the
// headers weigh more than max bytes (see headerSize).
func headerMap(t *glua.LTable, max int) (map[string][]string, error) {
	var h map[string][]string
	size := 0
	for k, v := t.Next(glua.LNil); k != glua.LNil; k, v = t.Next(k) {
		name, ok := k.(glua.LString)
		if !ok || !binding.ValidHeaderName(string(name)) {
			return nil, fmt.Errorf("invalid header name %v", k)
		}
		var vals []string
		switch v := v.(type) {
		case glua.LString, glua.LNumber, glua.LBool:
			vals = []string{v.String()}
		case *glua.LTable:
			for i := 1; i <= v.Len(); i++ {
				e := v.RawGetInt(i)
				switch e.(type) {
				case glua.LString, glua.LNumber, glua.LBool:
					vals = append(vals, e.String())
				default:
					return nil, fmt.Errorf("header %s: a %s is not a header value", name, e.Type())
				}
			}
		default:
			return nil, fmt.Errorf("header %s: a %s is not a header value", name, v.Type())
		}
		for _, s := range vals {
			if strings.ContainsAny(s, "\r\n") {
				return nil, fmt.Errorf("header %s: value holds a line break", name)
			}
			if size += len(name) + len(s) + 4; size > max {
				return nil, errLimitHit
			}
		}
		if h == nil {
			h = make(map[string][]string)
		}
		h[string(name)] = vals
	}
	return h, nil
}
