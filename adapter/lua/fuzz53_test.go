package lua

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzLua53Expr generates an expression from the fuzzer's bytes (the same
// bytes always give the same expression; at most 4 levels deep), runs it in
// lua5.3 and in the engine, and compares the values.
//
// Where 5.1's one number type must differ (documented in samples/lua's
// README), the reference run skips the input: an integer result beyond
// 2^53, a division or modulo by zero, a modulo of floats, a float operand
// of .., a negated zero. It finds them with a second, fully parenthesised rendering of the
// same tree whose every node goes through a check; that rendering must give
// what the minimal one gives, which also checks the precedence table the
// minimal rendering relies on against the real interpreter.
func FuzzLua53Expr(f *testing.F) {
	for _, seed := range []string{
		"\x01\x02\x03", "\x10\x20\x30\x40\x50", "\xff\xfe\xfd\xfc\xfb\xfa", "hello, world", "\x05\x0b\x11\x17\x1d\x23\x29",
		"\x03\x09\x0c\x00\x07", "\x07\x0a\x0d\x01\x02\x0b\x04", "\x02\x0e\x1a\x26\x32\x3e\x4a\x56",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		bin := lua53Binary(t)
		g := &exprGen{data: data[:min(len(data), 64)]}
		n := g.expr(4)
		minimal, checked := n.render(), n.checked()
		ref := runReference(t, bin, "local function c(x) if math.type(x) == 'integer' and (x > 2^53 or x < -2^53) then error('SKIP') end return x end "+
			"local function z(a, b) if tonumber(b) == 0 then error('SKIP') end return a end "+
			"local function zm(a, b) local x, y = tonumber(a), tonumber(b) if y == 0 or math.type(x) == 'float' or math.type(y) == 'float' then error('SKIP') end return a end "+
			"local function s(x) if math.type(x) == 'float' then error('SKIP') end return x end "+
			"local function nz(x) if x == 0 then error('SKIP') end return c(x) end "+
			"local function pw(a, b) local x, y = tonumber(a), tonumber(b) "+
			"if x and y and y > 0 and y == math.floor(y) and x ~= 0 and x == x and math.abs(x) ~= math.huge then "+
			"local m = math.abs(x) while m ~= math.floor(m) do m = m * 2 end while m >= 2 and m % 2 == 0 do m = m / 2 end "+
			"if m > 1 and m ^ y >= 2^53 then error('SKIP') end end return a end "+
			"local ok2, v2 = pcall(function() return "+checked+" end) "+
			"if not ok2 and tostring(v2):find('SKIP') then print('SKIP') return end "+
			"local ok1, v1 = pcall(function() return "+minimal+" end) "+
			"print(ok1 and fmtv(v1) or 'error') print(ok2 and fmtv(v2) or 'error')")
		if ref.failed {
			t.Fatalf("lua5.3 failed on %s: %s", minimal, ref.message)
		}
		if ref.out == "SKIP\n" {
			return
		}
		lines := strings.Split(ref.out, "\n")
		if len(lines) < 2 || lines[0] != lines[1] {
			t.Fatalf("lua5.3 gives %q for %s but %q for %s: the precedence table is wrong", lines[0], minimal, lines[1], checked)
		}
		ours := runOurs(t, "local ok1, v1 = pcall(function() return "+minimal+" end) print(ok1 and fmtv(v1) or 'error')")
		if ours.failed || ours.out != lines[0]+"\n" {
			t.Fatalf("%s: lua5.3 gives %s, rgw-nats %s", minimal, lines[0], ours)
		}
	})
}

type exprGen struct {
	data []byte
	i    int
}

func (g *exprGen) next() int {
	if g.i >= len(g.data) {
		return 0
	}
	g.i++
	return int(g.data[g.i-1])
}

var (
	fuzzLeaves = []string{"0", "1", "2", "3", "5", "7", "10", "63", "64", "255", "1000", "0x7F", "0.5", "2.5", `"3"`, `"12"`, "4", "17", "0x10", `"x"`}
	fuzzBinary = []string{"+", "-", "*", "/", "//", "%", "^", "&", "|", "~", "<<", ">>", "..", "==", "<", "<=", "~=", "and", "or"}
	fuzzUnary  = []string{"-", "~", "not"}
)

