package lua

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/lua/lua53"
)

// No instruction of a compiled chunk, at any depth of nested functions,
// boxes a field name per access.
func TestKeysFromConstantsLeavesNoStringKeyInstruction(t *testing.T) {
	src := `
local t = {a = 1, b = {c = 2}}
t.a = t.b.c
local function f(x)
  x.y = x.z
  return function(v) return v.w, {k = v.k} end
end
function transform(ev) ev.ext.k = ev.record.s3.object.key return ev end`
	_, proto, err := compileChunk("keys.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	counts := map[int]int{}
	var walk func(p *glua.FunctionProto)
	walk = func(p *glua.FunctionProto) {
		for _, inst := range p.Code {
			counts[int(inst>>26)]++
		}
		for _, f := range p.FunctionPrototypes {
			walk(f)
		}
	}
	walk(proto)
	if n := counts[glua.OP_GETTABLEKS] + counts[glua.OP_SETTABLEKS]; n != 0 {
		t.Errorf("%d string-key instructions left", n)
	}
	// The rewritten ones are there: 9 reads and 6 writes by name.
	if counts[glua.OP_GETTABLE] < 9 || counts[glua.OP_SETTABLE] < 6 {
		t.Errorf("GETTABLE %d, SETTABLE %d: want at least 9 and 6", counts[glua.OP_GETTABLE], counts[glua.OP_SETTABLE])
	}
}

// Reading a view's member by name again and again costs no allocation:
// the name is the chunk's constant and the value was kept by the first read.
func TestViewReadByNameAllocatesNothing(t *testing.T) {
	e := newEngine(t, `
function transform(ev)
  local r = ev.record
  local n = 0
  for i = 1, 200 do
    if r.eventName then n = n + 1 end
    r.awsRegion = r.awsRegion
  end
  ev.ext.reads = n
  return ev
end`)
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	ctx := context.Background()
	transformOne(t, e, in)
	allocs := testing.AllocsPerRun(20, func() {
		if _, err := e.Transform(ctx, in); err != nil {
			t.Fatal(err)
		}
	})
	// 200 reads and 200 writes by name: with a boxed name per access
	// (gopher-lua's string-key instructions) this is over 400.
	if allocs > 50 {
		t.Errorf("%.0f allocations per call, want the same as for one read (< 50)", allocs)
	}
}

// The deadline's Done is nil until it expires (see deadlineCtx.Done), so
// nothing may derive a context from it: gopher-lua derives one for each
// coroutine, and the sandbox has none (nor channels, which select on it).
func TestDeadlineContextHasNoChildren(t *testing.T) {
	var c deadlineCtx
	c.done = make(chan struct{})
	if c.Done() != nil {
		t.Fatal("Done before expiry is not nil")
	}
	c.expire()
	select {
	case <-c.Done():
	default:
		t.Fatal("Done after expiry is not closed")
	}
	e := newEngine(t, `function transform(ev)
  ev.ext.co = type(coroutine) .. " " .. type(channel)
  return ev
end`)
	outs := transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
	if got := outs[0].Event.Extensions()["co"]; got != "nil nil" {
		t.Fatalf("coroutine and channel in the sandbox: %v", got)
	}
}

// The rewritten instructions do what gopher-lua's own did: the same results
// and the same errors, word for word, for every kind of object indexed by
// name (plain tables, __index and __newindex tables and functions, strings,
// nil, numbers) and for names that sit beyond the constants an instruction
// can address (the compiler loads those into a register first).
func TestKeysFromConstantsChangesNothing(t *testing.T) {
	many := new(strings.Builder)
	many.WriteString("local c = {")
	for i := range 300 {
		fmt.Fprintf(many, "'c%d', ", i) // 300 constants before the names below
	}
	many.WriteString("}\n")
	for _, tc := range []struct{ name, src string }{
		{"plain table", `local t = {a = 1} t.b = 2 t.a = nil print(t.a, t.b, t.c, #t)`},
		{"constructor", `local t = {a = 1, b = {c = "x"}, [1] = 5} print(t.a, t.b.c, t[1])`},
		{"__index table chain", `local base = {x = 1} local t = setmetatable({}, {__index = setmetatable({}, {__index = base})}) print(t.x, t.y)`},
		{"__index function", `local t = setmetatable({}, {__index = function(t, k) return string.format("%s!", k) end}) print(t.name, rawget(t, "name"))`},
		{"__newindex function", `local log = {} local t = setmetatable({}, {__newindex = function(t, k, v) log[#log+1] = string.format("%s=%s", k, tostring(v)) end})
t.a = 1 t.b = nil print(table.concat(log, ","), rawget(t, "a"))`},
		{"__newindex table", `local store = {} local t = setmetatable({}, {__newindex = store}) t.a = 1 print(rawget(t, "a"), store.a)`},
		{"existing key skips __newindex", `local t = setmetatable({a = 1}, {__newindex = function() error("called") end}) t.a = 2 print(t.a)`},
		{"string methods by name", `local s = "abc" print(type(s.len), s.upper(s), ("x"):rep(3))`},
		{"index nil", `local t print(pcall(function() return t.x end))`},
		{"index a number", `local n = 5 print(pcall(function() return n.x end))`},
		{"assign into nil", `local t print(pcall(function() t.x = 1 end))`},
		{"error from __index", `local t = setmetatable({}, {__index = function(_, k) error(string.format("no %s", k)) end}) print(pcall(function() return t.field end))`},
		{"__index loop", `local t = {} setmetatable(t, {__index = t}) print(pcall(function() return t.missing end))`},
		{"methods", `local o = {n = 1} function o:inc() self.n = self.n + 1 return self end print(o:inc():inc().n)`},
		{"names beyond the addressable constants", many.String() + `local t = {zz = 1} t.yy = 2 print(t.zz, t.yy, t.xx, c[1], c[300])`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := []byte(tc.src)
			_, rewritten, err := compileChunk("k.lua", src)
			if err != nil {
				t.Fatal(err)
			}
			translated, err := lua53.Translate(src)
			if err != nil {
				t.Fatal(err)
			}
			chunk, err := parse.Parse(bytes.NewReader(translated), "k.lua")
			if err != nil {
				t.Fatal(err)
			}
			original, err := glua.Compile(chunk, "k.lua")
			if err != nil {
				t.Fatal(err)
			}
			if slices.Equal(allCode(original), allCode(rewritten)) {
				t.Fatal("nothing was rewritten")
			}
			if a, b := runProto(t, original), runProto(t, rewritten); a != b {
				t.Errorf("gopher-lua's instructions:\n%s\nrewritten:\n%s", a, b)
			}
		})
	}
}

// runProto runs a compiled chunk in a plain gopher-lua state and returns
// what it printed and the error it ended with. The state has none of the
// translation's helpers: the snippets above use no operator that needs one.
func runProto(t *testing.T, p *glua.FunctionProto) string {
	t.Helper()
	L := glua.NewState()
	defer L.Close()
	var out strings.Builder
	L.SetGlobal("print", L.NewFunction(func(L *glua.LState) int {
		for i := 1; i <= L.GetTop(); i++ {
			if i > 1 {
				out.WriteByte('\t')
			}
			out.WriteString(L.ToStringMeta(L.Get(i)).String())
		}
		out.WriteByte('\n')
		return 0
	}))
	L.Push(L.NewFunctionFromProto(p))
	if err := L.PCall(0, 0, nil); err != nil {
		fmt.Fprintf(&out, "error: %v\n", err)
	}
	return out.String()
}

// allCode is the instructions of a chunk and of every function in it.
func allCode(p *glua.FunctionProto) []uint32 {
	code := slices.Clone(p.Code)
	for _, f := range p.FunctionPrototypes {
		code = append(code, allCode(f)...)
	}
	return code
}
