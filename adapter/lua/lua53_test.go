package lua

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/yuin/gopher-lua/parse"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/lua/lua53"
)

// The engine's side of the Lua 5.3 front end: the helpers the translation
// calls (ops53.go) and their bounds.

// The .. operator is bounded like string.rep: a doubling loop fails with
// ErrLimit at the limit instead of growing until the deadline.
func TestConcatLimit(t *testing.T) {
	e := newEngine(t, `
function transform(ev)
  local s = "x"
  for i = 1, 40 do s = s .. s end
  return ev
end`, WithMaxString(1<<16))
	_, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{}))
	var se *ScriptError
	if !errors.As(err, &se) || !errors.Is(err, ErrLimit) || !errors.Is(err, ErrScript) || errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v, want a ScriptError wrapping ErrLimit", err)
	}
	if se.Line != 4 || !strings.Contains(se.Msg, "limit of 65536 bytes") {
		t.Errorf("line %d, message %q", se.Line, se.Msg)
	}

	// At the limit exactly is fine; chains, numbers and __concat too; a
	// caught limit error does not taint the next call.
	e = newEngine(t, `
local mt = {__concat = function(a, b) return "T" end}
function transform(ev)
  local ok = pcall(function() return string.rep("a", 1024) .. "b" end)
  local s = string.rep("a", 1020) .. "b" .. 12 .. "c"
  local t = setmetatable({}, mt)
  ev.ext.r = #s .. tostring(ok) .. (t .. "x") .. ("x" .. t)
  return ev
end`, WithMaxString(1024))
	for range 2 {
		outs := transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
		if got := outs[0].Event.Extensions()["r"]; got != "1024falseTT" {
			t.Errorf("r = %v", got)
		}
	}
}

// Errors raised by the other bounded built-ins wrap ErrLimit too.
func TestLimitErrors(t *testing.T) {
	for _, src := range []string{
		`string.rep("ab", 1e6)`,
		`("x"):rep(100):gsub("x", ("y"):rep(100))`,
		`table.concat({("x"):rep(900), ("y"):rep(900)})`,
		`string.pack("s", ("x"):rep(1000))`,
	} {
		e := newEngine(t, "function transform(ev)\n"+src+"\nreturn ev end", WithMaxString(1000))
		_, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{}))
		if !errors.Is(err, ErrLimit) {
			t.Errorf("%s: %v, want ErrLimit", src, err)
		}
	}
}

// Translated operators cost nothing at run time beyond the helper call.
func TestHelpersAreNotScriptState(t *testing.T) {
	// A script that assigns the helper's global changes nothing: the
	// helpers were bound to locals before any of its code ran.
	e := newEngine(t, fmt.Sprintf(`
function transform(ev)
  rawset(_G, %q, function() return "evil" end)
  ev.ext.r = 7 // 2 .. ""
  return ev
end`, lua53.HiddenPrefix+"concat"))
	for range 2 {
		outs := transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
		if got := outs[0].Event.Extensions()["r"]; got != "3" {
			t.Errorf("r = %v", got)
		}
	}
}

// Every corpus snippet and every sample keeps its lines: the translation
// writes no newline of its own and drops none.
func TestTranslateKeepsLines(t *testing.T) {
	srcs := []string{}
	for _, c := range corpus53 {
		srcs = append(srcs, prelude+c.src)
	}
	for _, name := range []string{"anonymize.lua", "route.lua", "filter.lua", "fanout.lua", "xray.lua", "rgw-compat.lua"} {
		f, err := readScripts("../../samples/lua/" + name)
		if err != nil {
			t.Fatal(err)
		}
		srcs = append(srcs, string(f[0].src))
	}
	for _, src := range srcs {
		out, err := lua53.Translate([]byte(src))
		if err != nil {
			// Snippets that test syntax errors.
			continue
		}
		if a, b := luaLines(src), luaLines(string(out)); a != b {
			t.Errorf("%d lines became %d:\n%s", a, b, out)
		}
		if _, err := parse.Parse(bytes.NewReader(out), "x.lua"); err != nil {
			t.Errorf("gopher-lua does not parse the translation: %v\n%s", err, out)
		}
	}
}

func FuzzTranslate(f *testing.F) {
	for _, c := range corpus53 {
		f.Add(c.src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		out, err := lua53.Translate([]byte(src))
		if err != nil {
			return
		}
		if a, b := luaLines(src), luaLines(string(out)); a != b {
			t.Fatalf("%d lines became %d", a, b)
		}
	})
}

// luaLines counts line breaks as Lua's lexer does: "\r\n" and "\n\r" are
// one, a lone "\r" is one too (a backslash before one in a string is
// translated to \010 and a "\n" after the literal).
func luaLines(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == '\n' || c == '\r' {
			n++
			if i+1 < len(s) && (s[i+1] == '\n' || s[i+1] == '\r') && s[i+1] != c {
				i++
			}
		}
	}
	return n
}
