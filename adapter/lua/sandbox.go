package lua

import (
	"iter"
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// maxResults bounds how many values one built-in may return (unpack,
// string.byte), as Lua's own stack limit does.
const maxResults = 8000

// protectedMT is what getmetatable returns for every table and userdata the
// host owns, so that scripts cannot reach or change their metatables.
const protectedMT = glua.LString("protected")

// sandbox opens the safe part of the standard library, replaces what could
// reach the host or run unbounded inside one built-in call, and installs the
// event metatables, the helper modules and the RGW globals.
//
// Left out: io, os beyond time/date/clock/difftime, debug, coroutine,
// package, load, loadstring, loadfile, dofile, module, getfenv, setfenv,
// newproxy, string.dump. require knows only the host's modules.
func (st *state) sandbox() error {
	L := st.L
	for _, lib := range []struct {
		name string
		open glua.LGFunction
	}{
		{glua.BaseLibName, glua.OpenBase},
		{glua.TabLibName, glua.OpenTable},
		{glua.StringLibName, glua.OpenString},
		{glua.MathLibName, glua.OpenMath},
		{glua.OsLibName, glua.OpenOs},
	} {
		L.Push(L.NewFunction(lib.open))
		L.Push(glua.LString(lib.name))
		if err := L.PCall(1, 0, nil); err != nil {
			return err
		}
	}
	G := L.Get(glua.GlobalsIndex).(*glua.LTable)
	st.globals = G
	st.open53()
	// The registry's copies of the opened modules are out of the scripts'
	// reach (no debug, no package), but drop them anyway.
	L.Get(glua.RegistryIndex).(*glua.LTable).RawSetString("_LOADED", L.NewTable())

	// Removed functions stay as stubs that say why they fail.
	for _, name := range []string{
		"dofile", "load", "loadfile", "loadstring", "module", "getfenv", "setfenv", "newproxy",
	} {
		G.RawSetString(name, st.unavailable(name))
	}
	G.RawSetString("_printregs", glua.LNil)
	G.RawSetString("_GOPHER_LUA_VERSION", glua.LNil)
	next := G.RawGetString("next")
	G.RawSetString("pairs", L.NewFunction(func(L *glua.LState) int {
		v := L.CheckAny(1)
		if mp := L.GetMetaField(v, "__pairs"); mp != glua.LNil {
			L.Push(mp)
			L.Push(v)
			L.Call(1, 3)
			return 3
		}
		L.CheckTable(1)
		L.Push(next)
		L.Push(v)
		L.Push(glua.LNil)
		return 3
	}))
	rawset := G.RawGetString("rawset").(*glua.LFunction).GFunction
	G.RawSetString("rawset", L.NewFunction(func(L *glua.LState) int {
		checkWritable(L, L.CheckTable(1), "rawset")
		st.fillView(L, 1)
		return rawset(L)
	}))
	// What reads or writes a table's fields raw sees a view of event data
	// (lazy.go) whole, and a view's metatable is nobody's business.
	for _, name := range []string{"next", "rawget"} {
		orig := G.RawGetString(name).(*glua.LFunction).GFunction
		G.RawSetString(name, L.NewFunction(func(L *glua.LState) int {
			st.fillView(L, 1)
			return orig(L)
		}))
	}
	getmetatable := G.RawGetString("getmetatable").(*glua.LFunction).GFunction
	G.RawSetString("getmetatable", L.NewFunction(func(L *glua.LState) int {
		if t, ok := L.Get(1).(*glua.LTable); ok && t.Metatable == st.json.views.mt {
			L.Push(glua.LNil)
			return 1
		}
		return getmetatable(L)
	}))
	setmetatable := G.RawGetString("setmetatable").(*glua.LFunction).GFunction
	G.RawSetString("setmetatable", L.NewFunction(func(L *glua.LState) int {
		if t, ok := L.Get(1).(*glua.LTable); ok && t.Metatable == st.json.views.mt {
			st.unview(L, t)
		}
		return setmetatable(L)
	}))
	// rawlen (Lua 5.2 and later): a table's or a string's length without
	// __len.
	G.RawSetString("rawlen", L.NewFunction(func(L *glua.LState) int {
		switch v := L.Get(1).(type) {
		case *glua.LTable:
			st.fillView(L, 1)
			L.Push(glua.LNumber(v.Len()))
		case glua.LString:
			L.Push(glua.LNumber(len(v)))
		default:
			L.ArgError(1, "table or string expected")
		}
		return 1
	}))
	G.RawSetString("collectgarbage", L.NewFunction(func(L *glua.LState) int {
		// A script must not be able to stop the whole process for a GC.
		L.Push(glua.LNumber(0))
		return 1
	}))
	G.RawSetString("print", L.NewFunction(st.print))
	G.RawSetString("unpack", L.NewFunction(unpack))
	G.RawSetString("require", L.NewFunction(st.require))

	// string: guarded rep, format and gsub, no dump; strings' metatable is
	// protected and indexes the library itself.
	str := G.RawGetString("string").(*glua.LTable)
	str.RawSetString("dump", st.unavailable("string.dump"))
	str.RawSetString("__index", glua.LNil)
	str.RawSetString("rep", L.NewFunction(st.strRep))
	format := str.RawGetString("format").(*glua.LFunction).GFunction
	str.RawSetString("format", L.NewFunction(func(L *glua.LState) int {
		f := L.CheckString(1)
		checkFormat(L, f)
		st.boundFormat(L, f)
		return format(L)
	}))
	// Lua's case mapping is byte by byte, ASCII letters only (the C
	// locale); gopher-lua's maps Unicode, which changes lengths and turns
	// bytes that are not UTF-8 into U+FFFD.
	str.RawSetString("lower", L.NewFunction(func(L *glua.LState) int {
		L.Push(glua.LString(mapASCII(L.CheckString(1), 'A', 'Z')))
		return 1
	}))
	str.RawSetString("upper", L.NewFunction(func(L *glua.LState) int {
		L.Push(glua.LString(mapASCII(L.CheckString(1), 'a', 'z')))
		return 1
	}))
	// string.char refuses what is not a byte (gopher-lua's truncated it).
	str.RawSetString("char", L.NewFunction(func(L *glua.LState) int {
		n := L.GetTop()
		b := make([]byte, n)
		for i := 1; i <= n; i++ {
			c := checkInteger(L, i)
			if uint64(c) > 255 {
				L.ArgError(i, "value out of range")
			}
			b[i-1] = byte(c)
		}
		L.Push(glua.LString(b))
		return 1
	}))
	// Pattern matching that checks the deadline (see pattern.go).
	str.RawSetString("find", L.NewFunction(st.strFind))
	str.RawSetString("match", L.NewFunction(st.strMatch))
	str.RawSetString("gmatch", L.NewFunction(st.strGmatch))
	str.RawSetString("gfind", L.NewFunction(st.strGmatch))
	str.RawSetString("gsub", L.NewFunction(st.strGsub))
	strByte := str.RawGetString("byte").(*glua.LFunction).GFunction
	str.RawSetString("byte", L.NewFunction(func(L *glua.LState) int {
		n := len(L.CheckString(1))
		abs := func(k int) int {
			if k < 0 {
				return n + k + 1
			}
			return k
		}
		i := abs(L.OptInt(2, 1))
		if j := min(abs(L.OptInt(3, i)), n); j-max(i, 1) >= maxResults {
			L.RaiseError("string.byte: string slice too long")
		}
		return strByte(L)
	}))
	strMT := L.NewTable()
	strMT.RawSetString("__index", str)
	strMT.RawSetString("__metatable", protectedMT)
	for event, op := range stringArithEvents {
		strMT.RawSetString(event, L.NewFunction(arith(event, op)))
	}
	L.SetMetatable(glua.LString(""), strMT)
	G.RawSetString("string", st.readOnly("string", str))

	// table: concat bounded; the functions that write raw refuse the
	// host's read-only tables.
	tbl := G.RawGetString("table").(*glua.LTable)
	tbl.RawSetString("concat", L.NewFunction(st.tableConcat))
	tbl.RawSetString("insert", L.NewFunction(tableInsert))
	tbl.RawSetString("remove", L.NewFunction(tableRemove))
	sort := tbl.RawGetString("sort").(*glua.LFunction).GFunction
	tbl.RawSetString("sort", L.NewFunction(func(L *glua.LState) int {
		checkWritable(L, L.CheckTable(1), "table.sort")
		return sort(L)
	}))
	G.RawSetString("table", st.readOnly("table", tbl))
	G.RawSetString("math", st.readOnly("math", G.RawGetString("math").(*glua.LTable)))

	osLib := G.RawGetString("os").(*glua.LTable)
	safeOS := L.NewTable()
	for _, name := range []string{"time", "date", "clock", "difftime"} {
		safeOS.RawSetString(name, osLib.RawGetString(name))
	}
	for _, name := range []string{"execute", "exit", "getenv", "remove", "rename", "setenv", "setlocale", "tmpname"} {
		safeOS.RawSetString(name, st.unavailable("os."+name))
	}
	G.RawSetString("os", st.readOnly("os", safeOS))

	st.null = L.NewUserData()
	st.null.Metatable = st.protectedMeta(map[string]glua.LValue{
		"__tostring": L.NewFunction(func(L *glua.LState) int { L.Push(glua.LString("null")); return 1 }),
	})
	st.arrayMT = st.protectedMeta(nil)
	st.json = jsonCodec{L: L, arrayMT: st.arrayMT, null: st.null}
	st.initViews()

	st.initOps53()
	st.initEvents()
	st.initModules()
	st.initRGW()

	// Request is built for the current event on first read, in both styles:
	// a read that misses the globals lands here.
	G.Metatable = st.protectedMeta(map[string]glua.LValue{
		"__index": L.NewFunction(func(L *glua.LState) int {
			if L.CheckAny(2) == glua.LString("Request") {
				L.Push(st.request())
				return 1
			}
			return 0
		}),
	})
	st.envMT = st.protectedMeta(map[string]glua.LValue{"__index": G})
	st.boundResults()
	st.guardResults()
	st.integerArguments()
	return nil
}

func (st *state) unavailable(name string) *glua.LFunction {
	return st.L.NewFunction(func(L *glua.LState) int {
		L.RaiseError("%s is not available in the rgw-nats sandbox", name)
		return 0
	})
}

// protectedMeta builds a metatable that getmetatable cannot reveal and
// setmetatable cannot replace.
func (st *state) protectedMeta(fields map[string]glua.LValue) *glua.LTable {
	mt := st.L.NewTable()
	for k, v := range fields {
		mt.RawSetString(k, v)
	}
	mt.RawSetString("__metatable", protectedMT)
	return mt
}

// readOnly wraps a library table in an empty proxy whose reads fall through
// and whose writes fail, so that no call can change what the next one sees.
func (st *state) readOnly(name string, inner *glua.LTable) *glua.LTable {
	L := st.L
	proxy := L.NewTable()
	proxy.Metatable = st.protectedMeta(map[string]glua.LValue{
		"__index": inner,
		"__newindex": L.NewFunction(func(L *glua.LState) int {
			L.RaiseError("%s is read-only", name)
			return 0
		}),
		"__pairs": L.NewFunction(func(L *glua.LState) int {
			L.Push(st.globals.RawGetString("next"))
			L.Push(inner)
			L.Push(glua.LNil)
			return 3
		}),
		"__readonly": glua.LTrue,
	})
	return proxy
}

func checkWritable(L *glua.LState, t *glua.LTable, fn string) {
	if mt, ok := t.Metatable.(*glua.LTable); ok && mt.RawGetString("__readonly") == glua.LTrue {
		L.RaiseError("%s: the table is read-only", fn)
	}
}

func (st *state) require(L *glua.LState) int {
	name := L.CheckString(1)
	if st.requireModule(L, name) {
		return 1
	}
	if m, ok := st.modules[name]; ok {
		L.Push(m)
		return 1
	}
	st.moduleMissing(L, name)
	return 0
}

func (st *state) print(L *glua.LState) int {
	var b strings.Builder
	for i := 1; i <= L.GetTop(); i++ {
		if i > 1 {
			b.WriteByte('\t')
		}
		b.WriteString(toString(L, L.Get(i)))
	}
	st.log(L, levelInfo, b.String(), nil)
	return 0
}

func (st *state) maxString() int { return st.s.eng.cfg.maxString }

func (st *state) tooLong(L *glua.LState, fn string, n int) {
	st.limitHit = true
	L.RaiseError("%s: result of %d bytes or more exceeds the limit of %d bytes", fn, n, st.maxString())
}

func (st *state) strRep(L *glua.LState) int {
	s := L.CheckString(1)
	n := L.CheckInt(2)
	sep := "" // Lua 5.3; a number is its string, as for s
	if L.Get(3) != glua.LNil {
		sep = L.CheckString(3)
	}
	if n <= 0 || s == "" && sep == "" {
		L.Push(glua.LString(""))
		return 1
	}
	if n > st.maxString()/(len(s)+len(sep)) {
		st.tooLong(L, "string.rep", (len(s)+len(sep))*min(n, st.maxString()))
	}
	if sep != "" {
		s += sep
		L.Push(glua.LString(strings.Repeat(s, n)[:len(s)*n-len(sep)]))
		return 1
	}
	L.Push(glua.LString(strings.Repeat(s, n)))
	return 1
}

// formatDirective is one conversion of a string.format format: how many
// digits its width and precision have (prec -1: no '.'), the verb that ends
// it (0 when the format ends first) and the argument it takes (1 for the
// first directive: the value after the format).
type formatDirective struct {
	arg, width, prec int
	verb             byte
}

// formatDirectives yields the directives of a string.format format in
// order ("%%" is none), read as Lua reads them: flags ("-+ #0"), width
// digits, an optional '.' and precision digits, then the verb. The three
// walkers of a format (checkFormat, formatArguments, formatSize) read
// it through this one, so they cannot disagree on where a directive ends
// or which argument it takes.
func formatDirectives(f string) iter.Seq[formatDirective] {
	return func(yield func(formatDirective) bool) {
		arg := 0
		for i := 0; i < len(f); i++ {
			if f[i] != '%' {
				continue
			}
			if i++; i < len(f) && f[i] == '%' {
				continue
			}
			arg++
			d := formatDirective{arg: arg, prec: -1}
			for i < len(f) && strings.IndexByte("-+ #0", f[i]) >= 0 {
				i++
			}
			for ; i < len(f) && isDigit(f[i]); i++ {
				d.width++
			}
			if i < len(f) && f[i] == '.' {
				for i, d.prec = i+1, 0; i < len(f) && isDigit(f[i]); i++ {
					d.prec++
				}
			}
			if i < len(f) {
				d.verb = f[i]
			}
			if !yield(d) {
				return
			}
		}
	}
}

// checkFormat refuses what Lua refuses and what could make fmt build a
// huge string: widths and precisions of more than two digits, '*' widths,
// Go's explicit argument indexes, and a directive that a flag or a '.'
// ends ("%5-d", "%1.2.3d": Lua 5.3 calls them invalid conversions; fmt
// would print the argument into an error text).
func checkFormat(L *glua.LState, f string) {
	for d := range formatDirectives(f) {
		if d.width > 2 || d.prec > 2 {
			L.RaiseError("string.format: invalid format (width or precision too long)")
		}
		if d.verb != 0 && strings.IndexByte("*[-+ #.", d.verb) >= 0 {
			L.RaiseError("string.format: invalid format %q", f)
		}
	}
}

func (st *state) tableConcat(L *glua.LState) int {
	t := L.CheckTable(1)
	sep := L.OptString(2, "")
	i := L.OptInt(3, 1)
	j := L.OptInt(4, t.Len())
	limit := st.maxString()
	var b []byte
	for k := i; k <= j; k++ {
		var piece string
		switch v := t.RawGetInt(k).(type) {
		case glua.LString:
			piece = string(v)
		case glua.LNumber:
			piece = numberText(v)
		default:
			L.RaiseError("table.concat: invalid value (at index %d) in table for concat", k)
		}
		gap := ""
		if k > i {
			gap = sep
		}
		// Checked before the append, which may double the buffer.
		if n := len(b) + len(gap) + len(piece); n > limit {
			st.tooLong(L, "table.concat", n)
		}
		b = append(append(b, gap...), piece...)
	}
	L.Push(glua.LString(b))
	return 1
}

// mapASCII returns s with the bytes from lo to hi moved to the other case
// (ASCII letters differ by 0x20), without a copy when there is none.
func mapASCII(s string, lo, hi byte) string {
	i := 0
	for i < len(s) && (s[i] < lo || s[i] > hi) {
		i++
	}
	if i == len(s) {
		return s
	}
	b := []byte(s)
	for ; i < len(b); i++ {
		if c := b[i]; c >= lo && c <= hi {
			b[i] = c ^ 0x20
		}
	}
	return string(b)
}

// tableInsert is Lua 5.3's table.insert: a position from 1 to #t+1, and two
// or three arguments (gopher-lua's took any position and any number).
func tableInsert(L *glua.LState) int {
	t := L.CheckTable(1)
	checkWritable(L, t, "table.insert")
	e := t.Len() + 1 // the first empty element
	pos := e
	switch L.GetTop() {
	case 2:
	case 3:
		p := checkInteger(L, 2)
		if p < 1 || p > int64(e) {
			L.ArgError(2, "position out of bounds")
		}
		pos = int(p)
		for i := e; i > pos; i-- {
			t.RawSetInt(i, t.RawGetInt(i-1))
		}
	default:
		L.RaiseError("wrong number of arguments to 'insert'")
	}
	t.RawSetInt(pos, L.Get(L.GetTop()))
	return 0
}

// tableRemove is Lua 5.3's table.remove: a position from 1 to #t+1, or #t
// itself (0 for an empty table); gopher-lua's removed the last element for
// a position below 1.
func tableRemove(L *glua.LState) int {
	t := L.CheckTable(1)
	checkWritable(L, t, "table.remove")
	size := t.Len()
	pos := size
	if L.GetTop() >= 2 {
		p := checkInteger(L, 2)
		if p != int64(size) && (p < 1 || p > int64(size)+1) {
			L.ArgError(1, "position out of bounds")
		}
		pos = int(p)
	}
	L.Push(t.RawGet(glua.LNumber(pos))) // RawGetInt reads only from 1 up
	for ; pos < size; pos++ {
		t.RawSetInt(pos, t.RawGetInt(pos+1))
	}
	t.RawSet(glua.LNumber(pos), glua.LNil)
	return 1
}
