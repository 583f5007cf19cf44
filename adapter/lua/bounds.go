package lua

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// The hard bounds of one event: how many outputs and how many bytes a script
// may produce for it, how many states may run at once, and how much heap the
// process may hold while scripts run. Each exists because a script once went
// past it (issue 8): 20,000 clones of one event, 1000 clones of 900 KiB
// turned into 2.3 GB of messages after the deadline, one new state per
// concurrent request.

var (
	// ErrBusy is returned when no Lua state became free in time
	// (LUA_MAX_STATES states busy for LUA_STATE_WAIT): a retry can succeed.
	ErrBusy = errors.New("lua: all Lua states busy")
	// ErrMemory is wrapped by the error of a call stopped because the
	// process's heap passed LUA_MEMORY_LIMIT while it ran. Every call
	// running at that moment is stopped, since the heap cannot tell whose
	// memory it is, so it is transient: such an error wraps ErrTimeout too,
	// and like a repeated timeout a repeated stop for one event id points at
	// a poison event.
	ErrMemory = errors.New("lua: memory limit reached")
)

// Defaults of the bounds.
const (
	// DefaultMaxOutputs bounds the outputs of one event: returned events,
	// clones and raw publishes together. Real fan-outs route a record to a
	// handful of subjects; 100 leaves room for that many times over while
	// keeping one event from becoming a flood.
	DefaultMaxOutputs = 100
	// DefaultMaxOutputBytes bounds the bytes one event produces (data of
	// the returned and cloned events, raw payloads, headers): 1 MiB, the
	// default MAX_BODY_BYTES, so the largest event accepted passes through
	// unchanged and a typical 1-2 KiB record can fan out to every output
	// allowed, but a large event cannot be multiplied.
	DefaultMaxOutputBytes = 1 << 20
	// DefaultMemoryFraction of GOMEMLIMIT is the default memory limit; the
	// rest is left for what runs outside Lua (request bodies, encoding,
	// NATS buffers) and for the garbage the collector has not reached yet.
	DefaultMemoryFraction = 0.5
	// DefaultMemoryLimit applies when GOMEMLIMIT is not set.
	DefaultMemoryLimit = 256 << 20
)

// DefaultMaxStates is the default cap of live states per script: two per
// CPU (GOMAXPROCS). Script calls are CPU-bound, so more states running at
// once add memory, not throughput.
func DefaultMaxStates() int { return 2 * runtime.GOMAXPROCS(0) }

// WithMaxOutputs bounds the outputs of one event (LUA_MAX_OUTPUTS, default
// DefaultMaxOutputs): events returned, ev:clone() calls and raw publishes
// (nats client:publish, rgwnats.publish) all count. A clone counts when it
// is made, so a loop of clones fails at the first one too many.
func WithMaxOutputs(n int) Option { return func(c *config) { c.maxOutputs = n } }

// WithMaxOutputBytes bounds the bytes one event produces
// (LUA_MAX_OUTPUT_BYTES, default DefaultMaxOutputBytes): the data of every
// clone when it is made, every raw payload when it is published, and the
// final data and headers of every output when the results are converted.
func WithMaxOutputBytes(n int) Option { return func(c *config) { c.maxOutputBytes = n } }

// WithMaxStates caps the live states of each script (LUA_MAX_STATES, default
// DefaultMaxStates()). A call that finds them all busy waits for one (see
// WithStateWait), then fails with ErrBusy.
func WithMaxStates(n int) Option { return func(c *config) { c.maxStates = n } }

// WithStateWait sets how long a call waits for a busy state to become free
// (LUA_STATE_WAIT, default the call's timeout: long enough for one running
// call to finish). The caller's context deadline cuts it short.
func WithStateWait(d time.Duration) Option { return func(c *config) { c.stateWait = d } }

// WithMemoryLimit sets the Go heap size (bytes of heap objects, as
// runtime/metrics counts them) past which every running script call is
// stopped with ErrMemory (LUA_MEMORY_LIMIT). 0 means the default: half of
// GOMEMLIMIT when that is set, DefaultMemoryLimit otherwise; negative turns
// the guard off.
func WithMemoryLimit(n int64) Option { return func(c *config) { c.memoryLimit = n } }

