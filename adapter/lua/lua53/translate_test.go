package lua53

import (
	"errors"
	"strings"
	"testing"
)

func TestTranslate(t *testing.T) {
	const (
		concat = HiddenPrefix + "concat"
		idiv   = HiddenPrefix + "idiv"
		band   = HiddenPrefix + "band"
		bor    = HiddenPrefix + "bor"
		bnot   = HiddenPrefix + "bnot"
		shl    = HiddenPrefix + "shl"
		unm    = HiddenPrefix + "unm"
		pow    = HiddenPrefix + "pow"
		mod    = HiddenPrefix + "mod"
	)
	bind := func(names ...string) string {
		l := strings.Join(names, ",")
		return "local " + l + "=" + l + ";"
	}
	for _, c := range []struct{ in, want string }{
		{"x = 1 + 2", "x = 1 + 2"},
		{"x = a // b", bind(idiv) + "x = " + idiv + "(a , b)"},
		{"x = a .. b .. c", bind(concat) + "x = " + concat + "(a , b , c)"},
		{"x = a .. (b .. c)", bind(concat) + "x = " + concat + "(a , (" + concat + "(b , c)))"},
		{"x = 1 | 2 & 3", bind(band, bor) + "x = " + bor + "(1 , " + band + "(2 , 3))"},
		{"x = ~a << 1", bind(bnot, shl) + "x = " + shl + "(" + bnot + "(a) , 1)"},
		{"x = a .. b == c", bind(concat) + "x = " + concat + "(a , b) == c"},
		{"x = 1 + 2 .. 3", bind(concat) + "x = " + concat + "(1 + 2 , 3)"},
		{"x = a ~= b", "x = a ~= b"},
		{"x = -1 - -2.5", "x = -1 - -2.5"},
		{"x = -a", bind(unm) + "x = " + unm + "(a)"},
		{"x = a % b * c", bind(mod) + "x = " + mod + "(a , b) * c"},
		{"x = a + b % c", bind(mod) + "x = a + " + mod + "(b , c)"},
		{"x = -t.n * 2", bind(unm) + "x = " + unm + "(t.n) * 2"},
		{"x = -2 ^ 2", bind(pow, unm) + "x = " + unm + "(" + pow + "(2 , 2))"},
		{"x = - -1", bind(unm) + "x = " + unm + "( -1)"},
		{"x = -(1)", bind(unm) + "x = " + unm + "((1))"},
		{"x = a .. f()", bind(concat) + "x = " + concat + "(a , (f()))"},
		{"x = a .. s:m(1) .. t.u", bind(concat) + "x = " + concat + "(a , s:m(1) , t.u)"},
		{"x = f() .. g{} .. ...", bind(concat) + "x = " + concat + "(f() , g{} , (...))"},
		{"x = a .. (f())", bind(concat) + "x = " + concat + "(a , (f()))"},
		{"x = a .. f().b", bind(concat) + "x = " + concat + "(a , f().b)"},
		{`s = "\u{48}\x49\z
		   !"`, `s = "HI!"` + "\n"},
		{`s = "plain \"quoted\""`, `s = "plain \"quoted\""`},
		{"n = 0x1p4 + 0xffffffffffffffff", "n = 16 + (-1)"},
		{"n = 9223372036854775807 + 9007199254740993", "n = 9.223372036854775e+18 + 9007199254740993"},
		{"s = [[a // b]] -- c .. d", "s = [[a // b]] -- c .. d"},
		{"#!/usr/bin/lua\nx = 1", "--#!/usr/bin/lua\nx = 1"},
	} {
		got, err := Translate([]byte(c.in))
		if err != nil {
			t.Errorf("%q: %v", c.in, err)
			continue
		}
		if string(got) != c.want {
			t.Errorf("%q:\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}

func TestTranslateErrors(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"x = 1 +", "line 1: syntax error"},
		{"x = 1\ny = \"\\q\"", "line 2: syntax error"},
		{"x = 1\n\ny = \"abc", "line 3: syntax error"},
		{"local " + HiddenPrefix + "concat = 1", "reserved"},
		{"x = \"\\u{80000000}\"", "UTF-8 value too large"},
		{"x = 1..2", "malformed number"},
		{"x = [==[ open", "unfinished long string"},
	} {
		_, err := Translate([]byte(c.in))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: error %v, want %q", c.in, err, c.want)
		}
		if err != nil && strings.Contains(c.want, "syntax") && !errors.Is(err, ErrSyntax) {
			t.Errorf("%q: %v does not wrap ErrSyntax", c.in, err)
		}
	}
}
