package lua

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"
)

// Output is one thing to publish that a transform produced.
type Output struct {
	// Event is the event to publish; nil for a raw publish. It may be the
	// very event given to Transform when the script did not change it.
	Event *event.Event
	// Raw is a payload to publish as is (lua-nats client:publish,
	// rgwnats.publish); set only when Event is nil.
	Raw []byte
	// Subject is the NATS subject chosen by the script; "" means the service
	// applies its subject template to Event. Raw outputs always have one.
	Subject string
	// Header holds extra NATS headers set by the script (nil when none).
	Header map[string][]string
	// DataJSON: Event's data is valid JSON, the caller need not check it
	// again: the engine wrote it itself (a table or a string encoded, the
	// record's text spliced where it was changed, from a text it checked
	// or was vouched for), or it is the data of an event given to
	// TransformChecked, kept as it came. (Between the scripts of a chain
	// it tells the next script the same.)
	DataJSON bool
}

var (
	// ErrTimeout is wrapped by the error of a call that ran past its deadline
	// (LUA_TIMEOUT): the service answers 503 so that the sender retries.
	ErrTimeout = errors.New("lua: deadline exceeded")
	// ErrScript is wrapped by every error a script caused (a runtime error,
	// a bad return value, a timeout): the service answers 5xx.
	ErrScript = errors.New("lua: script failed")
	// ErrClosed is returned by Transform after Close.
	ErrClosed = errors.New("lua: engine closed")
	// ErrLimit is wrapped by the error of a call that tried to go past a
	// bound (a string longer than WithMaxString, from .., string.rep,
	// string.gsub, table.concat...; more outputs or bytes for one event than
	// WithMaxOutputs, WithMaxOutputBytes allow): a permanent failure, since
	// the same event will hit it again.
	ErrLimit = errors.New("lua: limit exceeded")
)

// ScriptError is the error of one script call. Its message names the script
// file, the line when known, and the event id. It wraps ErrScript, and
// ErrTimeout when the call hit its deadline, ErrLimit when it passed a bound
// of the event, ErrMemory and ErrTimeout when the memory guard stopped it.
type ScriptError struct {
	Script  string // file name of the script
	Line    int    // 0 when unknown
	EventID string
	Msg     string // what went wrong, without the position
	Timeout bool
	Limit   bool // a bound was hit: wraps ErrLimit
	Memory  bool // the memory guard stopped it: wraps ErrMemory
	// Err is the RGW table's error behind the failure (a *TableError), nil
	// when the table had no part in it.
	Err error
}

func (e *ScriptError) Error() string {
	var b strings.Builder
	b.WriteString("lua: ")
	b.WriteString(e.Script)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	if e.EventID != "" {
		fmt.Fprintf(&b, " (event %s)", e.EventID)
	}
	return b.String()
}

// Unwrap returns ErrScript, ErrTimeout, ErrLimit or ErrMemory too, and Err.
// A call that failed because the table was unavailable is not the script's
// fault: it does not wrap ErrScript.
func (e *ScriptError) Unwrap() []error {
	errs := make([]error, 0, 4)
	if !errors.Is(e.Err, ErrTableUnavailable) {
		errs = append(errs, ErrScript)
	}
	switch {
	case e.Timeout:
		errs = append(errs, ErrTimeout)
	case e.Limit:
		errs = append(errs, ErrLimit)
	case e.Memory:
		// Stopped before it finished, like a timeout, and classified as
		// one: transient, and poison when it repeats for one event id.
		errs = append(errs, ErrTimeout, ErrMemory)
	}
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	return errs
}

// Policy says what becomes of an event whose script call failed.
type Policy int

const (
	// Reject returns the error: the request fails and the sender retries.
	Reject Policy = iota
	// Drop publishes nothing for the event; it is counted and logged.
	Drop
	// Passthrough publishes the event as the failing script received it.
	Passthrough
)

func (p Policy) String() string {
	switch p {
	case Reject:
		return "reject"
	case Drop:
		return "drop"
	case Passthrough:
		return "passthrough"
	}
	return fmt.Sprintf("Policy(%d)", int(p))
}

