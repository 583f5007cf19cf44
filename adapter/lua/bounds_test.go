package lua

import (
	"context"
	"errors"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
)

// sizedEvent is an RGW event whose data is padded to about n bytes (in its
// opaqueData), as a large notification would be.
func sizedEvent(t *testing.T, n int) *event.Event {
	t.Helper()
	ev := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	data := string(ev.Data())
	i := strings.LastIndexByte(data, '}')
	padded := data[:i] + `,"padding":"` + strings.Repeat("p", max(0, n-len(data)-14)) + `"}`
	if err := ev.SetData(event.ApplicationJSON, []byte(padded)); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestOutputLimits(t *testing.T) {
	const maxOut = 10
	for _, tc := range []struct {
		name, src string
		small     bool   // LUA_MAX_OUTPUT_BYTES of 4000 instead of 1 MiB
		size      int    // data of the event, bytes
		want      string // in the error; "" = no error
		outs      int
		line      int // where the limit was hit; 0 = not checked
	}{
		{name: "clones at the limit", src: `function transform(ev)
  local l = {}
  for i = 1, 10 do l[i] = ev:clone() end
  return l
end`, outs: 10},
		{name: "clones past the limit fail at the clone", src: `function transform(ev)
  local l = {}
  for i = 1, 20000 do l[i] = ev:clone() end
  return l
end`, want: "11 outputs exceed the limit of 10 (LUA_MAX_OUTPUTS)", line: 3},
		{name: "caught with pcall still fails", src: `function transform(ev)
  for i = 1, 100 do pcall(ev.clone, ev) end
  return ev
end`, want: "(LUA_MAX_OUTPUTS)"},
		{name: "raw publishes", src: `local rn = require "rgwnats"
function transform(ev)
  for i = 1, 11 do rn.publish("raw.x", "p") end
end`, want: "11 outputs exceed the limit of 10 (LUA_MAX_OUTPUTS)", line: 3},
		{name: "clones and publishes together", src: `local rn = require "rgwnats"
function transform(ev)
  for i = 1, 6 do ev:clone() end
  for i = 1, 6 do rn.publish("raw.x", "p") end
end`, want: "11 outputs exceed the limit of 10 (LUA_MAX_OUTPUTS)", line: 4},
		{name: "one event returned many times", src: `function transform(ev)
  local l = {}
  for i = 1, 50 do l[i] = ev end
  return l
end`, want: "11 outputs or more exceed the limit of 10 (LUA_MAX_OUTPUTS)"},
		{name: "returned events and publishes together", src: `local rn = require "rgwnats"
function transform(ev)
  for i = 1, 5 do rn.publish("raw.x", "p") end
  return ev, ev, ev, ev, ev, ev
end`, want: "(LUA_MAX_OUTPUTS)"},
		{name: "clones of large data", small: true, size: 1500, src: `function transform(ev)
  local l = {}
  for i = 1, 1000 do l[i] = ev:clone() end
  return l
end`, want: "bytes of outputs or more exceed the limit of 4000 bytes (LUA_MAX_OUTPUT_BYTES)", line: 3},
		{name: "clones of decoded large data", small: true, size: 1500, src: `function transform(ev)
  local d = ev.data
  local l = {}
  for i = 1, 1000 do l[i] = ev:clone() end
  return l
end`, want: "(LUA_MAX_OUTPUT_BYTES)", line: 4},
		{name: "raw payload", small: true, src: `local rn = require "rgwnats"
function transform(ev)
  rn.publish("raw.x", string.rep("x", 4001))
end`, want: "4001 bytes of outputs or more exceed the limit of 4000 bytes (LUA_MAX_OUTPUT_BYTES)"},
		{name: "raw table payload", small: true, src: `local rn = require "rgwnats"
function transform(ev)
  local t = {}
  for i = 1, 1000 do t[i] = "abcdefgh" end
  rn.publish("raw.x", t)
end`, want: "(LUA_MAX_OUTPUT_BYTES)"},
		{name: "changed data encoded past the budget", small: true, src: `function transform(ev)
  local t = {}
  for i = 1, 1000 do t[i] = "abcdefgh" end
  ev.data = t
  return ev
end`, want: "(LUA_MAX_OUTPUT_BYTES)"},
		{name: "headers", small: true, src: `function transform(ev)
  ev.nats.header = {["X-Big"] = string.rep("h", 5000)}
  return ev
end`, want: "(LUA_MAX_OUTPUT_BYTES)"},
		{name: "unchanged events under the budget", small: true, size: 1500, src: `function transform(ev)
  return ev, ev
end`, outs: 2},
		{name: "unchanged events past the budget", small: true, size: 1500, src: `function transform(ev)
  return ev, ev, ev
end`, want: "(LUA_MAX_OUTPUT_BYTES)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			maxBytes := 1 << 20
			if tc.small {
				maxBytes = 4000
			}
			e := newEngine(t, tc.src, WithMaxOutputs(maxOut), WithMaxOutputBytes(maxBytes))
			ev := fixture(t, "reef-put-capture.json", cloudevent.Options{})
			if tc.size > 0 {
				ev = sizedEvent(t, tc.size)
			}
			outs, err := e.Transform(context.Background(), ev)
			if tc.want == "" {
				if err != nil || len(outs) != tc.outs {
					t.Fatalf("%d outputs, error %v; want %d outputs", len(outs), err, tc.outs)
				}
				return
			}
			if !errors.Is(err, ErrLimit) || !errors.Is(err, ErrScript) || errors.Is(err, ErrTimeout) {
				t.Fatalf("error %v, want ErrLimit and ErrScript", err)
			}
			for _, want := range []string{tc.want, "(event " + ev.ID() + ")", "script.lua"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			var se *ScriptError
			if tc.line > 0 && (!errors.As(err, &se) || se.Line != tc.line) {
				t.Errorf("error %v: want line %d", err, tc.line)
			}
			if outs != nil {
				t.Errorf("outputs %v with the error", outs)
			}
			if s := e.Stats(); s.Limits != 1 {
				t.Errorf("Stats.Limits = %d, want 1", s.Limits)
			}
		})
	}
}

// TestOutputLimitsAcrossChain: the outputs of a chain are bounded as a
// whole, not only per script.
func TestOutputLimitsAcrossChain(t *testing.T) {
	dir := t.TempDir()
	fan := `function transform(ev)
  local l = {}
  for i = 1, 5 do l[i] = ev:clone() end
  return l
end`
	writeScript(t, dir, "10-fan.lua", fan)
	writeScript(t, dir, "20-fan.lua", fan)
	e, err := New(context.Background(), dir, WithReload(0), WithTimeout(testTimeout), WithMaxOutputs(10))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ev := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	_, err = e.Transform(context.Background(), ev)
	if !errors.Is(err, ErrLimit) || !strings.Contains(err.Error(), "25 outputs") || !strings.Contains(err.Error(), ev.ID()) {
		t.Fatalf("error %v, want 25 outputs past the limit of 10", err)
	}
}

// TestDeadlineCoversConversion: encoding a huge changed data table is work
// done for the event, inside its deadline, whether it comes from the
// engine's timeout or from the caller's context.
func TestDeadlineCoversConversion(t *testing.T) {
	// Building takes four hundred assignments; encoding it, two million
	// values: the deadline can only pass while the outputs are converted.
	src := `function transform(ev)
  local row = {}
  for i = 1, 100 do row["k" .. i] = i end
  local mid = {}
  for i = 1, 100 do mid[i] = row end
  local t = {}
  for i = 1, 200 do t[i] = mid end
  ev.data = t
  return ev
end`
	for _, tc := range []struct {
		name    string
		timeout time.Duration
		ctx     time.Duration
	}{
		{"engine timeout", 50 * time.Millisecond, 0},
		{"context deadline", testTimeout, 50 * time.Millisecond},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, src, WithTimeout(tc.timeout), WithMaxOutputBytes(1<<30))
			ctx := context.Background()
			if tc.ctx > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctx)
				defer cancel()
			}
			ev := fixture(t, "reef-put-capture.json", cloudevent.Options{})
			_, err := e.Transform(ctx, ev)
			if !errors.Is(err, ErrTimeout) || !strings.Contains(err.Error(), ev.ID()) {
				t.Fatalf("error %v, want a timeout naming the event", err)
			}
			if !strings.Contains(err.Error(), "while its outputs were converted") {
				t.Errorf("error %q: the deadline did not pass during the conversion (a loaded machine?)", err)
			}
		})
	}
}

