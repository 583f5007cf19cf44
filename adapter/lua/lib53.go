package lua

import (
	"math"
	"strings"

	"github.com/rgw-nats/rgw-nats/adapter/lua/lua53"

	glua "github.com/yuin/gopher-lua"
)

// The Lua 5.3 library functions that gopher-lua (Lua 5.1) lacks: math.type,
// math.tointeger, math.ult, math.maxinteger, math.mininteger, table.move,
// table.pack, table.unpack, utf8, string.pack, string.unpack,
// string.packsize, the separator of string.rep, and 5.3's check that
// string.format's integer conversions get integers. Integers follow the
// rule of ops53.go: a number with an integral value is an integer.

// open53 adds them to the library tables before the sandbox wraps those.
func (st *state) open53() {
	L, G := st.L, st.globals
	m := G.RawGetString("math").(*glua.LTable)
	m.RawSetString("maxinteger", glua.LNumber(lua53.MaxIntFloat))
	m.RawSetString("mininteger", glua.LNumber(-(1 << 63)))
	m.RawSetString("huge", glua.LNumber(math.Inf(1))) // gopher-lua's is the largest double
	m.RawSetString("type", L.NewFunction(func(L *glua.LState) int {
		switch v := L.CheckAny(1).(type) {
		case glua.LNumber:
			if _, ok := floatToInt(float64(v)); ok {
				L.Push(glua.LString("integer"))
			} else {
				L.Push(glua.LString("float"))
			}
		default:
			L.Push(glua.LNil)
		}
		return 1
	}))
	m.RawSetString("tointeger", L.NewFunction(func(L *glua.LState) int {
		v := L.CheckAny(1)
		if f, ok := arithNumber(v); ok {
			if i, ok := floatToInt(f); ok {
				L.Push(glua.LNumber(lua53.IntToNumber(i)))
				return 1
			}
		}
		L.Push(glua.LNil)
		return 1
	}))
	m.RawSetString("ult", L.NewFunction(func(L *glua.LState) int {
		a, b := checkInteger(L, 1), checkInteger(L, 2)
		L.Push(glua.LBool(uint64(a) < uint64(b)))
		return 1
	}))

	G.RawSetString("tonumber", L.NewFunction(toNumber))
	G.RawSetString("tostring", L.NewFunction(func(L *glua.LState) int {
		L.Push(glua.LString(toString(L, L.CheckAny(1))))
		return 1
	}))
	aux := L.NewFunction(ipairsAux)
	G.RawSetString("ipairs", L.NewFunction(func(L *glua.LState) int {
		L.CheckAny(1)
		L.Push(aux)
		L.Push(L.Get(1))
		L.Push(smallInts[0])
		return 3
	}))
	m.RawSetString("log", L.NewFunction(mathLog))
	m.RawSetString("fmod", L.NewFunction(mathFmod))
	G.RawSetString("xpcall", L.NewFunction(xpcall))
	G.RawSetString("error", L.NewFunction(raise))
	o := G.RawGetString("os").(*glua.LTable)
	o.RawSetString("date", L.NewFunction(osDate))
	o.RawSetString("time", L.NewFunction(osTime))
	// gopher-lua's math functions read a string argument with Go's number
	// syntax (math.floor("010") would be 8): give them the number 5.3
	// reads. Not max and min, which compare their arguments as they are
	// in 5.3 ("attempt to compare string with number"), nor type and
	// tointeger, which take any value.
	m.ForEach(func(k, v glua.LValue) {
		f, ok := v.(*glua.LFunction)
		if !ok || !f.IsG {
			return
		}
		switch k.String() {
		case "max", "min", "type", "tointeger":
			return
		}
		name, orig := k.String(), f.GFunction
		m.RawSet(k, L.NewFunction(func(L *glua.LState) int {
			for i := 1; i <= L.GetTop(); i++ {
				numericArg(L, i, " (math."+name+")")
			}
			return orig(L)
		}))
	})

	t := G.RawGetString("table").(*glua.LTable)
	t.RawSetString("move", L.NewFunction(st.tableMove))
	t.RawSetString("pack", L.NewFunction(func(L *glua.LState) int {
		n := L.GetTop()
		p := L.CreateTable(n, 1)
		for i := 1; i <= n; i++ {
			p.RawSetInt(i, L.Get(i))
		}
		p.RawSetString("n", glua.LNumber(n))
		L.Push(p)
		return 1
	}))
	t.RawSetString("unpack", L.NewFunction(unpack))

	s := G.RawGetString("string").(*glua.LTable)
	format := s.RawGetString("format").(*glua.LFunction).GFunction
	s.RawSetString("format", L.NewFunction(func(L *glua.LState) int {
		formatArguments(L, L.CheckString(1))
		return format(L)
	}))
	s.RawSetString("pack", L.NewFunction(st.strPack))
	s.RawSetString("unpack", L.NewFunction(strUnpack))
	s.RawSetString("packsize", L.NewFunction(strPacksize))

	G.RawSetString("utf8", st.readOnly("utf8", st.utf8Lib()))
}