// applyBoundDefaults fills in the bounds left at zero.
func (c *config) applyBoundDefaults() {
	if c.maxOutputs <= 0 {
		c.maxOutputs = DefaultMaxOutputs
	}
	if c.maxOutputBytes <= 0 {
		c.maxOutputBytes = DefaultMaxOutputBytes
	}
	if c.maxStates <= 0 {
		c.maxStates = DefaultMaxStates()
	}
	if c.poolSize > c.maxStates {
		c.poolSize = c.maxStates
	}
	if c.stateWait <= 0 {
		c.stateWait = c.timeout
	}
	if c.memoryLimit == 0 {
		c.memoryLimit = defaultMemoryLimit()
	}
}

func defaultMemoryLimit() int64 {
	if l := debug.SetMemoryLimit(-1); l > 0 && l < math.MaxInt64 {
		return int64(float64(l) * DefaultMemoryFraction)
	}
	return DefaultMemoryLimit
}

// limitError is the error of a call that went past a bound of the event. It
// is raised inside Lua (a clone, a publish) or while converting the results;
// the call remembers it, so a script that catches it with pcall still fails.
func (st *state) limitError(what string, limit int, option string) {
	c := st.cur
	if c.limit == "" {
		c.limit = fmt.Sprintf("%s exceed the limit of %d %s", what, limit, option)
	}
}

// charge counts n more outputs and b more bytes for the running call and
// raises a Lua error naming the limit when one is passed. Once a limit has
// been passed every later charge fails too.
func (st *state) charge(L *glua.LState, n, b int) {
	c := st.cur
	cfg := &st.s.eng.cfg
	c.produced += n
	c.bytes += b
	switch {
	case c.limit != "":
	case c.produced > cfg.maxOutputs:
		st.limitError(fmt.Sprintf("%d outputs", c.produced), cfg.maxOutputs, "(LUA_MAX_OUTPUTS)")
	case c.bytes > cfg.maxOutputBytes:
		st.limitError(fmt.Sprintf("%d bytes of outputs or more", c.bytes), cfg.maxOutputBytes, "bytes (LUA_MAX_OUTPUT_BYTES)")
	default:
		return
	}
	L.RaiseError("%s", c.limit)
}

// bytesLeft is what the running call may still produce.
func (st *state) bytesLeft() int { return st.s.eng.cfg.maxOutputBytes - st.cur.bytes }

// errLimitHit tells the encoder that its output passed the bytes left.
var errLimitHit = errors.New("output bytes limit")

// acquire hands out an idle state, or a new one while the script has fewer
// than maxStates; otherwise it waits for either, up to the state wait and
// the context's deadline.
func (s *script) acquire(ctx context.Context, id string) (*state, error) {
	for {
		select {
		case st := <-s.idle:
			if s.usable(st) {
				return st, nil
			}
			continue
		default:
		}
		break
	}
	select {
	case s.slots <- struct{}{}:
		return s.startState()
	default:
	}
	wait := s.eng.cfg.stateWait
	if dl, ok := ctx.Deadline(); ok {
		wait = min(wait, time.Until(dl))
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case st := <-s.idle:
		if !s.usable(st) {
			return s.acquire(ctx, id)
		}
		return st, nil
	case s.slots <- struct{}{}:
		return s.startState()
	case <-t.C:
		return nil, fmt.Errorf("lua: %s: event %s: all %d states busy for %v (LUA_MAX_STATES, LUA_STATE_WAIT): %w",
			s.name, id, s.eng.cfg.maxStates, wait, ErrBusy)
	case <-ctx.Done():
		return nil, fmt.Errorf("lua: %s: event %s: waiting for a state: %w", s.name, id, ctx.Err())
	}
}

// usable tells an idle state from one the memory guard stopped just as its
// last call ended (its deadline is done for good): that one is closed.
func (s *script) usable(st *state) bool {
	if st.deadline.expired.Load() {
		st.close()
		return false
	}
	return true
}

// startState creates a state in a slot taken by the caller, giving the
// slot back if it cannot.
func (s *script) startState() (*state, error) {
	st, err := s.newState()
	if err != nil {
		<-s.slots
		return nil, err
	}
	return st, nil
}

// memoryGuard stops the running calls of an engine when the Go heap passes
// the limit. It samples only while calls run: a call's first instruction
// wakes it, and it sleeps again once none runs.
type memoryGuard struct {
	limit   uint64
	period  time.Duration
	running atomic.Int64
	wake    chan struct{}

	mu   sync.Mutex
	live map[*state]struct{}
}

// memoryPeriod is how often the heap is sampled while calls run. Reading one
// runtime metric costs about a microsecond; a state allocating as fast as
// it can gains a few MiB in this time.
const memoryPeriod = time.Millisecond

