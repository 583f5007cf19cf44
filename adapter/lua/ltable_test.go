package lua

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	glua "github.com/yuin/gopher-lua"
)

// The fast path must be the one in use: a gopher-lua upgrade that changes
// LTable shows up here instead of as a silent slowdown.
func TestLTableLayout(t *testing.T) {
	if !ltLayout {
		t.Fatal("glua.LTable no longer has the fields of ltFields: update ltable.go")
	}
	type other struct {
		Metatable glua.LValue
		array     []glua.LValue
	}
	if ltLayoutMatches(reflect.TypeFor[glua.LTable](), reflect.TypeFor[other]()) {
		t.Error("a different layout matched")
	}
}

// withLayout runs f with the fast path on or off.
func withLayout(on bool, f func()) {
	saved := ltLayout
	ltLayout = on
	defer func() { ltLayout = saved }()
	f()
}

// walk describes t as next sees it (order included), with its length and
// its raw lookups, recursively.
func walk(t *glua.LTable) string {
	var b strings.Builder
	var rec func(t *glua.LTable, depth int)
	rec = func(t *glua.LTable, depth int) {
		fmt.Fprintf(&b, "{len=%d maxn=%d mt=%v", t.Len(), t.MaxN(), t.Metatable != glua.LNil)
		for k, v := t.Next(glua.LNil); k != glua.LNil; k, v = t.Next(k) {
			fmt.Fprintf(&b, " %s:%q=", k.Type(), k.String())
			if sub, ok := v.(*glua.LTable); ok && depth < 20 {
				rec(sub, depth+1)
			} else {
				fmt.Fprintf(&b, "%s:%q", v.Type(), v.String())
			}
			if got := t.RawGet(k); got != v {
				fmt.Fprintf(&b, " (rawget %v)", got)
			}
		}
		b.WriteString("}")
	}
	rec(t, 0)
	return b.String()
}

// mutate changes t the way scripts do, through gopher-lua's own setters.
func mutate(t *glua.LTable) {
	t.RawSetString("added", glua.LString("x"))
	t.RawSetString("a", glua.LNil)
	t.RawSetString("b", glua.LNumber(7))
	t.RawSetString("a", glua.LTrue)
	t.RawSetInt(1, glua.LString("one"))
	t.Append(glua.LString("end"))
	t.RawSet(glua.LTrue, glua.LNumber(1))
	t.RawSet(glua.LTrue, glua.LNil)
}

var ltableDocs = []string{
	`{}`, `[]`, `{"a":1}`, `{"a":1,"b":2,"a":3}`, `{"a":null,"b":null}`, `{"a":{"b":{"c":[]}}}`,
	`[1,null,3]`, `[null]`, `[null,null,1]`, `[[],{},[{}]]`, `{"k\u00e9y":1,"k\"q":2,"":3}`,
	`{"1":"string one","2":2}`,
	`{"eventVersion":"2.2","eventSource":"ceph:s3","awsRegion":"","eventTime":"t","eventName":"n",
	  "userIdentity":{"principalId":"p"},"requestParameters":{"sourceIPAddress":""},
	  "responseElements":{"x-amz-request-id":"r","x-amz-id-2":"i"},"s3":{"object":{"key":"k",
	  "size":1,"metadata":[{"key":"a","val":"b"}],"tags":[]}},"eventId":"e","opaqueData":"","x":1}`,
}

// Tables built by the fast path are indistinguishable from RawSetString's,
// before and after scripts change them, and both encoders agree on them.
func TestJSONFastTablesAreTables(t *testing.T) {
	c := testCodec(t)
	for _, doc := range ltableDocs {
		for _, null := range []glua.LValue{c.null, glua.LNil} {
			var fast, slow glua.LValue
			var err error
			withLayout(true, func() { fast, err = c.decode([]byte(doc), null) })
			if err != nil {
				t.Fatalf("%s: %v", doc, err)
			}
			withLayout(false, func() { slow, err = c.decode([]byte(doc), null) })
			if err != nil {
				t.Fatalf("%s: %v", doc, err)
			}
			ft, st := fast.(*glua.LTable), slow.(*glua.LTable)
			if f, s := walk(ft), walk(st); f != s {
				t.Errorf("%s (null %v):\nfast %s\nslow %s", doc, null, f, s)
			}
			encodings := func() (out [4]string) {
				for i, v := range []glua.LValue{ft, st} {
					for j, on := range []bool{true, false} {
						withLayout(on, func() {
							b, err := c.encode(v)
							out[2*i+j] = fmt.Sprintf("%s %v", b, err)
						})
					}
				}
				return out
			}
			if e := encodings(); e[1] != e[0] || e[2] != e[0] || e[3] != e[0] {
				t.Errorf("%s: encodings differ: %q", doc, e)
			}
			mutate(ft)
			mutate(st)
			if f, s := walk(ft), walk(st); f != s {
				t.Errorf("%s (null %v) changed:\nfast %s\nslow %s", doc, null, f, s)
			}
			if e := encodings(); e[1] != e[0] || e[2] != e[0] || e[3] != e[0] {
				t.Errorf("%s changed: encodings differ: %q", doc, e)
			}
		}
	}
}

