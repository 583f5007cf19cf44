package lua

import (
	"errors"
	"math"
	"strconv"
	"strings"

	"github.com/rgw-nats/rgw-nats/adapter/lua/lua53"

	glua "github.com/yuin/gopher-lua"
)

// The helpers that translated Lua 5.3 operators call (see adapter/lua/lua53).
// They are plain computations on their arguments: a script that calls one
// by name gets nothing it could not get from the operator.
//
// Lua 5.1 has one number type, a double. Where 5.3 keeps integers apart,
// these helpers treat a number with an integral value as an integer: 7 // 2
// and 7.0 // 2 both give 3, 3 & 1.0 gives 1, 1 // 0 fails as 5.3's
// integer division does. Results are integers converted to doubles, exact
// up to 2^53.

// floatToInt is 5.3's conversion of a float to an integer: only an integral
// value in range has one.
func floatToInt(f float64) (int64, bool) {
	if f >= -(1<<63) && f < 1<<63 && f == math.Trunc(f) {
		return int64(f), true
	}
	return 0, false
}

// numberText is a number as Lua 5.3 writes it (tostring, .., print,
// table.concat, string.format's %s): an integer in digits, a float with 14
// significant digits ("%.14g": 0.1 + 0.2 is 0.3), inf, -inf, nan or -nan.
// gopher-lua wrote floats in their shortest exact form (0.30000000000000004)
// and infinities as Go does (+Inf).
func numberText(v glua.LNumber) string {
	f := float64(v)
	if i, ok := floatToInt(f); ok {
		return strconv.FormatInt(i, 10)
	}
	switch {
	case math.IsInf(f, 1):
		return "inf"
	case math.IsInf(f, -1):
		return "-inf"
	case math.IsNaN(f) && math.Signbit(f):
		return "-nan"
	case math.IsNaN(f):
		return "nan"
	}
	return strconv.FormatFloat(f, 'g', 14, 64)
}

// strToNumber converts a string as Lua 5.3's arithmetic does: surrounding
// spaces allowed, decimal or hexadecimal, hexadecimal integers wrapping
// around 64 bits.
func strToNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	neg := false
	body := s
	if strings.HasPrefix(body, "-") {
		neg, body = true, body[1:]
	} else if strings.HasPrefix(body, "+") {
		body = body[1:]
	}
	if len(body) > 2 && body[0] == '0' && (body[1] == 'x' || body[1] == 'X') {
		digits := body[2:]
		if !strings.ContainsAny(digits, ".pP") {
			var u uint64
			for i := 0; i < len(digits); i++ {
				if !isXDigit(digits[i]) {
					return 0, false
				}
				d, _ := strconv.ParseUint(digits[i:i+1], 16, 8)
				u = u<<4 | d
			}
			if neg {
				u = -u
			}
			return lua53.IntToNumber(int64(u)), true
		}
		if !strings.ContainsAny(digits, "pP") {
			body += "p0"
		}
		f, err := strconv.ParseFloat("0x"+body[2:], 64)
		if err != nil {
			return 0, false
		}
		if neg {
			f = -f
		}
		return f, true
	}
	if body == "" || !(isDigit(body[0]) || body[0] == '.') {
		return 0, false // no "inf", "nan", "Infinity"
	}
	for i := 0; i < len(body); i++ {
		if c := body[i]; !(isDigit(c) || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-') {
			return 0, false
		}
	}
	f, err := strconv.ParseFloat(body, 64)
	if err != nil && !(errors.Is(err, strconv.ErrRange) && math.IsInf(f, 0)) {
		return 0, false // "1e400" is inf, as C's strtod reads it
	}
	if neg {
		f = -f
	}
	return f, true
}

// arithNumber is an operand of an arithmetic operator: a number, or a
// string that converts to one.
func arithNumber(v glua.LValue) (float64, bool) {
	switch v := v.(type) {
	case glua.LNumber:
		return float64(v), true
	case glua.LString:
		return strToNumber(string(v))
	}
	return 0, false
}

// bitInteger is an operand of a bitwise operator; msg says why it is not
// one, as 5.3 says it.
func bitInteger(v glua.LValue) (i int64, msg string) {
	f, ok := arithNumber(v)
	if !ok {
		return 0, "attempt to perform bitwise operation on a " + v.Type().String() + " value"
	}
	if i, ok := floatToInt(f); ok {
		return i, ""
	}
	return 0, "number has no integer representation"
}

// binaryMeta calls the metamethod event of a, or else of b, leaving its
// result on top of the stack; false when neither has one. A string has
// none, as in 5.3: the arithmetic events of the string metatable are
// arith, which comes here for the other operand's.
func binaryMeta(L *glua.LState, event string, a, b glua.LValue) bool {
	var mm glua.LValue = glua.LNil
	for _, v := range [2]glua.LValue{a, b} {
		if _, isString := v.(glua.LString); !isString {
			if mm = L.GetMetaField(v, event); mm != glua.LNil {
				break
			}
		}
	}
	if mm == glua.LNil {
		return false
	}
	L.Push(mm)
	L.Push(a)
	L.Push(b)
	L.Call(2, 1)
	return true
}