func newMemoryGuard(limit int64) *memoryGuard {
	if limit < 0 {
		return nil
	}
	return &memoryGuard{limit: uint64(limit), period: memoryPeriod, wake: make(chan struct{}, 1), live: make(map[*state]struct{})}
}

func (g *memoryGuard) add(st *state) {
	if g == nil {
		return
	}
	g.mu.Lock()
	g.live[st] = struct{}{}
	g.mu.Unlock()
}

func (g *memoryGuard) remove(st *state) {
	if g == nil {
		return
	}
	g.mu.Lock()
	delete(g.live, st)
	g.mu.Unlock()
}

// enter and leave bracket a running call.
func (g *memoryGuard) enter(st *state) {
	if g == nil {
		return
	}
	st.running.Store(true)
	if g.running.Add(1) == 1 {
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
}

func (g *memoryGuard) leave(st *state) {
	if g == nil {
		return
	}
	st.running.Store(false)
	g.running.Add(-1)
}

const heapMetric = "/memory/classes/heap/objects:bytes"

func (g *memoryGuard) run(stop <-chan struct{}) {
	var sample [1]metrics.Sample
	sample[0].Name = heapMetric
	t := time.NewTicker(g.period)
	t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-g.wake:
		}
		t.Reset(g.period)
		for g.running.Load() > 0 {
			select {
			case <-stop:
				t.Stop()
				return
			case <-t.C:
			}
			if heapInUse(&sample) > g.limit {
				g.stopRunning()
			}
		}
		t.Stop()
	}
}

// stopRunning makes every running call fail with ErrMemory; their states
// are closed, which frees what they hold.
func (g *memoryGuard) stopRunning() {
	g.mu.Lock()
	defer g.mu.Unlock()
	for st := range g.live {
		if st.running.Load() {
			st.memStop.Store(true)
			st.deadline.expire()
		}
	}
}

// warmState creates a state for the pool when a version is loaded; it
// takes a slot like any other (load warms at most poolSize <= maxStates).
func (s *script) warmState() (*state, error) {
	s.slots <- struct{}{}
	return s.startState()
}

// bigResult is the size from which the result of a built-in makes the state
// look at the heap itself: a loop that keeps such strings (string.rep of
// 1 MiB into a table) gains tens of MiB per millisecond, faster than the
// guard samples.
const bigResult = 64 << 10

// heapInUse reads the bytes of heap objects (live and not yet swept).
func heapInUse(s *[1]metrics.Sample) uint64 {
	metrics.Read(s[:])
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64()
}

// guardResults wraps the built-ins that can return large new strings so
// that a big result checks the heap: past the limit the call is stopped as
// the guard would stop it.
func (st *state) guardResults() {
	g := st.s.eng.guard
	if g == nil {
		return
	}
	st.heapSample[0].Name = heapMetric
	inner := func(proxy glua.LValue) *glua.LTable {
		t, ok := proxy.(*glua.LTable)
		if !ok {
			return nil
		}
		if mt, ok := t.Metatable.(*glua.LTable); ok {
			if in, ok := mt.RawGetString("__index").(*glua.LTable); ok {
				return in
			}
		}
		return t
	}
	wrap := func(t *glua.LTable, names ...string) {
		if t == nil {
			return
		}
		for _, name := range names {
			f, ok := t.RawGetString(name).(*glua.LFunction)
			if !ok || !f.IsG {
				continue
			}
			fn := f.GFunction
			t.RawSetString(name, st.L.NewFunction(func(L *glua.LState) int {
				n := fn(L)
				if n > 0 {
					if s, ok := L.Get(L.GetTop() - n + 1).(glua.LString); ok && len(s) >= bigResult {
						st.checkHeap(L, g)
					}
				}
				return n
			}))
		}
	}
	wrap(inner(st.globals.RawGetString("string")), "rep", "format", "gsub", "upper", "lower", "reverse")
	wrap(inner(st.globals.RawGetString("table")), "concat")
	rn := inner(st.modules["rgwnats"])
	wrap(rn, "base64_encode", "base64_decode")
	if rn != nil {
		wrap(inner(rn.RawGetString("json")), "encode")
	}
	wrap(inner(st.modules["lunajson"]), "encode")
	wrap(inner(st.modules["cjson"]), "encode")
}

func (st *state) checkHeap(L *glua.LState, g *memoryGuard) {
	if st.cur == nil || heapInUse(&st.heapSample) <= g.limit {
		return
	}
	st.memStop.Store(true)
	st.deadline.expire()
	L.RaiseError("memory limit reached")
}