// The same, seen from a script: pairs, next, #, rawget, ipairs and the
// table library on decoded data give the same answers either way.
func TestJSONFastTablesFromLua(t *testing.T) {
	e := newEngine(t, `
local function show(v, depth)
  if type(v) ~= "table" or depth > 5 then return tostring(v) end
  local parts = {"#" .. #v}
  for k, x in pairs(v) do parts[#parts + 1] = tostring(k) .. "=" .. show(x, depth + 1) end
  local k = next(v)
  parts[#parts + 1] = "next:" .. tostring(k)
  if k ~= nil then parts[#parts + 1] = "raw:" .. tostring(rawget(v, k) ~= nil) end
  for i, x in ipairs(v) do parts[#parts + 1] = "i" .. i end
  return "{" .. table.concat(parts, ",") .. "}"
end
local rn = require("rgwnats")
function transform(ev)
  local d = ev.data
  local before = show(d, 0)
  d.new = "n"
  d.a = nil
  if d.b then table.insert(d.b, "x") table.remove(d.b, 1) end
  rawset(d, "r", {1, 2})
  ev.data = before .. " / " .. show(d, 0) .. " / " .. rn.json.encode(d)
  return ev
end`)
	for _, doc := range []string{
		`{"a":1,"b":[1,2,{"c":null}],"a":2,"z":{}}`,
		ltableDocs[len(ltableDocs)-1],
	} {
		var got [2]string
		for i, on := range []bool{true, false} {
			ev := event.New()
			ev.SetID("1")
			ev.SetSource("s")
			ev.SetType("t")
			ev.DataEncoded = []byte(doc)
			ev.SetDataContentType(event.ApplicationJSON)
			withLayout(on, func() {
				outs, err := e.Transform(context.Background(), &ev)
				if err != nil {
					t.Fatal(err)
				}
				got[i] = string(outs[0].Event.Data())
			})
		}
		if got[0] != got[1] {
			t.Errorf("%s:\nfast %s\nslow %s", doc, got[0], got[1])
		}
	}
}

// What a state keeps between documents is bounded: interned keys by count
// and length, the scratch stacks by size.
func TestJSONCodecKeepsLittle(t *testing.T) {
	c := testCodec(t)
	var b strings.Builder
	b.WriteString(`{"` + strings.Repeat("k", maxInternedLen+1) + `":1`)
	for i := range 3 * maxInterned {
		fmt.Fprintf(&b, `,"key%d":[%d]`, i, i)
	}
	b.WriteString(`,"list":[` + strings.Repeat(`{"a":1},`, 2*maxKeptStack) + `{}]}`)
	v, err := c.decode([]byte(b.String()), c.null)
	if err != nil {
		t.Fatal(err)
	}
	tb := v.(*glua.LTable)
	if got := tb.RawGetString(strings.Repeat("k", maxInternedLen+1)); got != glua.LNumber(1) {
		t.Errorf("long key = %v", got)
	}
	if got := tb.RawGetString(fmt.Sprint("key", 3*maxInterned-1)).(*glua.LTable).RawGetInt(1); got != glua.LNumber(3*maxInterned-1) {
		t.Errorf("last key = %v", got)
	}
	if n := len(c.interned); n > maxInterned {
		t.Errorf("%d keys interned, want at most %d", n, maxInterned)
	}
	if _, err := c.encode(v); err != nil {
		t.Fatal(err)
	}
	if c.members != nil || c.elems != nil || c.sorted != nil {
		t.Errorf("stacks kept: members %d, elems %d, sorted %d", cap(c.members), cap(c.elems), cap(c.sorted))
	}
}