// toString is tostring as in 5.3: __tostring, a number as 5.3 writes it
// (numberText), a table or userdata named by its metatable's __name
// ("MyType: 0x..."), or gopher-lua's text of the value.
func toString(L *glua.LState, v glua.LValue) string {
	switch x := v.(type) {
	case glua.LNumber:
		return numberText(x)
	case *glua.LTable, *glua.LUserData:
		if L.GetMetaField(v, "__tostring") == glua.LNil {
			if name, ok := L.GetMetaField(v, "__name").(glua.LString); ok {
				s := v.String() // "table: 0x..."
				return string(name) + s[strings.IndexByte(s, ':'):]
			}
		}
	}
	return L.ToStringMeta(v).String()
}

// ipairsAux is the iterator of ipairs as in Lua 5.3: t[i] is read as an
// index expression reads it (a raw hit first, then __index), so it takes any
// value that can be indexed; gopher-lua's read tables raw and refused the
// rest. The end is one nil, not nothing. The counter is pre-boxed up to
// len(smallInts): a loop over a list of a few hundred elements allocates
// nothing for it.
func ipairsAux(L *glua.LState) int {
	i := checkInteger(L, 2) + 1
	v := L.Get(1)
	if t, ok := v.(*glua.LTable); ok {
		e := t.RawGetInt(int(i))
		if e == glua.LNil && (i < 1 || i >= int64(glua.MaxArrayIndex)) {
			e = t.RawGet(boxInt(i)) // keys outside the array part
		}
		if e != glua.LNil || t.Metatable == glua.LNil {
			return ipairsResult(L, i, e)
		}
	} else if _, ok := v.(glua.LString); !ok && L.GetMetaField(v, "__index") == glua.LNil {
		L.RaiseError("attempt to index a %s value", v.Type().String())
	}
	return ipairsResult(L, i, L.GetTable(v, boxInt(i)))
}

func ipairsResult(L *glua.LState, i int64, e glua.LValue) int {
	if e == glua.LNil {
		L.Push(glua.LNil)
		return 1
	}
	L.Push(boxInt(i))
	L.Push(e)
	return 2
}

// smallInts are the integers from 0 boxed once: converting a number to a
// Lua value allocates (it is a float64 in an interface).
var smallInts = func() (s [1024]glua.LValue) {
	for i := range s {
		s[i] = glua.LNumber(i)
	}
	return s
}()

func boxInt(i int64) glua.LValue {
	if i >= 0 && i < int64(len(smallInts)) {
		return smallInts[i]
	}
	return glua.LNumber(lua53.IntToNumber(i))
}

// mathLog is math.log with 5.3's optional base; gopher-lua's ignored it
// (math.log(8, 2) was ln 8).
func mathLog(L *glua.LState) int {
	x := float64(L.CheckNumber(1))
	r := math.Log(x)
	if L.Get(2) != glua.LNil {
		switch b := float64(L.CheckNumber(2)); b {
		case 2:
			r = math.Log2(x)
		case 10:
			r = math.Log10(x)
		default:
			r /= math.Log(b)
		}
	}
	L.Push(glua.LNumber(r))
	return 1
}