// checkChain bounds the outputs of a chain as a whole: each script's calls
// are bounded, but every output of one feeds the next.
func (e *Engine) checkChain(c *chain, id string, outs []Output) error {
	last := c.scripts[len(c.scripts)-1].name
	if len(outs) > e.cfg.maxOutputs {
		e.stats.limits.Add(1)
		return &ScriptError{Script: last, EventID: id, Limit: true,
			Msg: fmt.Sprintf("the chain produced %d outputs, exceeding the limit of %d (LUA_MAX_OUTPUTS)", len(outs), e.cfg.maxOutputs)}
	}
	size := 0
	for _, o := range outs {
		size += len(o.Raw) + headerSize(o.Header)
		if o.Event != nil {
			size += len(o.Event.Data())
		}
	}
	if size > e.cfg.maxOutputBytes {
		e.stats.limits.Add(1)
		return &ScriptError{Script: last, EventID: id, Limit: true,
			Msg: fmt.Sprintf("the chain produced %d bytes of outputs, exceeding the limit of %d bytes (LUA_MAX_OUTPUT_BYTES)", size, e.cfg.maxOutputBytes)}
	}
	return nil
}

// The built-ins below make a string whose size follows from their
// arguments; each is refused before it allocates when that size passes the
// string bound (WithMaxString), as string.rep, concatenation, table.concat,
// gsub and string.pack are. (string.sub, byte, char, upper, lower, reverse,
// base64_decode and the hashes make at most what they were given.)

// formatSize is at least the length of what string.format(f, ...) makes
// from the arguments on L's stack (2 on), widths and precisions being at
// most two digits (checkFormat).
func formatSize(L *glua.LState, f string) int {
	size := len(f)
	for d := range formatDirectives(f) {
		size += 100 // a number in a width of up to 99, or a "%!v(MISSING)"
		if d.arg+1 > L.GetTop() {
			continue
		}
		if s, ok := L.Get(d.arg + 1).(glua.LString); ok {
			switch d.verb {
			case 's':
				size += len(s)
			case 'q':
				size += 4*len(s) + 2 // \xNN for a byte, at most
			}
		}
	}
	return size
}

// boundFormat refuses a string.format whose result would pass the bound.
func (st *state) boundFormat(L *glua.LState, f string) {
	if n := formatSize(L, f); n > st.maxString() {
		st.tooLong(L, "string.format", n)
	}
}

// boundSize refuses a result of n bytes from fn before it is made.
func (st *state) boundSize(L *glua.LState, fn string, n int) {
	if n > st.maxString() {
		st.tooLong(L, fn, n)
	}
}

// boundResults wraps the built-ins whose result size is known from their
// arguments before they run: string.upper, lower and reverse (as long as
// their argument), os.date (at most 32 bytes per byte of its format: "%c"
// is 24), rgwnats.base64_encode (4 per 3) and rgwnats.token (3 per byte).
func (st *state) boundResults() {
	wrap := func(t *glua.LTable, name string, size func(L *glua.LState) int) {
		if t == nil {
			return
		}
		f, ok := t.RawGetString(name).(*glua.LFunction)
		if !ok || !f.IsG {
			return
		}
		fn, qualified := f.GFunction, name
		t.RawSetString(name, st.L.NewFunction(func(L *glua.LState) int {
			st.boundSize(L, qualified, size(L))
			return fn(L)
		}))
	}
	argLen := func(L *glua.LState) int {
		if s, ok := L.Get(1).(glua.LString); ok {
			return len(s)
		}
		return 0
	}
	str := libTable(st.globals.RawGetString("string"))
	for _, name := range []string{"upper", "lower", "reverse"} {
		wrap(str, name, argLen)
	}
	wrap(libTable(st.globals.RawGetString("os")), "date", func(L *glua.LState) int { return 32 * argLen(L) })
	rn := libTable(st.modules["rgwnats"])
	wrap(rn, "base64_encode", func(L *glua.LState) int { return (argLen(L) + 2) / 3 * 4 })
	wrap(rn, "token", func(L *glua.LState) int { return 3 * argLen(L) })
}

// libTable is the table behind a read-only library proxy (or t itself).
func libTable(v glua.LValue) *glua.LTable {
	t, ok := v.(*glua.LTable)
	if !ok {
		return nil
	}
	if mt, ok := t.Metatable.(*glua.LTable); ok {
		if in, ok := mt.RawGetString("__index").(*glua.LTable); ok {
			return in
		}
	}
	return t
}