type exprNode struct {
	leaf string
	op   string
	kids []*exprNode // 1: unary, 2: binary
}

func (g *exprGen) expr(depth int) *exprNode {
	c := g.next()
	switch {
	case depth == 0 || c%6 == 0:
		return &exprNode{leaf: fuzzLeaves[g.next()%len(fuzzLeaves)]}
	case c%6 == 1:
		return &exprNode{op: fuzzUnary[g.next()%len(fuzzUnary)], kids: []*exprNode{g.expr(depth - 1)}}
	}
	op := fuzzBinary[g.next()%len(fuzzBinary)]
	return &exprNode{op: op, kids: []*exprNode{g.expr(depth - 1), g.expr(depth - 1)}}
}

// render writes the tree with only the parentheses 5.3's precedence needs.
func (n *exprNode) render() string {
	if n.leaf != "" {
		return n.leaf
	}
	if len(n.kids) == 1 {
		k := n.kids[0]
		s := k.render()
		if k.leaf == "" && (len(k.kids) == 1 || priority53[k.op][0] <= unaryPriority53) {
			s = "(" + s + ")"
		}
		return n.op + " " + s
	}
	prio := priority53[n.op]
	l, r := n.kids[0], n.kids[1]
	ls, rs := l.render(), r.render()
	if l.leaf == "" && (len(l.kids) == 1 && prio[0] > unaryPriority53 || len(l.kids) == 2 && prio[0] > priority53[l.op][1]) {
		ls = "(" + ls + ")"
	}
	if r.leaf == "" && len(r.kids) == 2 && priority53[r.op][0] <= prio[1] {
		rs = "(" + rs + ")"
	}
	return ls + " " + n.op + " " + rs
}

// checked writes the tree fully parenthesised, every value through c, the
// operands of /, //, % and .. through the checks that skip known differences.
func (n *exprNode) checked() string {
	if n.leaf != "" {
		return "c(" + n.leaf + ")"
	}
	if len(n.kids) == 1 {
		if n.op == "-" {
			// -0: 5.3's integer zero has no sign, 5.1's number does
			// ((-0) ^ -1 is inf there, -inf here; (-0) .. "" is "0" and
			// "-0"; README).
			return "nz(" + n.op + " (" + n.kids[0].checked() + "))"
		}
		return "c(" + n.op + " (" + n.kids[0].checked() + "))"
	}
	l, r := n.kids[0].checked(), n.kids[1].checked()
	switch n.op {
	case "//", "/":
		// Division by zero: 5.3's integer zero has no sign, 5.1's number
		// does (64 / -0 is inf there, -inf here; README).
		l = "z(" + l + ", " + r + ")"
	case "%":
		l = "zm(" + l + ", " + r + ")"
	case "^":
		// An integral power whose exact value needs more than 53 bits:
		// rgw-nats rounds it to the nearest double, ties to even; C's pow
		// is within 0.52 ulp and rounds an exact tie by its own error
		// (255255 ^ 3; README).
		l = "pw(" + l + ", " + r + ")"
	case "..":
		l, r = "s("+l+")", "s("+r+")"
	}
	return "c((" + l + ") " + n.op + " (" + r + "))"
}

// Lua 5.3's operator priorities (left, right), from its manual, to write
// expressions as 5.3 reads them (the translator has its own copy).
var priority53 = map[string][2]int{
	"or": {1, 1}, "and": {2, 2},
	"<": {3, 3}, ">": {3, 3}, "<=": {3, 3}, ">=": {3, 3}, "~=": {3, 3}, "==": {3, 3},
	"|": {4, 4}, "~": {5, 5}, "&": {6, 6}, "<<": {7, 7}, ">>": {7, 7},
	"..": {9, 8},
	"+":  {10, 10}, "-": {10, 10},
	"*": {11, 11}, "/": {11, 11}, "//": {11, 11}, "%": {11, 11},
	"^": {14, 13},
}

const unaryPriority53 = 12