// mathFmod is math.fmod as in 5.3: for integers C's %, which refuses a
// zero divisor (gopher-lua gave nan); for floats C's fmod.
func mathFmod(L *glua.LState) int {
	a, b := float64(L.CheckNumber(1)), float64(L.CheckNumber(2))
	if x, ok := floatToInt(a); ok {
		if y, ok := floatToInt(b); ok {
			switch y {
			case 0:
				L.ArgError(2, "zero")
			case -1:
				L.Push(smallInts[0]) // mininteger % -1 overflows in C
			default:
				L.Push(glua.LNumber(lua53.IntToNumber(x % y)))
			}
			return 1
		}
	}
	L.Push(glua.LNumber(math.Mod(a, b)))
	return 1
}

// integerArguments makes the library functions that take integers take
// them as 5.3's luaL_checkinteger does, where gopher-lua's truncated a float
// (string.sub(s, 2.5) was string.sub(s, 2)) and refused a numeric string
// (string.rep("a", "3")). It wraps the functions as the sandbox left them,
// last, so that every layer below sees integers.
func (st *state) integerArguments() {
	for _, lib := range []struct {
		name string
		args map[string][]int // function -> positions of its integer arguments
	}{
		{"string", map[string][]int{"byte": {2, 3}, "find": {3}, "match": {3}, "gsub": {4}, "rep": {2}, "sub": {2, 3}}},
		{"table", map[string][]int{"concat": {3, 4}, "unpack": {2, 3}}},
		{"math", map[string][]int{"random": {1, 2}}},
		{"", map[string][]int{"select": {1}, "unpack": {2, 3}}},
	} {
		t := st.globals
		if lib.name != "" {
			t = libTable(st.globals.RawGetString(lib.name))
		}
		for name, at := range lib.args {
			fn := t.RawGetString(name).(*glua.LFunction).GFunction
			t.RawSetString(name, st.L.NewFunction(func(L *glua.LState) int {
				for _, n := range at {
					integerArg(L, n)
				}
				return fn(L)
			}))
		}
	}
}

// maxPosition bounds the integers integerArg hands on: gopher-lua's string
// functions compute with positions (i - 1, len + i + 1) that overflow near
// 2^63, and no string or table reaches 2^53.
const maxPosition = 1 << 53

// integerArg converts argument n, when there is one, as luaL_checkinteger
// reads it: a number with an integer value, or a string of one; a float
// without one is refused. What is neither is left for the function's own
// check to refuse.
func integerArg(L *glua.LState, n int) {
	var f float64
	str := false
	switch v := L.Get(n).(type) {
	case glua.LNumber:
		f = float64(v)
	case glua.LString:
		var ok bool
		if f, ok = strToNumber(string(v)); !ok {
			return
		}
		str = true
	default:
		return
	}
	i, ok := floatToInt(f)
	if !ok {
		L.ArgError(n, "number has no integer representation")
	}
	if c := min(max(i, -maxPosition), maxPosition); c != i || str {
		L.Replace(n, glua.LNumber(c))
	}
}

// xpcall is 5.3's: the arguments after the handler go to the function
// (gopher-lua's called it with none), and the function is not checked
// before the call: calling what is not one is an error for the handler.
func xpcall(L *glua.LState) int {
	top := L.GetTop()
	h := L.CheckFunction(2)
	L.Push(L.Get(1))
	for i := 3; i <= top; i++ {
		L.Push(L.Get(i))
	}
	if err := L.PCall(top-2, glua.MultRet, h); err != nil {
		L.Push(glua.LFalse)
		if aerr, ok := err.(*glua.ApiError); ok {
			L.Push(aerr.Object)
		} else {
			L.Push(glua.LString(err.Error()))
		}
		return 2
	}
	L.Insert(glua.LTrue, top+1)
	return L.GetTop() - top
}

// raise is error as in 5.3: error() raises nil (gopher-lua refused the
// call), the level is an integer.
func raise(L *glua.LState) int {
	level := optInteger(L, 2, 1)
	L.Error(L.Get(1), int(level))
	return 0
}