func (st *state) initOps53() {
	G, L := st.globals, st.L
	G.RawSetString(lua53.Helper("//"), L.NewFunction(opIdiv))
	G.RawSetString(lua53.Helper("%"), L.NewFunction(opMod))
	// a ^ b is always a float, rounded as C's pow rounds it (see pow).
	G.RawSetString(lua53.Helper("^"), L.NewFunction(arith("__pow", pow)))
	for op, f := range map[string]func(x, y int64) int64{
		"&":  func(x, y int64) int64 { return x & y },
		"|":  func(x, y int64) int64 { return x | y },
		"~":  func(x, y int64) int64 { return x ^ y },
		"<<": shiftLeft,
		">>": func(x, y int64) int64 { return shiftLeft(x, -y) },
	} {
		event := map[string]string{"&": "__band", "|": "__bor", "~": "__bxor", "<<": "__shl", ">>": "__shr"}[op]
		G.RawSetString(lua53.Helper(op), L.NewFunction(func(L *glua.LState) int {
			a, b := L.Get(1), L.Get(2)
			x, mx := bitInteger(a)
			y, my := bitInteger(b)
			if mx == "" && my == "" {
				L.Push(glua.LNumber(lua53.IntToNumber(f(x, y))))
				return 1
			}
			if binaryMeta(L, event, a, b) {
				return 1
			}
			if mx == "" {
				mx = my
			}
			L.RaiseError("%s", mx)
			return 0
		}))
	}
	G.RawSetString(lua53.BNotHelper, L.NewFunction(func(L *glua.LState) int {
		a := L.Get(1)
		x, msg := bitInteger(a)
		if msg == "" {
			L.Push(glua.LNumber(lua53.IntToNumber(^x)))
			return 1
		}
		if binaryMeta(L, "__bnot", a, a) {
			return 1
		}
		L.RaiseError("%s", msg)
		return 0
	}))
	G.RawSetString(lua53.Helper(".."), L.NewFunction(st.opConcat))
	G.RawSetString(lua53.UnmHelper, L.NewFunction(func(L *glua.LState) int {
		a := L.Get(1)
		if x, ok := arithNumber(a); ok {
			L.Push(glua.LNumber(-x))
			return 1
		}
		return arithMeta(L, "__unm", a, a, false)
	}))
}

// arith is an arithmetic operator of two numbers, or strings read as 5.3
// reads numerals, else the metamethod event of an operand that is not a
// string, else 5.3's error. It is the helper ^ becomes, and the string
// metatable's __add, __sub, __mul and __div (stringArithEvents):
// gopher-lua converts a string operand of + - * / itself, with Go's
// number syntax ("010" + 0 would be 8, "1_0" + 0 10), unless the operands
// have the metamethod.
func arith(event string, op func(x, y float64) float64) glua.LGFunction {
	return func(L *glua.LState) int {
		a, b := L.Get(1), L.Get(2)
		x, okx := arithNumber(a)
		y, oky := arithNumber(b)
		if okx && oky {
			L.Push(glua.LNumber(op(x, y)))
			return 1
		}
		return arithMeta(L, event, a, b, okx)
	}
}

// stringArithEvents are the string metatable's arithmetic events, with what
// the engine does with two numbers (%, like // and ^, is a helper of the
// translation that reads strings itself).
var stringArithEvents = map[string]func(x, y float64) float64{
	"__add": func(x, y float64) float64 { return x + y },
	"__sub": func(x, y float64) float64 { return x - y },
	"__mul": func(x, y float64) float64 { return x * y },
	"__div": func(x, y float64) float64 { return x / y },
}

// shiftLeft is 5.3's logical shift: negative counts shift right, counts of
// 64 or more give 0.
func shiftLeft(x, n int64) int64 {
	switch {
	case n <= -64 || n >= 64:
		return 0
	case n >= 0:
		return int64(uint64(x) << uint(n))
	}
	return int64(uint64(x) >> uint(-n))
}

// opIdiv is a // b: floor division, of integers when both values are
// integral (then by zero is an error, as in 5.3), else of floats.
func opIdiv(L *glua.LState) int {
	a, b := L.Get(1), L.Get(2)
	x, okx := arithNumber(a)
	y, oky := arithNumber(b)
	if okx && oky {
		xi, xint := floatToInt(x)
		yi, yint := floatToInt(y)
		if !xint || !yint {
			L.Push(glua.LNumber(math.Floor(x / y)))
			return 1
		}
		switch yi {
		case 0:
			L.RaiseError("attempt to divide by zero")
		case -1:
			L.Push(glua.LNumber(lua53.IntToNumber(-xi))) // minint // -1 wraps, as in 5.3
			return 1
		}
		q := xi / yi
		if xi%yi != 0 && (xi < 0) != (yi < 0) {
			q--
		}
		L.Push(glua.LNumber(lua53.IntToNumber(q)))
		return 1
	}
	return arithMeta(L, "__idiv", a, b, okx)
}

