package lua

import (
	"context"
	"testing"

	glua "github.com/yuin/gopher-lua"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
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