// checkInteger is luaL_checkinteger: a number (or numeric string) with an
// integer representation.
func checkInteger(L *glua.LState, n int) int64 {
	v := L.Get(n)
	f, ok := arithNumber(v)
	if !ok {
		L.TypeError(n, glua.LTNumber)
	}
	i, ok := floatToInt(f)
	if !ok {
		L.ArgError(n, "number has no integer representation")
	}
	return i
}

func optInteger(L *glua.LState, n int, def int64) int64 {
	if L.Get(n) == glua.LNil {
		return def
	}
	return checkInteger(L, n)
}

// unpack is unpack and table.unpack, bounded like Lua's stack.
func unpack(L *glua.LState) int {
	t := L.CheckTable(1)
	i, j := L.OptInt(2, 1), L.OptInt(3, t.Len())
	if j-i >= maxResults {
		L.RaiseError("unpack: too many results to unpack")
	}
	for k := i; k <= j; k++ {
		L.Push(t.RawGetInt(k))
	}
	return max(0, j-i+1)
}

// tableMove is table.move(a1, f, e, t [, a2]). It honours __index and
// __newindex as 5.3 does, and checks the deadline, since a range of
// millions of (nil) elements costs no memory but time.
func (st *state) tableMove(L *glua.LState) int {
	a1 := L.CheckTable(1)
	f, e, t := checkInteger(L, 2), checkInteger(L, 3), checkInteger(L, 4)
	a2 := a1
	if L.GetTop() >= 5 && L.Get(5) != glua.LNil {
		a2 = L.CheckTable(5)
	}
	checkWritable(L, a2, "table.move")
	if e >= f {
		if !(f > 0 || e < math.MaxInt64+f) {
			L.ArgError(3, "too many elements to move")
		}
		if t > math.MaxInt64-(e-f) {
			L.ArgError(4, "destination wrap around")
		}
		step := func(i int64) {
			if i%4096 == 0 && st.deadline.expired.Load() {
				L.RaiseError("table.move ran past the deadline")
			}
		}
		if t > e || t <= f || a1 != a2 {
			for i := int64(0); i <= e-f; i++ {
				step(i)
				L.SetTable(a2, glua.LNumber(t+i), L.GetTable(a1, glua.LNumber(f+i)))
			}
		} else {
			for i := e - f; i >= 0; i-- {
				step(i)
				L.SetTable(a2, glua.LNumber(t+i), L.GetTable(a1, glua.LNumber(f+i)))
			}
		}
	}
	L.Push(a2)
	return 1
}

// formatArguments gives string.format's numeric conversions the numbers
// 5.3 reads from numeric strings, refuses, as 5.3 does, a non-integral
// number for the integer ones (%d, %i, %x, %X, %o, %c), and gives %s a
// number's text as 5.3 writes it (gopher-lua's wrote it as Go does).
func formatArguments(L *glua.LState, f string) {
	for d := range formatDirectives(f) {
		n := d.arg + 1
		if d.verb == 's' {
			if v, ok := L.Get(n).(glua.LNumber); ok {
				L.Replace(n, glua.LString(numberText(v)))
			}
			continue
		}
		if d.verb == 0 || strings.IndexByte("dixXoceEfgGaA", d.verb) < 0 {
			continue
		}
		// Go's fmt would print "%!f(string=...)" or the string as it is.
		numericArg(L, n, "")
		if v, ok := L.Get(n).(glua.LNumber); ok && strings.IndexByte("dixXoc", d.verb) >= 0 {
			if _, ok := floatToInt(float64(v)); !ok {
				L.ArgError(n, "number has no integer representation")
			}
		}
	}
}

// numericArg replaces a string argument n with the number 5.3 reads from
// it, and refuses one that is not a numeral (what names the function).
func numericArg(L *glua.LState, n int, what string) {
	if s, ok := L.Get(n).(glua.LString); ok {
		f, ok := strToNumber(string(s))
		if !ok {
			L.ArgError(n, "number expected, got string"+what)
		}
		L.Replace(n, glua.LNumber(f))
	}
}

