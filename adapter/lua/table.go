package lua

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"sync"

	"github.com/cloudevents/sdk-go/v2/event"

	glua "github.com/yuin/gopher-lua"
)

// RGW caps its shared table at MaxTableEntries entries of at most
// MaxTableEntrySize bytes of key and value; every Table keeps the same
// limits, with the same errors.
const (
	MaxTableEntries   = 100_000
	MaxTableEntrySize = 1024
)

var (
	// ErrTableFull is wrapped by the error of a write that would add an
	// entry to a table holding MaxTableEntries.
	ErrTableFull = errors.New("lua: the RGW table is full")
	// ErrTableEntry is wrapped by the error of a write of a value that is
	// not a string, number or boolean, or whose key and value exceed
	// MaxTableEntrySize.
	ErrTableEntry = errors.New("lua: RGW table entry refused")
	// ErrTableNotNumber is wrapped by the error of an increment or
	// decrement of a key that holds something other than a number.
	ErrTableNotNumber = errors.New("lua: RGW table entry is not a number")
	// ErrTableUnavailable is wrapped by the error of a table operation that
	// the store could not carry out now (not loaded yet, unreachable, too
	// contended): retrying the event can succeed. A script call that met it
	// fails even when the script caught the error, so that a write is never
	// lost silently, and it fails whatever the failure policy says.
	ErrTableUnavailable = errors.New("lua: the RGW table is unavailable")
)

// Table is the store behind the RGW global: one per Engine, shared by every
// state and every script version, so it outlives calls and reloads. Values
// are strings, float64 numbers and booleans. Implementations are safe for
// concurrent use, check their writes with CheckTableSet and CheckTableAdd,
// and return errors wrapping the ErrTable sentinels.
//
// The default is a MemoryTable; adapter/kvtable keeps one in a NATS KV
// bucket, shared across processes.
type Table interface {
	// Get returns the value of key, nil when there is none. It must not
	// wait on the network: a script may read the table many times per event.
	Get(key string) (any, error)
	// Set stores value (a string, float64 or bool) under key.
	Set(ctx context.Context, key string, value any) error
	// Delete removes key; deleting a missing key is no error.
	Delete(ctx context.Context, key string) error
	// Add adds delta to the number under key (a missing key counts as 0)
	// atomically and returns the new value.
	Add(ctx context.Context, key string, delta float64) (float64, error)
	// Snapshot returns a copy of every entry (pairs(RGW) iterates it).
	Snapshot() (map[string]any, error)
}

// TableError is the error of one operation on one key of the table.
type TableError struct {
	Key    string
	Err    error  // one of the ErrTable sentinels
	Reason string // what went wrong, for the message
	// Cause is the store's own error, if any. It is in the message but not
	// in the chain: the sentinel classifies the failure (a store's deadline
	// is not a script's timeout).
	Cause error
}

func (e *TableError) Error() string {
	k := e.Key
	if len(k) > 64 {
		k = k[:64] + "..."
	}
	if e.Cause != nil {
		return fmt.Sprintf("RGW[%q]: %s: %v", k, e.Reason, e.Cause)
	}
	return fmt.Sprintf("RGW[%q]: %s", k, e.Reason)
}

// Unwrap returns the sentinel.
func (e *TableError) Unwrap() error { return e.Err }

// TableEntrySize is what an entry counts against MaxTableEntrySize: the
// key, plus the bytes of a string, 8 for a number, 1 for a boolean.
func TableEntrySize(key string, value any) int {
	switch v := value.(type) {
	case string:
		return len(key) + len(v)
	case bool:
		return len(key) + 1
	}
	return len(key) + 8
}

// CheckTableSet reports whether storing value under key is within RGW's
// limits, in a table of n entries that holds key already when exists.
func CheckTableSet(key string, value any, n int, exists bool) error {
	switch value.(type) {
	case string, float64, bool:
	default:
		return valueTypeError(key, fmt.Sprintf("%T", value))
	}
	if size := TableEntrySize(key, value); size > MaxTableEntrySize {
		return &TableError{Key: key, Err: ErrTableEntry,
			Reason: fmt.Sprintf("key and value of %d bytes exceed %d bytes", size, MaxTableEntrySize)}
	}
	if !exists && n >= MaxTableEntries {
		return &TableError{Key: key, Err: ErrTableFull,
			Reason: fmt.Sprintf("the table is full (%d entries)", MaxTableEntries)}
	}
	return nil
}

