package lua

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"

	glua "github.com/yuin/gopher-lua"
)

// testCodec returns a codec on a bare state, as the sandbox sets it up.
func testCodec(t testing.TB) *jsonCodec {
	t.Helper()
	L := glua.NewState(glua.Options{SkipOpenLibs: true})
	t.Cleanup(L.Close)
	null := L.NewUserData()
	return &jsonCodec{L: L, arrayMT: L.NewTable(), null: null}
}

func TestJSONRoundTrip(t *testing.T) {
	c := testCodec(t)
	for _, tc := range []struct{ in, want string }{
		{`{"metadata":[],"tags":[]}`, `{"metadata":[],"tags":[]}`},
		{`{}`, `{}`},
		{`[]`, `[]`},
		{`[[],{}]`, `[[],{}]`},
		{`{"size":108622}`, `{"size":108622}`},
		{`{"n":-0}`, `{"n":0}`},
		{`9007199254740993`, `9007199254740992`}, // beyond 2^53: float64 precision
		{`{"f":1.5,"e":1e300,"small":1e-7}`, `{"e":1e+300,"f":1.5,"small":1e-7}`},
		{`123456789012345678`, `123456789012345680`},
		{`[1,null,3]`, `[1,null,3]`},
		{`{"a":null}`, `{"a":null}`},
		{`"caf\u00e9 \ud83d\ude00 \n\t\"\\\/"`, `"café 😀 \n\t\"\\/"`},
		{`"<&>"`, `"<&>"`},
		{`{"b":true,"a":false}`, `{"a":false,"b":true}`},
		{` { "x" : [ 1 , 2 ] } `, `{"x":[1,2]}`},
		{`"\u0001"`, `"\u0001"`},
	} {
		v, err := c.decode([]byte(tc.in), c.null)
		if err != nil {
			t.Errorf("decode %s: %v", tc.in, err)
			continue
		}
		out, err := c.encode(v)
		if err != nil {
			t.Errorf("encode %s: %v", tc.in, err)
			continue
		}
		if string(out) != tc.want {
			t.Errorf("round trip %s = %s, want %s", tc.in, out, tc.want)
		}
	}
}

func TestJSONDecodeErrors(t *testing.T) {
	c := testCodec(t)
	for _, in := range []string{
		``, `{`, `[1,]`, `{"a"}`, `{"a":1,}`, `{a:1}`, `01`, `1.`, `1e`, `-`, `"abc`, `"\x"`,
		`"\u12"`, "\"a\x01\"", `tru`, `nul`, `[1] x`, `{"a":1}}`,
		strings.Repeat("[", maxJSONDepth+2) + strings.Repeat("]", maxJSONDepth+2),
	} {
		if _, err := c.decode([]byte(in), c.null); err == nil {
			t.Errorf("decode %q: no error", in)
		}
	}
}

func TestJSONEncodeTables(t *testing.T) {
	c := testCodec(t)
	L := c.L
	arr := L.NewTable()
	arr.Metatable = c.arrayMT
	list := L.NewTable()
	list.Append(glua.LString("a"))
	list.Append(glua.LNumber(2))
	obj := L.NewTable()
	obj.RawSetString("z", glua.LNumber(1))
	obj.RawSetString("a", list)
	obj.RawSetString("empty", arr)
	got, err := c.encode(obj)
	if err != nil || string(got) != `{"a":["a",2],"empty":[],"z":1}` {
		t.Errorf("encode = %s, %v", got, err)
	}

	mixed := L.NewTable()
	mixed.Append(glua.LNumber(1))
	mixed.RawSetString("k", glua.LNumber(2))
	sparse := L.NewTable()
	sparse.RawSetInt(1, glua.LNumber(1))
	sparse.RawSetInt(3, glua.LNumber(3))
	boolKey := L.NewTable()
	boolKey.RawSet(glua.LTrue, glua.LNumber(1))
	cycle := L.NewTable()
	cycle.RawSetString("self", cycle)
	for name, v := range map[string]glua.LValue{
		"mixed": mixed, "sparse": sparse, "bool key": boolKey, "cycle": cycle,
		"function": L.NewFunction(func(*glua.LState) int { return 0 }),
		"NaN":      glua.LNumber(math.NaN()), "Inf": glua.LNumber(math.Inf(1)),
	} {
		if out, err := c.encode(v); err == nil {
			t.Errorf("encode %s = %s, want an error", name, out)
		}
	}
}

// FuzzJSON checks that the decoder never panics and that whatever it accepts
// encodes back to the same JSON value.
func FuzzJSON(f *testing.F) {
	for _, s := range []string{
		`{"Records":[{"s3":{"object":{"key":"a b","size":1,"metadata":[],"tags":[{"key":"k","val":"v"}]}}}]}`,
		`[1,2.5,-3e-2,"x",true,false,null,{},[]]`, `"\ud83d\ude00"`, `{"a":{"b":{"c":[]}}}`,
	} {
		f.Add([]byte(s))
	}
	c := testCodec(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := c.decode(data, c.null)
		if err != nil {
			return
		}
		out, err := c.encode(v)
		if err != nil {
			t.Fatalf("encode of decoded %q: %v", data, err)
		}
		// The tables the fast path builds are those of RawSetString.
		if fast, ok := v.(*glua.LTable); ok {
			var slow glua.LValue
			withLayout(false, func() { slow, _ = c.decode(data, c.null) })
			if f, s := walk(fast), walk(slow.(*glua.LTable)); f != s {
				t.Fatalf("tables of %q differ:\nfast %s\nslow %s", data, f, s)
			}
		}
		var want, got any
		if err := json.Unmarshal(data, &want); err != nil {
			// Only invalid UTF-8 inside strings is accepted here and
			// refused by encoding/json.
			return
		}
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("re-encoded %q is not JSON: %q: %v", data, out, err)
		}
		if !reflect.DeepEqual(normalize(want), normalize(got)) {
			t.Fatalf("round trip of %q gave %q", data, out)
		}
	})
}

// normalize maps values to what survives a Lua round trip: numbers as
// float64, strings with invalid UTF-8 replaced as json.Marshal would.
func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = normalize(e)
		}
	case []any:
		for i, e := range v {
			v[i] = normalize(e)
		}
	case string:
		return strings.ToValidUTF8(v, "\ufffd")
	}
	return v
}