// FuzzPatternAgainstLua53 runs string.find, match, gsub and gmatch on the
// same subject and pattern in lua5.3 and in rgw-nats: the same captures,
// positions, replacements and counts, and an error in both or in neither.
// (FuzzPatternAgainstGopherLua is faster but leaves out what gopher-lua's
// own matcher reads differently from Lua.)
func FuzzPatternAgainstLua53(f *testing.F) {
	for _, seed := range [][2]string{
		{"d/e/a.jpg", "^(.*/)([^/]*)$"}, {"0000", "[%0-0]0"}, {"0002", "[0-%0]0"}, {"a-b", "[a-]+"},
		{"hello world", "(o)(.)"}, {"f(a(b)c)d", "%b()"}, {"abab", "()(ab)%2"}, {"aaa", "a-"}, {"THE (x)", "%f[%a]%a+"},
		{"x.Created:P", "%.(%a+):"}, {"  trim  ", "^%s*(.-)%s*$"}, {"a,b,,c", "[^,]*"}, {"abc", ""}, {"ab]", "[]]"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, src, pat string) {
		// Short, and few quantifiers: lua5.3 backtracks without bound.
		if len(src) > 16 || len(pat) > 12 || strings.Count(pat, "-")+strings.Count(pat, "*")+strings.Count(pat, "+") > 3 {
			return
		}
		bin := lua53Binary(t)
		s, p := luaBytes(src), luaBytes(pat)
		code := "local function r(f, ...) local t = table.pack(pcall(f, ...)) if not t[1] then print('error') return end " +
			"show(table.unpack(t, 2, math.min(t.n, 8))) end " +
			"local function g(s, p) local t = {} for a, b in string.gmatch(s, p) do t[#t + 1] = fmtv(a) .. '|' .. fmtv(b) if #t > 20 then break end end return table.concat(t, ',') end " +
			"r(string.find, " + s + ", " + p + ") r(string.match, " + s + ", " + p + ") r(string.gsub, " + s + ", " + p + ", '<%0>') r(g, " + s + ", " + p + ")"
		ref := runReference(t, bin, code)
		if ref.failed {
			t.Fatalf("lua5.3 failed on %q %q: %s", src, pat, ref.message)
		}
		if ours := runOurs(t, code); ours.failed || ours.out != ref.out {
			t.Fatalf("string.find, match, gsub, gmatch(%q, %q): lua5.3\n%s\nrgw-nats\n%s", src, pat, ref.out, ours)
		}
	})
}

// luaBytes is s as a Lua string literal, every byte a decimal escape.
func luaBytes(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "\\%03d", s[i])
	}
	b.WriteByte('"')
	return b.String()
}

// FuzzOSDateAgainstLua53 compares os.date (a format and a time, in UTC and
// as "*t") and os.time of the table it gives with lua5.3's.
func FuzzOSDateAgainstLua53(f *testing.F) {
	for _, seed := range []struct {
		format string
		t      int64
	}{
		{"%Y-%m-%dT%H:%M:%SZ", 1700000000}, {"%c|%x|%X", 0}, {"%G-W%V-%u %j", 1609459200}, {"%U %W %a %p", -86400 * 400},
		{"%Ec %Oy %", 1}, {"%Q", 2}, {"%C%y %g %e|%I %r", -62135596800 + 86400*365*50}, {"*t", 951868800},
	} {
		f.Add(seed.format, seed.t)
	}
	f.Fuzz(func(t *testing.T, format string, secs int64) {
		if len(format) > 24 || secs > 1<<40 || secs < -(1<<40) {
			return
		}
		bin := lua53Binary(t)
		code := fmt.Sprintf("local f, s = %s, %d "+
			"local ok, v = pcall(os.date, '!' .. f, s) if not ok then print('error') elseif type(v) == 'table' then print('table') else show(v) end "+
			"local d = os.date('!*t', s) show(d.year, d.month, d.day, d.hour, d.min, d.sec, d.wday, d.yday, d.isdst) "+
			"d.isdst = false local ok2, u = pcall(os.time, d) if not ok2 then print('error') else show(os.date('%%Y-%%m-%%d %%H:%%M:%%S', u), d.yday, d.wday) end", luaBytes(format), secs)
		ref := runReference(t, bin, code)
		if ref.failed {
			t.Fatalf("lua5.3 failed on %q %d: %s", format, secs, ref.message)
		}
		if ours := runOurs(t, code); ours.failed || ours.out != ref.out {
			t.Fatalf("os.date(%q, %d): lua5.3\n%s\nrgw-nats\n%s", "!"+format, secs, ref.out, ours)
		}
	})
}