func TestMaxStates(t *testing.T) {
	e := newEngine(t, `function transform(ev)
  if ev.subject == "spin" then while true do end end
  return ev
end`, WithMaxStates(1), WithStateWait(20*time.Millisecond), WithTimeout(2*time.Second))
	s := e.chain.Load().scripts[0]
	spin := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	spin.SetSubject("spin")
	done := make(chan error, 1)
	go func() {
		_, err := e.Transform(context.Background(), spin)
		done <- err
	}()
	for len(s.idle) > 0 {
		time.Sleep(time.Millisecond)
	}
	ev := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	_, err := e.Transform(context.Background(), ev)
	if !errors.Is(err, ErrBusy) || errors.Is(err, ErrScript) {
		t.Fatalf("error %v, want ErrBusy", err)
	}
	for _, want := range []string{"event " + ev.ID(), "LUA_MAX_STATES", "all 1 states busy"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
	// A caller's deadline shorter than the wait ends it sooner.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
	_, err = e.Transform(ctx, ev)
	cancel()
	if !errors.Is(err, ErrBusy) && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v with an expired context", err)
	}
	if err := <-done; !errors.Is(err, ErrTimeout) {
		t.Fatalf("spinning call: %v", err)
	}
	// Its state was closed, so its slot is free again.
	if _, err := e.Transform(context.Background(), ev); err != nil {
		t.Fatal(err)
	}
	if st := e.Stats(); st.Busy < 1 {
		t.Errorf("Stats.Busy = %d", st.Busy)
	}
}

