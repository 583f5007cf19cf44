package lua

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
)

// Every way out of the sandbox must fail as a clean script error, and the
// engine must go on serving.
func TestSandboxEscapesFail(t *testing.T) {
	for _, tc := range []struct{ name, code, want string }{
		{"io.open", `io.open("/etc/passwd")`, "io"},
		{"io.popen", `io.popen("id")`, "io"},
		{"os.execute", `os.execute("touch /tmp/pwned")`, "os.execute is not available"},
		{"os.getenv", `local home = os.getenv("HOME")`, "os.getenv is not available"},
		{"os.exit", `os.exit(1)`, "os.exit is not available"},
		{"os.remove", `os.remove("/tmp/x")`, "os.remove is not available"},
		{"os.setenv", `os.setenv("A", "B")`, "os.setenv is not available"},
		{"load", `load("return 1")()`, "load is not available"},
		{"loadstring is not available", `loadstring("return 1")()`, "loadstring"},
		{"dofile", `dofile("/etc/passwd")`, "dofile is not available"},
		{"loadfile", `loadfile("/etc/passwd")()`, "loadfile is not available"},
		{"module", `module("x")`, "module is not available"},
		{"require os", `require("os")`, `module "os" is not available`},
		{"require io", `require("io")`, `module "io" is not available`},
		{"require debug", `require("debug")`, `module "debug" is not available`},
		{"require a file", `require("/etc/passwd")`, `is not available`},
		{"package.loadlib", `package.loadlib("libc.so.6", "system")`, "non-table object(nil)"},
		{"string.dump", `string.dump(transform)`, "string.dump is not available"},
		{"debug.getregistry", `debug.getregistry()`, "non-table object(nil)"},
		{"debug.sethook", `debug.sethook()`, "non-table object(nil)"},
		{"coroutine", `coroutine.create(print)`, "non-table object(nil)"},
		{"getfenv", `getfenv(0).x = 1`, "getfenv is not available"},
		{"setfenv on a module", `setfenv(require("rgwnats").sha256, {})`, "setfenv is not available"},
		{"newproxy", `newproxy(true)`, "newproxy is not available"},
		{"string metatable", `getmetatable("").__index.rep = nil`, "index"},
		{"setmetatable on strings' library", `setmetatable(string, {})`, "protected metatable"},
		{"setmetatable on the event", `setmetatable(ev, {})`, "protected metatable"},
		{"getmetatable of the event", `getmetatable(ev).__index = nil`, "index"},
		{"string library write", `string.rep = function() end`, "string is read-only"},
		{"string library rawset", `rawset(string, "rep", print)`, "read-only"},
		{"table.insert into a library", `table.insert(string, print)`, "read-only"},
		{"table.remove from a library", `table.remove(string)`, "table.remove: the table is read-only"},
		{"table.sort of a library", `table.sort(math)`, "table.sort: the table is read-only"},
		{"module write", `require("rgwnats").sha256 = print`, "rgwnats is read-only"},
		{"nested module write", `require("rgwnats").json.encode = print`, "rgwnats.json is read-only"},
		{"os write", `os.execute = print`, "os is read-only"},
		{"RGW rawset", `rawset(RGW, "k", 1)`, "read-only"},
		{"Go runtime via userdata", `local mt = getmetatable(require("rgwnats").json.null); mt.__index = 1`, "index"},
		{"string.rep bomb", `local s = string.rep("x", 1e10)`, "string.rep"},
		{"string.rep via method", `local s = ("xy"):rep(2^40)`, "string.rep"},
		{"string.format width", `string.format("%999999999d", 1)`, "width or precision too long"},
		{"string.format precision", `string.format("%.999999999f", 1)`, "width or precision too long"},
		{"string.format star", `string.format("%*d", 5, 1)`, "invalid format"},
		{"string.format flag after the width", `string.format("%5-d", 1)`, "invalid format"},
		{"string.format second precision", `string.format("%1.2.3s", ("x"):rep(100))`, "invalid format"},
		{"table.concat bomb", `local t = {} local s = ("x"):rep(500000) for i = 1, 100 do t[i] = s end table.concat(t)`, "table.concat"},
		{"gsub bomb", `local s = ("x"):rep(100000) s:gsub("x", ("y"):rep(1000))`, "string.gsub"},
		{"gsub function bomb", `local big = ("y"):rep(100000) ; ("x"):rep(1000):gsub("x", function() return big end)`, "string.gsub"},
		{"unpack", `unpack({}, 1, 1e8)`, "too many results"},
		{"string.byte", `string.byte(("x"):rep(100000), 1, -1)`, "string slice too long"},
		{"deep recursion", `local function f(n) return 1 + f(n + 1) end f(1)`, "stack overflow"},
		{"error with a table", `error({code = 1})`, "table"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, "function transform(ev)\n"+tc.code+"\nreturn ev\nend", WithMaxString(1<<20))
			in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
			_, err := e.Transform(context.Background(), in)
			if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want a script error containing %q", err, tc.want)
			}
			if errors.Is(err, ErrTimeout) {
				t.Fatalf("%v: a guard must fail fast, not run into the deadline", err)
			}
		})
	}
}