// toNumber is 5.3's tonumber: without a base, a number, or a string read
// as 5.3 reads numerals ("1e2" and "0x1p4" too, "010" decimal, no "1_0");
// with one, a string of digits in that base, an integer.
func toNumber(L *glua.LState) int {
	if L.Get(2) == glua.LNil {
		switch v := L.CheckAny(1).(type) {
		case glua.LNumber:
			L.Push(v)
			return 1
		case glua.LString:
			if f, ok := strToNumber(string(v)); ok {
				L.Push(glua.LNumber(f))
				return 1
			}
		}
		L.Push(glua.LNil)
		return 1
	}
	base := checkInteger(L, 2)
	str, ok := L.Get(1).(glua.LString) // not a number: 5.3 wants a string
	if !ok {
		L.TypeError(1, glua.LTString)
	}
	s := string(str)
	if base < 2 || base > 36 {
		L.ArgError(2, "base out of range")
	}
	s = strings.Trim(s, " \f\n\r\t\v")
	neg := strings.HasPrefix(s, "-")
	if neg {
		s = s[1:]
	}
	if s == "" {
		L.Push(glua.LNil)
		return 1
	}
	var n uint64 // wraps around as 5.3's lua_Unsigned does
	for i := 0; i < len(s); i++ {
		c, d := s[i], int64(36)
		switch {
		case isDigit(c):
			d = int64(c - '0')
		case isAlpha(c):
			d = int64(c|0x20-'a') + 10
		}
		if d >= base {
			L.Push(glua.LNil)
			return 1
		}
		n = n*uint64(base) + uint64(d)
	}
	if neg {
		n = -n
	}
	L.Push(glua.LNumber(lua53.IntToNumber(int64(n))))
	return 1
}

// utf8

const maxUnicode = 0x10FFFF

// utf8Decode decodes one sequence at s[i:] as Lua 5.3 does (up to 4 bytes,
// up to U+10FFFF, no overlong forms, surrogates accepted); n is 0 when the
// sequence is invalid.
func utf8Decode(s string, i int) (r rune, n int) {
	at := func(k int) uint32 {
		if k < len(s) {
			return uint32(s[k])
		}
		return 0 // C's terminating zero
	}
	c := at(i)
	if c < 0x80 {
		return rune(c), 1
	}
	limits := [...]uint32{0xFF, 0x7F, 0x7FF, 0xFFFF}
	var res uint32
	count := 0
	for c&0x40 != 0 {
		count++
		cc := at(i + count)
		if cc&0xC0 != 0x80 {
			return 0, 0
		}
		res = res<<6 | cc&0x3F
		c <<= 1
	}
	res |= (c & 0x7F) << (count * 5)
	if count > 3 || res > maxUnicode || res <= limits[count] {
		return 0, 0
	}
	return rune(res), count + 1
}

func isCont(s string, i int) bool { return i < len(s) && s[i]&0xC0 == 0x80 }

// posRelat is u_posrelat: a position counted from the end when negative.
func posRelat(pos int64, n int) int64 {
	switch {
	case pos >= 0:
		return pos
	case -pos > int64(n):
		return 0
	}
	return int64(n) + pos + 1
}