// TestMaxStatesUnderLoad: many concurrent calls never have more live
// states than the cap; they wait for one instead.
func TestMaxStatesUnderLoad(t *testing.T) {
	e := newEngine(t, `function transform(ev) local n = 0 for i = 1, 20000 do n = n + i end return ev end`,
		WithMaxStates(2), WithStateWait(testTimeout))
	var wg sync.WaitGroup
	errs := make(chan error, 32)
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{}))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if s := e.Stats(); s.States > 2 {
		t.Errorf("%d states created for a cap of 2", s.States)
	}
}

func heapNow() int64 {
	var s [1]metrics.Sample
	return int64(heapInUse(&s))
}

// TestMemoryGuard: a script that keeps allocating is stopped by the heap
// limit long before its deadline, whether its memory comes from big
// built-in results or from the VM itself (table growth).
func TestMemoryGuard(t *testing.T) {
	for _, tc := range []struct{ name, src string }{
		{"big strings", `function transform(ev)
  local t = {}
  while true do t[#t+1] = string.rep("x", 1048576) end
end`},
		{"table growth", `function transform(ev)
  local t = {}
  while true do t[#t+1] = {ev.id} end
end`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, tc.src, WithTimeout(testTimeout), WithMemoryLimit(heapNow()+32<<20))
			ev := fixture(t, "reef-put-capture.json", cloudevent.Options{})
			_, err := e.Transform(context.Background(), ev)
			if !errors.Is(err, ErrMemory) || !errors.Is(err, ErrTimeout) || errors.Is(err, ErrLimit) {
				t.Fatalf("error %v, want ErrMemory and ErrTimeout", err)
			}
			for _, want := range []string{"LUA_MEMORY_LIMIT", "(event " + ev.ID() + ")"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if s := e.Stats(); s.MemoryStops != 1 {
				t.Errorf("Stats.MemoryStops = %d", s.MemoryStops)
			}
		})
	}
	// Off: the same script runs into its deadline instead.
	e := newEngine(t, `function transform(ev) local t = {} while true do t[#t+1] = ev.id end end`,
		WithTimeout(20*time.Millisecond), WithMemoryLimit(-1))
	if _, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{})); !errors.Is(err, ErrTimeout) {
		t.Fatalf("guard off: %v", err)
	}
}

func TestBoundDefaults(t *testing.T) {
	c := config{timeout: time.Second, poolSize: 1000}
	c.applyBoundDefaults()
	if c.maxOutputs != DefaultMaxOutputs || c.maxOutputBytes != DefaultMaxOutputBytes ||
		c.maxStates != DefaultMaxStates() || c.poolSize != c.maxStates || c.stateWait != time.Second || c.memoryLimit <= 0 {
		t.Errorf("defaults %+v", c)
	}
}

// TestAcquireSkipsStoppedState: a state the memory guard stopped just as
// its call ended is closed, not handed to the next call, and its slot is
// free again.
func TestAcquireSkipsStoppedState(t *testing.T) {
	e := newEngine(t, `function transform(ev) return ev end`, WithMaxStates(1), WithStateWait(time.Millisecond))
	s := e.chain.Load().scripts[0]
	st := <-s.idle
	st.memStop.Store(true)
	st.deadline.expire()
	s.idle <- st
	if _, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{})); err != nil {
		t.Fatal(err)
	}
	if s := e.Stats(); s.States != 2 || s.MemoryStops != 0 {
		t.Errorf("stats %+v: want the stopped state replaced by a second one", s)
	}
}