// ParsePolicy reads LUA_ON_ERROR: reject, drop or passthrough.
func ParsePolicy(s string) (Policy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "reject":
		return Reject, nil
	case "drop":
		return Drop, nil
	case "passthrough":
		return Passthrough, nil
	}
	return Reject, fmt.Errorf("lua: unknown error policy %q (want reject, drop or passthrough)", s)
}

// Default settings.
const (
	DefaultFunction       = "transform"
	DefaultTimeout        = 100 * time.Millisecond
	DefaultReloadInterval = 2 * time.Second
	// DefaultMaxString bounds the strings that built-ins a deadline cannot
	// interrupt (string.rep, string.gsub, table.concat) may build: 1 MiB.
	DefaultMaxString = 1 << 20
)

type config struct {
	function   string
	timeout    time.Duration
	onError    Policy
	poolSize   int
	hmacKey    []byte
	logger     *slog.Logger
	reload     time.Duration
	maxString  int
	onLoad     func(Loaded)
	moduleDirs []string

	maxOutputs     int
	maxOutputBytes int
	maxStates      int
	stateWait      time.Duration
	memoryLimit    int64

	table Table

	observe func(time.Duration)

	// eagerData decodes ev.data whole and encodes it whole, sorted, as
	// before views (lazy.go): the tests compare both paths.
	eagerData bool
}

// An Option configures an Engine.
type Option func(*config)

// WithFunction names the function a script defines to transform events
// (default "transform"). A script that defines none is run RGW-style.
func WithFunction(name string) Option { return func(c *config) { c.function = name } }

// WithTimeout sets the deadline of one script call (LUA_TIMEOUT, default
// 100ms). A caller's context deadline that comes sooner wins.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithOnError sets the failure policy (LUA_ON_ERROR, default Reject).
func WithOnError(p Policy) Option { return func(c *config) { c.onError = p } }

// WithPoolSize sets how many idle states are kept per script (default, and
// 0: 2*GOMAXPROCS; at most WithMaxStates). More are created, up to
// WithMaxStates, when more calls run at once; they are closed instead of
// kept when the pool is full.
func WithPoolSize(n int) Option { return func(c *config) { c.poolSize = n } }

// WithHMACKey sets the secret of rgwnats.hmac_sha256 (LUA_HMAC_KEY). Scripts
// cannot read it. Without a key, hmac_sha256 fails rather than hash unkeyed.
func WithHMACKey(key []byte) Option {
	return func(c *config) { c.hmacKey = append([]byte(nil), key...) }
}

// WithLogger sets the logger of the engine and of the scripts' log helpers.
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithReload sets how often the script files are checked for changes
// (default 2s); 0 turns reloading off.
func WithReload(interval time.Duration) Option { return func(c *config) { c.reload = interval } }

// WithCallObserver has fn called with the duration of every script call
// (one per event and script, failed calls included), for a latency
// histogram. fn runs on the calling goroutine and must be quick.
func WithCallObserver(fn func(time.Duration)) Option { return func(c *config) { c.observe = fn } }

// Engine runs a script, or a chain of scripts, on events. It is safe for
// concurrent use.
type Engine struct {
	path  string
	cfg   config
	table Table
	chain atomic.Pointer[chain]
	stats counters

	reloadMu   sync.Mutex
	lastFailed string // fingerprint of the last version that did not compile

	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once

	guard     *memoryGuard // nil when off
	guardStop chan struct{}
	guardDone chan struct{}
}

// chain is one loaded version of the scripts, in the order they run.
type chain struct {
	scripts     []*script
	fingerprint string
}