func (st *state) utf8Lib() *glua.LTable {
	L := st.L
	lib := L.NewTable()
	lib.RawSetString("charpattern", glua.LString("[\x00-\x7F\xC2-\xF4][\x80-\xBF]*"))
	lib.RawSetString("char", L.NewFunction(func(L *glua.LState) int {
		n := L.GetTop()
		b := make([]byte, 0, n)
		for i := 1; i <= n; i++ {
			c := checkInteger(L, i)
			if uint64(c) > maxUnicode {
				L.ArgError(i, "value out of range")
			}
			b = lua53.AppendUTF8(b, uint32(c))
		}
		L.Push(glua.LString(b))
		return 1
	}))
	lib.RawSetString("codepoint", L.NewFunction(func(L *glua.LState) int {
		s := L.CheckString(1)
		i := posRelat(optInteger(L, 2, 1), len(s))
		j := posRelat(optInteger(L, 3, i), len(s))
		if i < 1 {
			L.ArgError(2, "out of range")
		}
		if j > int64(len(s)) {
			L.ArgError(3, "out of range")
		}
		if i > j {
			return 0
		}
		if j-i >= maxResults {
			L.RaiseError("string slice too long")
		}
		n := 0
		for k := int(i - 1); k < int(j); {
			r, size := utf8Decode(s, k)
			if size == 0 {
				L.RaiseError("invalid UTF-8 code")
			}
			L.Push(glua.LNumber(r))
			n++
			k += size
		}
		return n
	}))
	lib.RawSetString("len", L.NewFunction(func(L *glua.LState) int {
		s := L.CheckString(1)
		i := posRelat(optInteger(L, 2, 1), len(s))
		j := posRelat(optInteger(L, 3, -1), len(s))
		if i < 1 || i-1 > int64(len(s)) {
			L.ArgError(2, "initial position out of string")
		}
		if j-1 >= int64(len(s)) {
			L.ArgError(3, "final position out of string")
		}
		n := 0
		for k := i - 1; k < j; {
			_, size := utf8Decode(s, int(k))
			if size == 0 {
				L.Push(glua.LNil)
				L.Push(glua.LNumber(k + 1))
				return 2
			}
			k += int64(size)
			n++
		}
		L.Push(glua.LNumber(n))
		return 1
	}))
	lib.RawSetString("offset", L.NewFunction(func(L *glua.LState) int {
		s := L.CheckString(1)
		n := checkInteger(L, 2)
		def := int64(1)
		if n < 0 {
			def = int64(len(s)) + 1
		}
		posi := posRelat(optInteger(L, 3, def), len(s))
		if posi < 1 || posi-1 > int64(len(s)) {
			L.ArgError(3, "position out of range")
		}
		p := int(posi - 1)
		if n == 0 {
			for p > 0 && isCont(s, p) {
				p--
			}
		} else {
			if isCont(s, p) {
				L.RaiseError("initial position is a continuation byte")
			}
			if n < 0 {
				for n < 0 && p > 0 {
					p--
					for p > 0 && isCont(s, p) {
						p--
					}
					n++
				}
			} else {
				n--
				for n > 0 && p < len(s) {
					p++
					for isCont(s, p) {
						p++
					}
					n--
				}
			}
		}
		if n == 0 {
			L.Push(glua.LNumber(p + 1))
		} else {
			L.Push(glua.LNil)
		}
		return 1
	}))
	iter := L.NewFunction(func(L *glua.LState) int {
		s := L.CheckString(1)
		n := checkInteger(L, 2) - 1
		if n < 0 {
			n = 0
		} else if n < int64(len(s)) {
			n++
			for isCont(s, int(n)) {
				n++
			}
		}
		if n >= int64(len(s)) {
			return 0
		}
		r, size := utf8Decode(s, int(n))
		if size == 0 || isCont(s, int(n)+size) {
			L.RaiseError("invalid UTF-8 code")
		}
		L.Push(glua.LNumber(n + 1))
		L.Push(glua.LNumber(r))
		return 2
	})
	lib.RawSetString("codes", L.NewFunction(func(L *glua.LState) int {
		L.Push(iter)
		L.Push(glua.LString(L.CheckString(1)))
		L.Push(glua.LNumber(0))
		return 3
	}))
	return lib
}

// string.pack, string.unpack, string.packsize: Lua 5.3's formats.

type packOpt uint8

const (
	kInt packOpt = iota
	kUint
	kFloat // f, d, n
	kChar  // cN: fixed-size string
	kString
	kZstr
	kPadding
	kPaddAlign
	kNop
)

type packState struct {
	L        *glua.LState
	fmt      string
	pos      int
	little   bool
	maxAlign int
}

func (h *packState) readNum(def int) int {
	if h.pos >= len(h.fmt) || !isDigit(h.fmt[h.pos]) {
		return def
	}
	n := 0
	for h.pos < len(h.fmt) && isDigit(h.fmt[h.pos]) && n < 1e8 {
		n = n*10 + int(h.fmt[h.pos]-'0')
		h.pos++
	}
	return n
}

func (h *packState) intSize(def int) int {
	n := h.readNum(def)
	if n < 1 || n > 16 {
		h.L.RaiseError("integral size (%d) out of limits [1,16]", n)
	}
	return n
}

