package lua

import (
	"context"
	"errors"
	"fmt"
	"runtime/metrics"
	"sync/atomic"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// state is one sandboxed Lua state of a script: it serves one call at a time.
type state struct {
	s *script
	L *glua.LState

	// The deadline of the running call. gopher-lua polls the context's Done
	// channel between instructions; a per-state context and a reused timer
	// keep a call free of context allocations. After it fired once the state
	// is closed, so the closed channel is never seen by a later call.
	deadline   deadlineCtx
	timer      *time.Timer
	running    atomic.Bool // a call runs: the memory guard may stop it
	memStop    atomic.Bool // the memory guard expired the deadline
	live       bool        // holds a slot of the script and is known to the guard
	heapSample [1]metrics.Sample

	fn      *glua.LFunction // the transform function, or the main chunk (RGW style)
	globals *glua.LTable
	envMT   *glua.LTable // RGW style: metatable of each run's fresh environment

	json    jsonCodec
	null    *glua.LUserData
	arrayMT *glua.LTable
	eventMT *glua.LTable
	extMT   *glua.LTable
	natsMT  *glua.LTable
	reqMT   *glua.LTable    // Request's tables
	clone   *glua.LFunction // ev:clone
	modules map[string]glua.LValue
	loaded  map[string]glua.LValue // user modules required so far; nil while one loads

	hmac        hmacState
	findMatcher matcher // string.find and string.match

	limitHit bool // a built-in refused to go past a limit (ErrLimit) in this call

	gen     uint64 // number of the current call; events of older calls are stale
	cur     *call  // the running call, nil between calls
	callBuf call
	tables  tableTrace
}

// call is what a running script call can reach from Go functions.
type call struct {
	ctx      context.Context
	site     callSite
	writes   map[string]int // table writes so far, by key (see writeID)
	deadline time.Time      // of the call, for what waits on the network (the RGW table)
	in       Output
	id       string
	outputs  []Output    // raw publishes, in order
	request  glua.LValue // Request, built on first use

	produced int    // clones and raw publishes so far (LUA_MAX_OUTPUTS)
	bytes    int    // bytes of clones and raw publishes so far (LUA_MAX_OUTPUT_BYTES)
	limit    string // the limit passed, once one was: the call fails
}

type deadlineCtx struct {
	done    chan struct{}
	expired atomic.Bool
}

func (c *deadlineCtx) Deadline() (time.Time, bool) { return time.Time{}, false }
func (c *deadlineCtx) Value(any) any               { return nil }

// Done is the closed channel once the deadline expired, nil before. The VM
// asks for it before every instruction and selects on it without waiting:
// on a nil channel that select returns at once, on an open one it inspects
// the channel (about 4 % of a call's instructions). Nothing else asks: a
// context derived from this one would see nil and never be canceled, which
// is why the sandbox has no coroutines (NewThread derives one) and
// TestDeadlineContextHasNoChildren checks that.
func (c *deadlineCtx) Done() <-chan struct{} {
	if c.expired.Load() {
		return c.done
	}
	return nil
}

func (c *deadlineCtx) Err() error {
	if c.expired.Load() {
		return context.DeadlineExceeded
	}
	return nil
}

func (c *deadlineCtx) expire() {
	if c.expired.CompareAndSwap(false, true) {
		close(c.done)
	}
}

// newState creates a sandboxed state holding the compiled script. For a
// transform script it runs the main chunk once, which defines the function.
func (s *script) newState() (*state, error) {
	st := &state{s: s}
	st.deadline.done = make(chan struct{})
	st.timer = time.AfterFunc(time.Hour, st.deadline.expire)
	st.timer.Stop()
	st.L = glua.NewState(glua.Options{
		SkipOpenLibs: true,
		// Deep recursion fails with "stack overflow" instead of growing.
		CallStackSize: 200,
		// unpack or string.byte of huge ranges fail with "registry
		// overflow"; a large grow step keeps the growth up to the limit
		// from copying the registry once per push.
		RegistrySize:     4 * 1024,
		RegistryMaxSize:  64 * 1024,
		RegistryGrowStep: 1024,
	})
	st.L.SetContext(&st.deadline)
	if err := st.sandbox(); err != nil {
		st.close()
		return nil, fmt.Errorf("lua: %s: setting up the sandbox: %w", s.name, err)
	}
	L := st.L
	main := L.NewFunctionFromProto(s.proto)
	if s.rgwStyle {
		st.fn = main
	} else {
		st.timer.Reset(s.eng.cfg.timeout)
		L.Push(main)
		err := L.PCall(0, 0, nil)
		if !st.timer.Stop() {
			st.close()
			return nil, st.tables.attach(&ScriptError{Script: s.name, Msg: fmt.Sprintf("main chunk ran past the %v deadline", s.eng.cfg.timeout), Timeout: true})
		}
		if err != nil {
			st.close()
			return nil, st.tables.attach(s.scriptError(err, ""))
		}
		if err := st.tables.failed(s.name, ""); err != nil {
			st.close()
			return nil, err
		}
		fn, ok := st.globals.RawGetString(s.eng.cfg.function).(*glua.LFunction)
		if !ok {
			st.close()
			return nil, &ScriptError{Script: s.name, Msg: fmt.Sprintf("the script defines no function %s(ev)", s.eng.cfg.function)}
		}
		st.fn = fn
	}
	s.eng.stats.states.Add(1)
	st.live = true
	s.eng.guard.add(st)
	return st, nil
}

// close releases the state and, for one handed out by acquire, its slot.
func (st *state) close() {
	st.timer.Stop()
	st.L.Close()
	if st.live {
		st.live = false
		st.s.eng.guard.remove(st)
		<-st.s.slots
	}
}

// call runs the script on one event. On error the state must be closed.
func (st *state) call(ctx context.Context, site callSite, in Output, outs []Output) ([]Output, error) {
	s := st.s
	d := s.eng.cfg.timeout
	if dl, ok := ctx.Deadline(); ok {
		if left := time.Until(dl); left < d {
			d = left
		}
	}
	st.gen++
	c := &st.callBuf
	c.ctx, c.site, c.in, c.id, c.request = ctx, site, in, in.Event.ID(), nil
	c.deadline = time.Now().Add(d)
	st.cur = c
	st.tables.reset()
	defer st.endCall()

	L := st.L
	nargs, nret := 0, 0
	if s.rgwStyle {
		// RGW gives each run a fresh state. A fresh environment per run
		// whose reads fall back to the state's globals does the same
		// without copying them: what a run assigns lands in its own
		// environment, and the library tables refuse writes.
		env := L.CreateTable(0, 2)
		env.Metatable = st.envMT
		env.RawSetString("_G", env)
		st.fn.Env = env
		L.Push(st.fn)
	} else {
		L.Push(st.fn)
		L.Push(st.newEvent(in))
		nargs, nret = 1, glua.MultRet
	}
	// The deadline covers the conversion of the results too: encoding
	// changed data is work done for the event.
	g := s.eng.guard
	g.enter(st)
	defer g.leave(st)
	st.timer.Reset(d)
	defer st.timer.Stop()
	err := L.PCall(nargs, nret, nil)
	if err := st.stopped(err, d, "ran past its %v deadline"); err != nil {
		return outs, st.tables.attachTo(err)
	}
	if c.limit != "" {
		// Raised at a clone or a publish, even if the script caught it.
		s.eng.stats.limits.Add(1)
		return outs, &ScriptError{Script: s.name, Line: st.lineOf(err), EventID: c.id, Limit: true, Msg: c.limit}
	}
	if err != nil {
		se := s.scriptError(err, c.id)
		se.Limit = st.limitHit
		return outs, st.tables.attach(se)
	}
	if err := st.tables.failed(s.name, c.id); err != nil {
		return outs, err
	}
	n := len(outs)
	outs = append(outs, c.outputs...)
	outs, err = st.results(outs, n)
	if err := st.stopped(nil, d, "ran past its %v deadline while its outputs were converted"); err != nil {
		return outs, err
	}
	if err != nil {
		if se, ok := err.(*ScriptError); ok && se.Limit {
			s.eng.stats.limits.Add(1)
		}
		return outs, err
	}
	if len(outs) == n {
		s.eng.stats.filtered.Add(1)
	}
	return outs, nil
}

// stopped returns the error of a call whose deadline expired: the timer's,
// or the memory guard's.
func (st *state) stopped(err error, d time.Duration, format string) error {
	if !st.deadline.expired.Load() {
		return nil
	}
	s := st.s
	if st.memStop.Load() {
		s.eng.stats.memoryStops.Add(1)
		return &ScriptError{Script: s.name, Line: st.lineOf(err), EventID: st.cur.id, Memory: true,
			Msg: fmt.Sprintf("stopped: the heap passed the memory limit of %d MiB (LUA_MEMORY_LIMIT) while scripts ran", s.eng.cfg.memoryLimit>>20)}
	}
	return &ScriptError{Script: s.name, Line: st.lineOf(err), EventID: st.cur.id, Timeout: true,
		Msg: "the call " + fmt.Sprintf(format, d)}
}

func (st *state) endCall() {
	st.L.SetTop(0)
	st.json.views.reset()
	st.limitHit = false
	c := st.cur
	clear(c.outputs)
	*c = call{outputs: c.outputs[:0]}
	st.cur = nil
}

// lineOf digs the line out of an error raised at the deadline.
func (st *state) lineOf(err error) int {
	if err == nil {
		return 0
	}
	return st.s.scriptError(err, "").Line
}

// results turns what the transform function returned into outputs: an event,
// several events, a list of events; nil or false publish nothing. The
// outputs of the call (its raw publishes are already in outs from first on)
// are counted again, exactly this time, against both limits of the event,
// and the conversion stops at the deadline.
func (st *state) results(outs []Output, first int) ([]Output, error) {
	L := st.L
	cfg := &st.s.eng.cfg
	size := 0
	for _, o := range outs[first:] {
		size += len(o.Raw) + headerSize(o.Header)
	}
	add := func(le *luaEvent) error {
		if len(outs)-first >= cfg.maxOutputs {
			return st.resultLimit(fmt.Sprintf("%d outputs or more", len(outs)-first+1), cfg.maxOutputs, "(LUA_MAX_OUTPUTS)")
		}
		if st.deadline.expired.Load() {
			return errExpired
		}
		o, n, err := st.output(le, cfg.maxOutputBytes-size)
		if err != nil {
			return err
		}
		if size += n; size > cfg.maxOutputBytes {
			return st.resultLimit(fmt.Sprintf("%d bytes of outputs or more", size), cfg.maxOutputBytes, "bytes (LUA_MAX_OUTPUT_BYTES)")
		}
		outs = append(outs, o)
		return nil
	}
	n := L.GetTop()
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case *glua.LNilType:
		case glua.LBool:
			if v {
				return outs, st.badResult("true")
			}
		case *glua.LUserData:
			le, ok := v.Value.(*luaEvent)
			if !ok {
				return outs, st.badResult("userdata")
			}
			if err := add(le); err != nil {
				return outs, err
			}
		case *glua.LTable:
			for j := 1; j <= v.Len(); j++ {
				ud, ok := v.RawGetInt(j).(*glua.LUserData)
				if !ok {
					return outs, st.badResult("list holding a " + v.RawGetInt(j).Type().String())
				}
				le, ok := ud.Value.(*luaEvent)
				if !ok {
					return outs, st.badResult("list holding a userdata")
				}
				if err := add(le); err != nil {
					return outs, err
				}
			}
		default:
			return outs, st.badResult(v.Type().String())
		}
	}
	return outs, nil
}

// errExpired stops a conversion at the deadline; the caller reports it.
var errExpired = errors.New("deadline expired")

func (st *state) resultLimit(what string, limit int, option string) error {
	st.limitError(what, limit, option)
	return &ScriptError{Script: st.s.name, EventID: st.cur.id, Limit: true, Msg: st.cur.limit}
}

// headerSize is what a header map weighs against LUA_MAX_OUTPUT_BYTES.
func headerSize(h map[string][]string) int {
	n := 0
	for k, vs := range h {
		for _, v := range vs {
			n += len(k) + len(v) + 4 // "k: v\r\n"
		}
	}
	return n
}

func (st *state) badResult(what string) error {
	return &ScriptError{Script: st.s.name, EventID: st.cur.id,
		Msg: fmt.Sprintf("%s returned a %s: return the event, several events or a list of them, or nil to publish nothing", st.s.eng.cfg.function, what)}
}