// What the sandbox keeps must keep working.
func TestSandboxAllowed(t *testing.T) {
	e := newEngine(t, `
		function transform(ev)
		  assert(type(os.time()) == "number" and type(os.clock()) == "number")
		  assert(os.date("!%Y-%m-%d", 0) == "1970-01-01")
		  assert(string.format("%05.1f|%-3s|%x", 3.14159, "a", 255) == "003.1|a  |ff")
		  assert(("a,b,c"):gsub(",", ";") == "a;b;c")
		  assert(select(2, ("a,b,c"):gsub(",", ";")) == 2)
		  assert(("hello world"):gsub("(%w+) (%w+)", "%2 %1") == "world hello")
		  assert(("abc"):gsub("%w", "%0%0") == "aabbcc")
		  assert(("abc"):gsub("", "-") == "-a-b-c-")
		  assert(("x=1, y=2"):gsub("(%w+)=(%w+)", {x = "X"}) == "X, y=2")
		  assert(("abc"):gsub("b", function(s) return s:upper() end) == "aBc")
		  assert(("aaa"):gsub("a", "b", 2) == "bba")
		  assert(("^x^"):gsub("^%^", "") == "x^")
		  assert((("ab"):rep(3)) == "ababab")
		  assert(table.concat({1, "b", 3}, "-") == "1-b-3")
		  assert(select("#", unpack({1, 2, 3})) == 3 and select(2, unpack({1, 2, 3}, 2)) == 3)
		  assert(select("#", unpack({}, 1, 7999)) == 7999)
		  assert(select("#", string.byte("abc", 1, -1)) == 3 and string.byte("abc") == 97)
		  local t = {3, 1, 2}; table.sort(t); table.insert(t, 4)
		  assert(table.concat(t, ",") == "1,2,3,4")
		  local n = 0 for k in pairs(string) do n = n + 1 end
		  assert(n > 10, "pairs over a library")
		  assert(math.floor(2.5) == 2 and math.max(1, 3) == 3)
		  assert(pcall(error, "x") == false)
		  assert(collectgarbage("count") == 0)
		  assert(tostring(nil) == "nil" and tonumber("0x10") == 16)
		  local mt = setmetatable({}, {__index = function(_, k) return k .. "!" end})
		  assert(mt.hi == "hi!")
		  rawset(mt, "a", 1)
		  assert(getmetatable("") == "protected")
		  print("print goes to the log")
		  return ev
		end`)
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	transformOne(t, e, in)
}

// A long gsub checks the deadline between batches of matches.
func TestSandboxGsubManyMatches(t *testing.T) {
	e := newEngine(t, `
		function transform(ev)
		  local s = ("ab"):rep(50000)
		  local r, n = s:gsub("a", "x")
		  assert(n == 50000 and #r == 100000 and r:sub(1, 4) == "xbxb")
		  return ev
		end`)
	transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
}

// collectgarbage must not let a script stop the process for a GC.
func TestSandboxCollectGarbageDoesNotRunGC(t *testing.T) {
	e := newEngine(t, `function transform(ev) for i = 1, 200 do collectgarbage("collect") end return ev end`)
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	transformOne(t, e, in)
	runtime.ReadMemStats(&after)
	if gcs := after.NumGC - before.NumGC; gcs >= 200 {
		t.Errorf("%d garbage collections for 200 collectgarbage calls", gcs)
	}
}

func TestDeadline(t *testing.T) {
	e := newEngine(t, `
		function transform(ev)
		  if ev.subject == "loop" then while true do end end
		  if ev.subject == "pcall-loop" then
		    while true do pcall(function() while true do end end) end
		  end
		  return ev
		end`, WithTimeout(300*time.Millisecond))
	for _, subj := range []string{"loop", "pcall-loop"} {
		t.Run(subj, func(t *testing.T) {
			looping := fixture(t, "reef-put-capture.json", cloudevent.Options{})
			looping.SetSubject(subj)
			done := make(chan error)
			go func() {
				_, err := e.Transform(context.Background(), looping)
				done <- err
			}()
			// While one call spins, the others are served.
			served := 0
			for loop := true; loop; {
				select {
				case err := <-done:
					var se *ScriptError
					if !errors.Is(err, ErrTimeout) || !errors.Is(err, ErrScript) || !errors.As(err, &se) || se.Line != 3 && se.Line != 5 {
						t.Fatalf("error %#v, want a timeout at line 3 or 5", err)
					}
					if !strings.Contains(err.Error(), looping.ID()) || !strings.Contains(err.Error(), "deadline") {
						t.Errorf("message %q", err)
					}
					loop = false
				default:
					if len(transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))) != 1 {
						t.Fatal("a normal event was not published")
					}
					served++
				}
			}
			t.Logf("%d events served while one call ran into its deadline", served)
		})
	}
	if s := e.Stats(); s.Timeouts != 2 {
		t.Errorf("stats %+v", s)
	}
}