// option reads the next option and its size.
func (h *packState) option() (packOpt, int) {
	c := h.fmt[h.pos]
	h.pos++
	switch c {
	case 'b':
		return kInt, 1
	case 'B':
		return kUint, 1
	case 'h':
		return kInt, 2
	case 'H':
		return kUint, 2
	case 'l', 'j':
		return kInt, 8
	case 'L', 'J', 'T':
		return kUint, 8
	case 'f':
		return kFloat, 4
	case 'd', 'n':
		return kFloat, 8
	case 'i':
		return kInt, h.intSize(4)
	case 'I':
		return kUint, h.intSize(4)
	case 's':
		return kString, h.intSize(8)
	case 'c':
		n := h.readNum(-1)
		if n == -1 {
			h.L.RaiseError("missing size for format option 'c'")
		}
		return kChar, n
	case 'z':
		return kZstr, 0
	case 'x':
		return kPadding, 1
	case 'X':
		return kPaddAlign, 0
	case ' ':
	case '<':
		h.little = true
	case '>':
		h.little = false
	case '=':
		h.little = true // the native order of the machines we run on
	case '!':
		h.maxAlign = h.intSize(8)
	default:
		h.L.RaiseError("invalid format option '%c'", c)
	}
	return kNop, 0
}

// details reads the next option and how many padding bytes align it at
// offset total.
func (h *packState) details(total int) (opt packOpt, size, pad int) {
	opt, size = h.option()
	align := size
	if opt == kPaddAlign {
		if h.pos >= len(h.fmt) {
			h.L.ArgError(1, "invalid next option for option 'X'")
		}
		var next packOpt
		next, align = h.option()
		if next == kChar || align == 0 {
			h.L.ArgError(1, "invalid next option for option 'X'")
		}
	}
	if align <= 1 || opt == kChar {
		return opt, size, 0
	}
	align = min(align, h.maxAlign)
	if align&(align-1) != 0 {
		h.L.ArgError(1, "format asks for alignment not power of 2")
	}
	return opt, size, (align - total&(align-1)) & (align - 1)
}

func newPackState(L *glua.LState, f string) *packState {
	return &packState{L: L, fmt: f, little: true, maxAlign: 1}
}

func appendInt(b []byte, v uint64, size int, little bool, neg bool) []byte {
	buf := make([]byte, size)
	for i := 0; i < size; i++ {
		var byt byte
		if i < 8 {
			byt = byte(v >> (8 * i))
		} else if neg {
			byt = 0xff
		}
		if little {
			buf[i] = byt
		} else {
			buf[size-1-i] = byt
		}
	}
	return append(b, buf...)
}

func (st *state) strPack(L *glua.LState) int {
	h := newPackState(L, L.CheckString(1))
	var b []byte
	arg := 1
	limit := st.maxString()
	for h.pos < len(h.fmt) {
		opt, size, pad := h.details(len(b))
		// What this option adds is known before anything is allocated: a
		// format such as "c2000000000" must fail here, not after make.
		need := pad + size
		switch opt {
		case kString, kZstr:
			if arg+1 <= L.GetTop() {
				if s, ok := L.Get(arg + 1).(glua.LString); ok {
					need += len(s) + 1
				}
			}
		case kNop, kPaddAlign:
			need = pad
		}
		if len(b)+need > limit {
			st.tooLong(L, "string.pack", len(b)+need)
		}
		b = append(b, make([]byte, pad)...)
		switch opt {
		case kInt, kUint:
			arg++
			n := checkInteger(L, arg)
			if size < 8 {
				if opt == kInt {
					lim := int64(1) << (size*8 - 1)
					if n < -lim || n >= lim {
						L.ArgError(arg, "integer overflow")
					}
				} else if uint64(n) >= 1<<(size*8) {
					L.ArgError(arg, "unsigned overflow")
				}
			}
			b = appendInt(b, uint64(n), size, h.little, n < 0)
		case kFloat:
			arg++
			f := float64(L.CheckNumber(arg))
			if size == 4 {
				b = appendInt(b, uint64(math.Float32bits(float32(f))), 4, h.little, false)
			} else {
				b = appendInt(b, math.Float64bits(f), 8, h.little, false)
			}
		case kChar:
			arg++
			s := L.CheckString(arg)
			if len(s) > size {
				L.ArgError(arg, "string longer than given size")
			}
			b = append(b, s...)
			b = append(b, make([]byte, size-len(s))...)
		case kString:
			arg++
			s := L.CheckString(arg)
			if size < 8 && uint64(len(s)) >= 1<<(size*8) {
				L.ArgError(arg, "string length does not fit in given size")
			}
			b = appendInt(b, uint64(len(s)), size, h.little, false)
			b = append(b, s...)
		case kZstr:
			arg++
			s := L.CheckString(arg)
			if strings.IndexByte(s, 0) >= 0 {
				L.ArgError(arg, "string contains zeros")
			}
			b = append(b, s...)
			b = append(b, 0)
		case kPadding:
			b = append(b, 0)
		}
	}
	L.Push(glua.LString(b))
	return 1
}