// opMod is a % b: of integers when both values are integral (then by zero
// is an error, and -64 % 64 is 0, not -0), else 5.3's float modulo (fmod,
// then b added when the signs differ).
func opMod(L *glua.LState) int {
	a, b := L.Get(1), L.Get(2)
	x, okx := arithNumber(a)
	y, oky := arithNumber(b)
	if !okx || !oky {
		return arithMeta(L, "__mod", a, b, okx)
	}
	xi, xint := floatToInt(x)
	yi, yint := floatToInt(y)
	if xint && yint {
		if yi == 0 {
			L.RaiseError("%s", "attempt to perform 'n%0'")
		}
		r := xi % yi // minint % -1 is 0 in Go, as in 5.3
		if r != 0 && (r < 0) != (yi < 0) {
			r += yi
		}
		L.Push(glua.LNumber(lua53.IntToNumber(r)))
		return 1
	}
	m := math.Mod(x, y)
	if m*y < 0 { // 5.3's luai_nummod
		m += y
	}
	L.Push(glua.LNumber(m))
	return 1
}

// arithMeta is an arithmetic operator whose operands are not both numbers:
// the metamethod event of a or b, else 5.3's error naming the operand that
// is not a number (b when a, okA, is one).
func arithMeta(L *glua.LState, event string, a, b glua.LValue, okA bool) int {
	if binaryMeta(L, event, a, b) {
		return 1
	}
	bad := a
	if okA {
		bad = b
	}
	L.RaiseError("attempt to perform arithmetic on a %s value", bad.Type().String())
	return 0
}

// opConcat is a .. b .. c ...: Lua's concatenation of a whole chain, as
// 5.3's luaV_concat does it (from the right, runs of strings and numbers
// at once, __concat for the rest), refusing results over the string limit.
// A chain of strings and numbers is built with one allocation.
func (st *state) opConcat(L *glua.LState) int {
	n := L.GetTop()
	limit := st.maxString()
	total, plain := 0, true
	for i := 1; i <= n; i++ {
		switch v := L.Get(i).(type) {
		case glua.LString:
			total += len(v)
		case glua.LNumber:
			total += 24
		default:
			plain = false
		}
	}
	if plain {
		if total > limit {
			// Numbers were counted at their widest; measure them exactly.
			total = 0
			for i := 1; i <= n; i++ {
				switch v := L.Get(i).(type) {
				case glua.LString:
					total += len(v)
				case glua.LNumber:
					total += len(numberText(v))
				}
			}
			if total > limit {
				st.tooLong(L, "string concatenation", total)
			}
		}
		var b strings.Builder
		b.Grow(total)
		for i := 1; i <= n; i++ {
			switch v := L.Get(i).(type) {
			case glua.LString:
				b.WriteString(string(v))
			case glua.LNumber:
				b.WriteString(numberText(v))
			}
		}
		L.Push(glua.LString(b.String()))
		return 1
	}
	// Slow path: some operand needs __concat. vals[0:top] holds what is left.
	vals := make([]glua.LValue, n)
	for i := range vals {
		vals[i] = L.Get(i + 1)
	}
	top := n
	for top > 1 {
		a, b := vals[top-2], vals[top-1]
		if !concatable(a) || !concatable(b) {
			mm := L.GetMetaField(a, "__concat")
			if mm == glua.LNil {
				mm = L.GetMetaField(b, "__concat")
			}
			if mm == glua.LNil {
				bad := a
				if concatable(a) {
					bad = b
				}
				L.RaiseError("attempt to concatenate a %s value", bad.Type().String())
			}
			L.Push(mm)
			L.Push(a)
			L.Push(b)
			L.Call(2, 1)
			vals[top-2] = L.Get(-1)
			L.Pop(1)
			top--
			continue
		}
		// A run of strings and numbers ending at top-1.
		first := top - 2
		for first > 0 && concatable(vals[first-1]) {
			first--
		}
		size := 0
		for _, v := range vals[first:top] {
			size += len(L.ToStringMeta(v).String())
		}
		if size > limit {
			st.tooLong(L, "string concatenation", size)
		}
		var sb strings.Builder
		sb.Grow(size)
		for _, v := range vals[first:top] {
			sb.WriteString(L.ToStringMeta(v).String())
		}
		vals[first] = glua.LString(sb.String())
		top = first + 1
	}
	L.Push(vals[0])
	return 1
}

func concatable(v glua.LValue) bool {
	switch v.(type) {
	case glua.LString, glua.LNumber:
		return true
	}
	return false
}
