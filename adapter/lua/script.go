package lua

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/rgw-nats/rgw-nats/adapter/lua/lua53"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/ast"
	"github.com/yuin/gopher-lua/parse"
)

// script is one compiled version of one script file with its pool of states.
type script struct {
	eng      *Engine
	name     string
	proto    *glua.FunctionProto
	rgwStyle bool       // no transform function: the main chunk runs once per event
	subjects []string   // literal subjects (staticSubjects)
	mods     *moduleSet // the user's modules of this version

	idle    chan *state
	slots   chan struct{} // one token per live state: at most maxStates
	retired atomic.Bool
}

// compileChunk translates Lua 5.3 source (lua53.Translate) and compiles it.
func compileChunk(name string, src []byte) ([]ast.Stmt, *glua.FunctionProto, error) {
	src, err := lua53.Translate(src)
	if err != nil {
		return nil, nil, fmt.Errorf("lua: %s: %w", name, err)
	}
	chunk, err := parse.Parse(bytes.NewReader(src), name)
	if err != nil {
		return nil, nil, fmt.Errorf("lua: %s: %w", name, err)
	}
	proto, err := glua.Compile(chunk, name)
	if err != nil {
		return nil, nil, fmt.Errorf("lua: %s: %w", name, err)
	}
	keysFromConstants(proto)
	return chunk, proto, nil
}

// keysFromConstants turns gopher-lua's instructions for a field named in
// the source (a.b, a.b = v, {b = v}) into its general ones for a[k], with
// the same constant key. Both do the same, but the former hand an __index
// or __newindex function (every member of a view, of ev, of ev.ext) the
// name boxed anew each time: one allocation per field access, a third of
// what a call of anonymize.lua allocated. The general ones pass the boxed
// constant of the function's constant table.
func keysFromConstants(p *glua.FunctionProto) {
	for i, inst := range p.Code {
		switch int(inst >> 26) {
		case glua.OP_GETTABLEKS:
			p.Code[i] = inst&0x3ffffff | uint32(glua.OP_GETTABLE)<<26
		case glua.OP_SETTABLEKS:
			p.Code[i] = inst&0x3ffffff | uint32(glua.OP_SETTABLE)<<26
		}
	}
	for _, f := range p.FunctionPrototypes {
		keysFromConstants(f)
	}
}

func compileScript(e *Engine, f scriptFile) (*script, error) {
	chunk, proto, err := compileChunk(f.name, f.src)
	if err != nil {
		return nil, err
	}
	rgwStyle, err := style(chunk, e.cfg.function)
	if err != nil {
		return nil, fmt.Errorf("lua: %s: %w", f.name, err)
	}
	return &script{
		eng:      e,
		name:     f.name,
		proto:    proto,
		rgwStyle: rgwStyle,
		subjects: staticSubjects(chunk),
		idle:     make(chan *state, e.cfg.poolSize),
		slots:    make(chan struct{}, e.cfg.maxStates),
	}, nil
}

// style tells a transform script (its top level assigns the global function
// fn) from an RGW-style one (top-level code that publishes by itself).
func style(chunk []ast.Stmt, fn string) (rgwStyle bool, err error) {
	for _, st := range chunk {
		switch st := st.(type) {
		case *ast.FuncDefStmt:
			if id, ok := st.Name.Func.(*ast.IdentExpr); ok && id.Value == fn && st.Name.Receiver == nil {
				return false, nil
			}
		case *ast.AssignStmt:
			for _, lhs := range st.Lhs {
				if id, ok := lhs.(*ast.IdentExpr); ok && id.Value == fn {
					return false, nil
				}
			}
		case *ast.LocalAssignStmt:
			for _, name := range st.Names {
				if name == fn {
					return false, fmt.Errorf("line %d: %s is local; declare it global (function %s(ev) ... end) so that it can be called", st.Line(), fn, fn)
				}
			}
		}
	}
	return true, nil
}

// put keeps a healthy state for the next call, unless the pool is full or
// this version was replaced.
func (s *script) put(st *state) {
	if !s.retired.Load() {
		select {
		case s.idle <- st:
			return
		default:
		}
	}
	st.close()
}

func (s *script) retire() {
	s.retired.Store(true)
	for {
		select {
		case st := <-s.idle:
			st.close()
		default:
			return
		}
	}
}

// run calls the script on one event and appends what it produced to outs.
// A state whose call failed in any way is closed, never reused.
func (s *script) run(ctx context.Context, site callSite, in Output, outs []Output) ([]Output, error) {
	s.eng.stats.calls.Add(1)
	st, err := s.acquire(ctx, in.Event.ID())
	if err != nil {
		if se, ok := err.(*ScriptError); ok {
			se.EventID = in.Event.ID()
		}
		if errors.Is(err, ErrBusy) {
			s.eng.stats.busy.Add(1)
		}
		return outs, err
	}
	live := &s.eng.stats.live
	live.Add(1)
	outs, err = st.call(ctx, site, in, outs)
	live.Add(-1)
	if err != nil || st.deadline.expired.Load() {
		// Also a state the memory guard stopped just as its call ended:
		// its context is done for good.
		st.close()
		return outs, err
	}
	s.put(st)
	return outs, nil
}

// scriptError turns an error of a protected call into a ScriptError, taking
// the position gopher-lua put in front of the message.
func (s *script) scriptError(err error, eventID string) *ScriptError {
	msg := err.Error()
	if ae, ok := err.(*glua.ApiError); ok {
		msg = ae.Object.String()
	}
	se := &ScriptError{Script: s.name, EventID: eventID}
	if rest, ok := strings.CutPrefix(msg, s.name+":"); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				se.Line = n
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	se.Msg = msg
	return se
}