// A caller's context deadline that comes sooner than LUA_TIMEOUT wins.
func TestDeadlineFromContext(t *testing.T) {
	e := newEngine(t, `function transform(ev) while true do end end`, WithTimeout(time.Hour))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	_, err := e.Transform(ctx, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("error %v", err)
	}
}

func TestDeadlineInMainChunk(t *testing.T) {
	p := writeScript(t, t.TempDir(), "slow.lua", "while true do end\nfunction transform(ev) return ev end")
	_, err := New(context.Background(), p, WithReload(0), WithTimeout(20*time.Millisecond))
	if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), "slow.lua") {
		t.Fatalf("error %v", err)
	}
}

// A state whose call failed is closed: its globals are gone with it.
func TestFailedStateIsDiscarded(t *testing.T) {
	e := newEngine(t, `
		function transform(ev)
		  calls = (calls or 0) + 1
		  if ev.subject == "boom" then error("boom") end
		  ev.ext.calls = calls
		  return ev
		end`, WithPoolSize(1))
	calls := func() int32 {
		return one(t, transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))).Extensions()["calls"].(int32)
	}
	if a, b := calls(), calls(); a != b-1 {
		t.Fatalf("a healthy state was not reused: %d then %d", a, b)
	}
	boom := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	boom.SetSubject("boom")
	statesBefore := e.Stats().States
	if _, err := e.Transform(context.Background(), boom); err == nil {
		t.Fatal("no error")
	}
	if got := calls(); got != 1 {
		t.Errorf("after a failed call, the next one ran on a state that had seen %d calls", got)
	}
	if e.Stats().States != statesBefore+1 {
		t.Errorf("states %d -> %d: the failed one was not replaced", statesBefore, e.Stats().States)
	}
}

// Concurrent calls never share a state and never wait for one.
func TestConcurrentCallsGetTheirOwnState(t *testing.T) {
	e := newEngine(t, `
		function transform(ev)
		  mine = ev.id
		  for i = 1, 200 do assert(mine == ev.id, "state shared between calls") end
		  return ev
		end`, WithPoolSize(2), WithTimeout(10*time.Second))
	var wg sync.WaitGroup
	errs := make(chan error, 16*50)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
				in.SetID(in.ID() + "-" + string(rune('a'+g)) + string(rune('a'+i%26)))
				if _, err := e.Transform(context.Background(), in); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

// Loops inside callbacks that Go built-ins call are stopped too.
func TestDeadlineInCallbacks(t *testing.T) {
	for _, code := range []string{
		`xpcall(function() error("x") end, function() while true do end end)`,
		`xpcall(function(n) while n do end end, print, true)`,
		`for _ in ipairs(setmetatable({}, {__index = function() while true do end end})) do end`,
		`local t = setmetatable({}, {__index = function() while true do end end}) local x = t.a`,
		`table.sort({3, 2, 1, 5, 4}, function(a, b) while true do end end)`,
		`("abc"):gsub("%w", function() while true do end end)`,
		`pcall(string.rep, "x", 1e12) while true do end`,
	} {
		e := newEngine(t, "function transform(ev) "+code+" return ev end", WithTimeout(50*time.Millisecond))
		if _, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{})); !errors.Is(err, ErrTimeout) {
			t.Errorf("%s: error %v", code, err)
		}
	}
}

// TestFormatDirectives: the one reading of a string.format format that its
// checks and its size bound share.
func TestFormatDirectives(t *testing.T) {
	for _, tc := range []struct {
		f    string
		want []formatDirective
	}{
		{"plain", nil},
		{"100%% %%d", nil},
		{"%d", []formatDirective{{1, 0, -1, 'd'}}},
		{"%-05.1f|%-3s|%x", []formatDirective{{1, 1, 1, 'f'}, {2, 1, -1, 's'}, {3, 0, -1, 'x'}}},
		{"%999d%.0s%.s", []formatDirective{{1, 3, -1, 'd'}, {2, 0, 1, 's'}, {3, 0, 0, 's'}}},
		{"%5-d", []formatDirective{{1, 1, -1, '-'}}},
		{"%1.2.3d", []formatDirective{{1, 1, 1, '.'}}},
		{"%*d %[1]d", []formatDirective{{1, 0, -1, '*'}, {2, 0, -1, '['}}},
		{"ends in %-", []formatDirective{{1, 0, -1, 0}}},
	} {
		got := slices.Collect(formatDirectives(tc.f))
		if !slices.Equal(got, tc.want) {
			t.Errorf("%q: %+v, want %+v", tc.f, got, tc.want)
		}
	}
}