func strPacksize(L *glua.LState) int {
	h := newPackState(L, L.CheckString(1))
	total := 0
	for h.pos < len(h.fmt) {
		opt, size, pad := h.details(total)
		if opt == kString || opt == kZstr {
			L.ArgError(1, "variable-length format")
		}
		total += pad + size
		if total > math.MaxInt32 {
			L.ArgError(1, "format result too large")
		}
	}
	L.Push(glua.LNumber(total))
	return 1
}

func readInt(s string, size int, little, signed bool, L *glua.LState) int64 {
	var v uint64
	for i := 0; i < min(size, 8); i++ {
		var byt byte
		if little {
			byt = s[i]
		} else {
			byt = s[size-1-i]
		}
		v |= uint64(byt) << (8 * i)
	}
	if size < 8 {
		if signed && v>>(size*8-1)&1 == 1 {
			v |= ^uint64(0) << (size * 8)
		}
	} else if size > 8 {
		// The bytes beyond 8 must only extend the sign.
		fill := byte(0)
		if signed && int64(v) < 0 {
			fill = 0xff
		}
		for i := 8; i < size; i++ {
			byt := s[i]
			if !little {
				byt = s[size-1-i]
			}
			if byt != fill {
				L.RaiseError("%d-byte integer does not fit into Lua Integer", size)
			}
		}
	}
	return int64(v)
}

func strUnpack(L *glua.LState) int {
	h := newPackState(L, L.CheckString(1))
	data := L.CheckString(2)
	pos := posRelat(optInteger(L, 3, 1), len(data)) - 1
	if pos < 0 || pos > int64(len(data)) {
		L.ArgError(3, "initial position out of string")
	}
	p := int(pos)
	n := 0
	for h.pos < len(h.fmt) {
		opt, size, pad := h.details(p)
		if pad+size > len(data)-p {
			L.ArgError(2, "data string too short")
		}
		p += pad
		if n >= maxResults {
			L.RaiseError("string.unpack: too many results")
		}
		switch opt {
		case kInt, kUint:
			L.Push(glua.LNumber(lua53.IntToNumber(readInt(data[p:p+size], size, h.little, opt == kInt, L))))
			n++
		case kFloat:
			bits := uint64(readInt(data[p:p+size], size, h.little, false, L))
			if size == 4 {
				L.Push(glua.LNumber(math.Float32frombits(uint32(bits))))
			} else {
				L.Push(glua.LNumber(math.Float64frombits(bits)))
			}
			n++
		case kChar:
			L.Push(glua.LString(data[p : p+size]))
			n++
		case kString:
			l := uint64(readInt(data[p:p+size], size, h.little, false, L))
			if l > uint64(len(data)-p-size) {
				L.ArgError(2, "data string too short")
			}
			L.Push(glua.LString(data[p+size : p+size+int(l)]))
			p += int(l)
			n++
		case kZstr:
			end := strings.IndexByte(data[p:], 0)
			if end < 0 {
				L.ArgError(2, "unfinished string for format 'z'")
			}
			L.Push(glua.LString(data[p : p+end]))
			p += end + 1
			n++
		}
		p += size
	}
	L.Push(glua.LNumber(p + 1))
	return n + 1
}