// CheckTableAdd reports whether adding to key, which holds cur (nil when
// missing), is possible in a table of n entries.
func CheckTableAdd(key string, cur any, n int) error {
	if cur != nil {
		if _, ok := cur.(float64); !ok {
			return &TableError{Key: key, Err: ErrTableNotNumber,
				Reason: fmt.Sprintf("holds a %s, not a number", luaTypeName(cur))}
		}
	}
	return CheckTableSet(key, 0.0, n, cur != nil)
}

func valueTypeError(key, typeName string) error {
	return &TableError{Key: key, Err: ErrTableEntry,
		Reason: "values are strings, numbers or booleans, not a " + typeName}
}

func luaTypeName(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case float64:
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// MemoryTable is a Table in this process's memory, as RGW keeps it: it
// lives as long as the process. The zero value is an empty table.
type MemoryTable struct {
	mu sync.RWMutex
	m  map[string]any
}

// NewMemoryTable returns an empty MemoryTable.
func NewMemoryTable() *MemoryTable { return &MemoryTable{} }

// Get returns the value of key, or nil.
func (t *MemoryTable) Get(key string) (any, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return t.m[key], nil
}

// Set stores value under key.
func (t *MemoryTable) Set(_ context.Context, key string, value any) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, exists := t.m[key]
	if err := CheckTableSet(key, value, len(t.m), exists); err != nil {
		return err
	}
	if t.m == nil {
		t.m = make(map[string]any)
	}
	t.m[key] = value
	return nil
}

// Delete removes key.
func (t *MemoryTable) Delete(_ context.Context, key string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.m, key)
	return nil
}

// Add adds delta to the number under key and returns the sum.
func (t *MemoryTable) Add(_ context.Context, key string, delta float64) (float64, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	cur := t.m[key]
	if err := CheckTableAdd(key, cur, len(t.m)); err != nil {
		return 0, err
	}
	n, _ := cur.(float64)
	n += delta
	if t.m == nil {
		t.m = make(map[string]any)
	}
	t.m[key] = n
	return n, nil
}

// Snapshot returns a copy of the entries.
func (t *MemoryTable) Snapshot() (map[string]any, error) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	if t.m == nil {
		return map[string]any{}, nil
	}
	return maps.Clone(t.m), nil
}

// The Lua side of the table.

func toLua(v any) glua.LValue {
	switch v := v.(type) {
	case string:
		return glua.LString(v)
	case float64:
		return glua.LNumber(v)
	case bool:
		return glua.LBool(v)
	}
	return glua.LNil
}

// tableTrace remembers the table errors of the running call, or of the main
// chunk while a state is created.
type tableTrace struct {
	last error // the last error a table operation raised
	lost error // the first operation the store could not carry out
}

func (tr *tableTrace) reset() { *tr = tableTrace{} }

// attach names the table error behind a failed call: a lost write always
// (the script may have caught it and failed later), else the error the
// script failed with, when it came from the table. A call that lost a write
// and then hit its deadline spent its time waiting on the store: it is
// reported as the store's failure, not as a timeout of the script (which
// would count towards poison detection).
func (tr *tableTrace) attach(se *ScriptError) *ScriptError {
	switch {
	case tr.lost != nil:
		se.Err = tr.lost
		if se.Timeout {
			se.Timeout = false
			se.Msg = tr.lost.Error()
		}
	case tr.last != nil && strings.HasSuffix(se.Msg, tr.last.Error()):
		se.Err = tr.last
	}
	return se
}

// attachTo is attach for an error that may be a *ScriptError.
func (tr *tableTrace) attachTo(err error) error {
	if se, ok := err.(*ScriptError); ok {
		return tr.attach(se)
	}
	return err
}

// failed is the error of a call that succeeded although the table could
// not carry out one of its operations (the script caught the error).
func (tr *tableTrace) failed(script, eventID string) error {
	if tr.lost == nil {
		return nil
	}
	return &ScriptError{Script: script, EventID: eventID, Err: tr.lost,
		Msg: "the script caught a failed RGW table operation: " + tr.lost.Error()}
}

