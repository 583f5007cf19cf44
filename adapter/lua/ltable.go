package lua

import (
	"reflect"
	"unsafe"

	glua "github.com/yuin/gopher-lua"
)

// Building a decoded JSON object through LTable.RawSetString costs, per key,
// two or three allocations for boxing the key (gopher-lua keeps every key in
// three places: a map by string, a slice in insertion order for next, and a
// map from key to position) and the growth of all three as keys arrive. The
// JSON codec knows every key of an object before it builds the table, so it
// fills the table's fields itself: each at its final size, with keys boxed
// once per state and shared. The result is the very table RawSetString would
// have made, key order for next included; only the capacities differ.
//
// ltFields mirrors the fields of glua.LTable. ltLayout is checked against
// the real type once, field by field (name, type, offset); when gopher-lua
// changes them, the codec silently uses RawSetString and RawGetString again
// (and TestLTableLayout fails, so that the change is seen).
type ltFields struct {
	Metatable glua.LValue

	array   []glua.LValue
	dict    map[glua.LValue]glua.LValue
	strdict map[string]glua.LValue
	keys    []glua.LValue
	k2i     map[glua.LValue]int
}

var ltLayout = ltLayoutMatches(reflect.TypeFor[glua.LTable](), reflect.TypeFor[ltFields]())

func ltLayoutMatches(real, mirror reflect.Type) bool {
	if real.Size() != mirror.Size() || real.NumField() != mirror.NumField() {
		return false
	}
	for i := range real.NumField() {
		r, m := real.Field(i), mirror.Field(i)
		if r.Name != m.Name || r.Type != m.Type || r.Offset != m.Offset {
			return false
		}
	}
	return true
}

// fieldsOf gives access to the fields of t; only when ltLayout is true.
func fieldsOf(t *glua.LTable) *ltFields { return (*ltFields)(unsafe.Pointer(t)) }