// New loads the script at path: a file, or a directory whose *.lua files run
// in name order as a chain (each output event of one goes through the next).
// Every script is compiled and checked once here; ctx bounds only this
// loading. Close the Engine to stop watching the files.
func New(ctx context.Context, path string, opts ...Option) (*Engine, error) {
	cfg := config{
		function:  DefaultFunction,
		timeout:   DefaultTimeout,
		reload:    DefaultReloadInterval,
		maxString: DefaultMaxString,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.poolSize <= 0 {
		cfg.poolSize = 2 * runtime.GOMAXPROCS(0)
	}
	if cfg.timeout <= 0 {
		cfg.timeout = DefaultTimeout
	}
	if cfg.maxString <= 0 {
		cfg.maxString = DefaultMaxString
	}
	if cfg.logger == nil {
		cfg.logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	cfg.applyBoundDefaults()
	if !validName(cfg.function) {
		return nil, fmt.Errorf("lua: function name %q is not a Lua identifier", cfg.function)
	}
	if cfg.table == nil {
		cfg.table = NewMemoryTable()
	}
	e := &Engine{path: path, cfg: cfg, table: cfg.table, guard: newMemoryGuard(cfg.memoryLimit)}
	files, err := e.readFiles()
	if err != nil {
		return nil, err
	}
	c, err := e.load(ctx, files)
	if err != nil {
		return nil, err
	}
	e.chain.Store(c)
	e.loaded(c)
	if e.guard != nil {
		e.guardStop = make(chan struct{})
		e.guardDone = make(chan struct{})
		go func() {
			defer close(e.guardDone)
			e.guard.run(e.guardStop)
		}()
	}
	if cfg.reload > 0 {
		e.stop = make(chan struct{})
		e.done = make(chan struct{})
		go e.watch()
	}
	return e, nil
}

// Transform runs ev through the script chain and returns what to publish:
// nothing when the scripts dropped it, several outputs when they fanned it
// out. ev itself is never modified. On a script failure the policy decides:
// Reject returns a *ScriptError (wrapping ErrTimeout on a deadline), Drop and
// Passthrough return no error.
func (e *Engine) Transform(ctx context.Context, ev *event.Event) ([]Output, error) {
	return e.transform(ctx, ev, false)
}

// TransformChecked is Transform for an event whose data, when it is
// declared JSON, is valid JSON (it passed binding.Check, as every event
// ingress decodes does): scripts read it without checking it again, and
// what is not read is not even indexed. Data that is not valid JSON after
// all gives wrong values to the script, never a crash.
func (e *Engine) TransformChecked(ctx context.Context, ev *event.Event) ([]Output, error) {
	return e.transform(ctx, ev, true)
}

func (e *Engine) transform(ctx context.Context, ev *event.Event, checked bool) ([]Output, error) {
	if ev == nil {
		return nil, errors.New("lua: Transform of a nil event")
	}
	c := e.chain.Load()
	if c == nil {
		return nil, ErrClosed
	}
	in := [1]Output{{Event: ev, DataJSON: checked}}
	outs, err := c.scripts[0].apply(ctx, ev, in[:])
	for _, s := range c.scripts[1:] {
		if err != nil || len(outs) == 0 {
			break
		}
		outs, err = s.apply(ctx, ev, outs)
	}
	if err == nil && len(c.scripts) > 1 {
		err = e.checkChain(c, ev.ID(), outs)
	}
	if err != nil {
		return nil, err
	}
	return outs, nil
}

// apply runs the script on every event of ins, which came from the event
// origin; raw outputs pass unchanged.
func (s *script) apply(ctx context.Context, origin *event.Event, ins []Output) ([]Output, error) {
	outs := make([]Output, 0, len(ins))
	for i, in := range ins {
		if in.Event == nil {
			outs = append(outs, in)
			continue
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("lua: event %s: %w", in.Event.ID(), err)
		}
		var err error
		n := len(outs)
		e := s.eng
		if e.cfg.observe != nil {
			start := time.Now()
			outs, err = s.run(ctx, callSite{origin, i}, in, outs)
			e.cfg.observe(time.Since(start))
		} else {
			outs, err = s.run(ctx, callSite{origin, i}, in, outs)
		}
		if err == nil {
			e.stats.ok.Add(1)
			continue
		}
		outs = outs[:n]
		// Each finished call adds to exactly one of ok, failed and
		// timeouts, so that each of them only grows.
		if errors.Is(err, ErrTimeout) && !errors.Is(err, ErrMemory) {
			e.stats.timeouts.Add(1)
		} else {
			e.stats.failed.Add(1)
		}
		if errors.Is(err, ErrTableUnavailable) {
			// Not the script's failure, and dropping or passing the
			// event on would lose what it wrote: the sender retries.
			return nil, err
		}
		switch e.cfg.onError {
		case Drop:
			e.stats.drops.Add(1)
			e.cfg.logger.Warn("lua: event dropped after a script error", "script", s.name, "event_id", in.Event.ID(), "error", err)
		case Passthrough:
			e.stats.passthroughs.Add(1)
			e.cfg.logger.Warn("lua: event passed through untransformed after a script error", "script", s.name, "event_id", in.Event.ID(), "error", err)
			outs = append(outs, in)
		default:
			return nil, err
		}
	}
	return outs, nil
}

// Close stops watching the script files and releases the idle states. Calls
// under way finish; later calls return ErrClosed.
func (e *Engine) Close() error {
	e.closeOnce.Do(func() {
		if e.stop != nil {
			close(e.stop)
			<-e.done
		}
		e.reloadMu.Lock()
		defer e.reloadMu.Unlock()
		if c := e.chain.Swap(nil); c != nil {
			c.retire()
		}
		if e.guardStop != nil {
			close(e.guardStop)
			<-e.guardDone
		}
	})
	return nil
}

// Scripts returns the file names of the loaded chain, in the order they run.
func (e *Engine) Scripts() []string {
	c := e.chain.Load()
	if c == nil {
		return nil
	}
	names := make([]string, len(c.scripts))
	for i, s := range c.scripts {
		names[i] = s.name
	}
	return names
}

// Stats counts what the engine did since New, and says what its states do
// now.
type Stats struct {
	Calls        uint64 // script calls started (one per event and script)
	OK           uint64 // calls that returned normally
	Errors       uint64 // calls that failed, timeouts included
	Timeouts     uint64 // calls stopped by their deadline
	Drops        uint64 // events dropped by the Drop policy after an error
	Passthroughs uint64 // events passed through by the Passthrough policy
	Filtered     uint64 // events a script chose to publish nothing for
	Reloads      uint64 // new versions swapped in
	ReloadErrors uint64 // new versions that failed to load (the old one kept serving)
	States       uint64 // Lua states created
	Limits       uint64 // calls that passed LUA_MAX_OUTPUTS or LUA_MAX_OUTPUT_BYTES
	Busy         uint64 // calls that found every state busy (ErrBusy)
	MemoryStops  uint64 // calls stopped by the memory guard (ErrMemory)

	Live uint64 // states running a call now
	Idle uint64 // states of the serving version kept ready now
}

type counters struct {
	calls, ok, failed, timeouts, drops, passthroughs, filtered atomic.Uint64
	reloads, reloadErrors, states                              atomic.Uint64
	limits, busy, memoryStops                                  atomic.Uint64
	live                                                       atomic.Int64
}

// Stats returns a snapshot of the counters.
func (e *Engine) Stats() Stats {
	s := &e.stats
	failed, timeouts := s.failed.Load(), s.timeouts.Load()
	st := Stats{
		Calls: s.calls.Load(), OK: s.ok.Load(), Errors: failed + timeouts, Timeouts: timeouts,
		Drops: s.drops.Load(), Passthroughs: s.passthroughs.Load(), Filtered: s.filtered.Load(),
		Reloads: s.reloads.Load(), ReloadErrors: s.reloadErrors.Load(), States: s.states.Load(),
		Limits: s.limits.Load(), Busy: s.busy.Load(), MemoryStops: s.memoryStops.Load(),
		Live: uint64(max(s.live.Load(), 0)),
	}
	if c := e.chain.Load(); c != nil {
		for _, sc := range c.scripts {
			st.Idle += uint64(len(sc.idle))
		}
	}
	return st
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}