// tableCtx bounds a table operation of a script by the call's deadline, or
// by the timeout while the main chunk runs.
func (st *state) tableCtx() (context.Context, context.CancelFunc) {
	if c := st.cur; c != nil {
		return context.WithDeadline(c.ctx, c.deadline)
	}
	return context.WithTimeout(context.Background(), st.s.eng.cfg.timeout)
}

// tableRaise raises err in the script and remembers it.
func (st *state) tableRaise(L *glua.LState, err error) {
	st.tables.last = err
	if errors.Is(err, ErrTableUnavailable) && st.tables.lost == nil {
		st.tables.lost = err
	}
	L.RaiseError("%s", err.Error())
}

func (st *state) tableGet(L *glua.LState, key string) glua.LValue {
	v, err := st.s.eng.table.Get(key)
	if err != nil {
		st.tableRaise(L, err)
	}
	return toLua(v)
}

// callSite is where a script call stands in a Transform: the event handed
// to the engine, and the place of the call's input among the inputs of its
// script (a chain's later scripts run on each output of the one before).
type callSite struct {
	origin *event.Event
	ord    int
}

type writeIDKey struct{}

// WriteID returns the identity of the table write made with ctx, "" for a
// write made outside a script call on an event (a script's main chunk). It
// is the same for the same write (the same key, the same how-many-th write
// of the key) of the same script on the same event, in any process: a
// Table shared by several processes uses it to apply a write once when a
// sender hands one event to two of them (RGW resending to another replica
// of the Service), where the engine alone would run the script twice.
func WriteID(ctx context.Context) string {
	id, _ := ctx.Value(writeIDKey{}).(string)
	return id
}

// writeCtx is ctx carrying the identity of the call's next write of key.
func (st *state) writeCtx(ctx context.Context, key string) context.Context {
	c := st.cur
	if c == nil || c.site.origin == nil {
		return ctx
	}
	if c.writes == nil {
		c.writes = make(map[string]int)
	}
	c.writes[key]++
	h := sha256.New()
	for _, part := range []string{c.site.origin.Source(), c.site.origin.ID(), st.s.name,
		strconv.Itoa(c.site.ord), key, strconv.Itoa(c.writes[key])} {
		// Each part with its length: no two lists of parts hash alike.
		h.Write(strconv.AppendInt(nil, int64(len(part)), 10))
		h.Write([]byte{0})
		h.Write([]byte(part))
	}
	return context.WithValue(ctx, writeIDKey{}, "rgw-table-"+hex.EncodeToString(h.Sum(nil)[:16]))
}

// tableSet is RGW[key] = v; nil deletes.
func (st *state) tableSet(L *glua.LState, key string, v glua.LValue) {
	var value any
	switch v := v.(type) {
	case *glua.LNilType:
	case glua.LString:
		value = string(v)
	case glua.LNumber:
		value = float64(v)
	case glua.LBool:
		value = bool(v)
	default:
		st.tableRaise(L, valueTypeError(key, v.Type().String()))
	}
	ctx, cancel := st.tableCtx()
	defer cancel()
	ctx = st.writeCtx(ctx, key)
	var err error
	if value == nil {
		err = st.s.eng.table.Delete(ctx, key)
	} else {
		err = st.s.eng.table.Set(ctx, key, value)
	}
	if err != nil {
		st.tableRaise(L, err)
	}
}

func (st *state) tableAdd(L *glua.LState, key string, delta float64) glua.LValue {
	ctx, cancel := st.tableCtx()
	defer cancel()
	n, err := st.s.eng.table.Add(st.writeCtx(ctx, key), key, delta)
	if err != nil {
		st.tableRaise(L, err)
	}
	return glua.LNumber(n)
}

func (st *state) tableSnapshot(L *glua.LState) map[string]any {
	m, err := st.s.eng.table.Snapshot()
	if err != nil {
		st.tableRaise(L, err)
	}
	return m
}

// WithTable sets the store behind the RGW global (default: a MemoryTable of
// the Engine's own). The Engine does not close it.
func WithTable(t Table) Option { return func(c *config) { c.table = t } }
