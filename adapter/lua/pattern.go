package lua

import (
	"strings"

	glua "github.com/yuin/gopher-lua"
)

// Lua 5.3 pattern matching for string.find, match, gmatch and gsub.
//
// gopher-lua's own matcher backtracks without bound inside one built-in
// call, where the deadline is never checked: ("a"):rep(40):find(("a-"):rep(8)
// .. "b") runs for a minute. This one counts its steps and stops when the
// call's deadline has passed, and it allocates nothing but the captures it
// returns.

const (
	maxCaptures   = 32
	capUnfinished = -1
	capPosition   = -2
	// maxMatchDepth bounds the recursion of one match (Lua 5.2 and later
	// have the same limit).
	maxMatchDepth = 200
	// stepsPerCheck is how often the deadline is looked at.
	stepsPerCheck = 1024
)

type patternError string

type matcher struct {
	src, pat string
	level    int
	capture  [maxCaptures]struct{ init, len int }
	depth    int
	steps    int
	expired  func() bool
}

// run calls f, turning a pattern error raised inside into an error message.
func (m *matcher) run(L *glua.LState, f func()) {
	var msg patternError
	func() {
		defer func() {
			if r := recover(); r != nil {
				e, ok := r.(patternError)
				if !ok {
					panic(r)
				}
				msg = e
			}
		}()
		f()
	}()
	if msg != "" {
		L.RaiseError("%s", string(msg))
	}
}

func (m *matcher) tick() {
	m.steps++
	if m.steps%stepsPerCheck == 0 && m.expired() {
		panic(patternError("pattern matching ran past the deadline"))
	}
}

func (m *matcher) classEnd(p int) int {
	pat := m.pat
	if p >= len(pat) {
		panic(patternError("malformed pattern (ends with '%')"))
	}
	c := pat[p]
	p++
	switch c {
	case '%':
		if p >= len(pat) {
			panic(patternError("malformed pattern (ends with '%')"))
		}
		return p + 1
	case '[':
		if p < len(pat) && pat[p] == '^' {
			p++
		}
		// The first character of a set is never its end: "[]]" holds ']'.
		for {
			if p >= len(pat) {
				panic(patternError("malformed pattern (missing ']')"))
			}
			c := pat[p]
			p++
			if c == '%' && p < len(pat) {
				p++
			}
			if p >= len(pat) {
				panic(patternError("malformed pattern (missing ']')"))
			}
			if pat[p] == ']' {
				return p + 1
			}
		}
	}
	return p
}

func isLower(c byte) bool { return c >= 'a' && c <= 'z' }
func isUpper(c byte) bool { return c >= 'A' && c <= 'Z' }
func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func isAlpha(c byte) bool { return isLower(c) || isUpper(c) }
func isSpace(c byte) bool { return c == ' ' || c >= '\t' && c <= '\r' }
func isCntrl(c byte) bool { return c < 0x20 || c == 0x7f }
func isPunct(c byte) bool { return c > 0x20 && c < 0x7f && !isAlpha(c) && !isDigit(c) }
func isXDigit(c byte) bool {
	return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// classMatches tells whether c is in the class %cl (C locale).
func classMatches(c, cl byte) bool {
	var res bool
	switch cl | 0x20 {
	case 'a':
		res = isAlpha(c)
	case 'c':
		res = isCntrl(c)
	case 'd':
		res = isDigit(c)
	case 'g':
		res = c > 0x20 && c < 0x7f
	case 'l':
		res = isLower(c)
	case 'p':
		res = isPunct(c)
	case 's':
		res = isSpace(c)
	case 'u':
		res = isUpper(c)
	case 'w':
		res = isAlpha(c) || isDigit(c)
	case 'x':
		res = isXDigit(c)
	case 'z':
		res = c == 0
	default:
		return cl == c
	}
	if isUpper(cl) {
		return !res
	}
	return res
}

// setMatches tells whether c is in the set pat[p:ec+1], p at '[' and ec at ']'.
func (m *matcher) setMatches(c byte, p, ec int) bool {
	pat := m.pat
	in := true
	if pat[p+1] == '^' {
		in = false
		p++
	}
	for p++; p < ec; p++ {
		switch {
		case pat[p] == '%':
			p++
			if classMatches(c, pat[p]) {
				return in
			}
		case pat[p+1] == '-' && p+2 < ec:
			p += 2
			if pat[p-2] <= c && c <= pat[p] {
				return in
			}
		case pat[p] == c:
			return in
		}
	}
	return !in
}

// single tells whether src[s] matches the single-character class pat[p:ep].
func (m *matcher) single(s, p, ep int) bool {
	if s >= len(m.src) {
		return false
	}
	c := m.src[s]
	switch m.pat[p] {
	case '.':
		return true
	case '%':
		return classMatches(c, m.pat[p+1])
	case '[':
		return m.setMatches(c, p, ep-1)
	}
	return m.pat[p] == c
}

// match matches pat[p:] at src[s:] and returns the end of the match, or -1.
func (m *matcher) match(s, p int) int {
	m.tick()
	m.depth++
	if m.depth > maxMatchDepth {
		panic(patternError("pattern too complex"))
	}
	r := m.doMatch(s, p)
	m.depth--
	return r
}

func (m *matcher) doMatch(s, p int) int {
	pat := m.pat
	for {
		if p == len(pat) {
			return s
		}
		switch pat[p] {
		case '(':
			if p+1 < len(pat) && pat[p+1] == ')' {
				return m.startCapture(s, p+2, capPosition)
			}
			return m.startCapture(s, p+1, capUnfinished)
		case ')':
			return m.endCapture(s, p+1)
		case '$':
			if p+1 == len(pat) {
				if s == len(m.src) {
					return s
				}
				return -1
			}
		case '%':
			if p+1 < len(pat) {
				switch next := pat[p+1]; {
				case next == 'b':
					if s = m.balance(s, p+2); s == -1 {
						return -1
					}
					p += 4
					continue
				case next == 'f':
					p += 2
					if p >= len(pat) || pat[p] != '[' {
						panic(patternError("missing '[' after '%f' in pattern"))
					}
					ep := m.classEnd(p)
					var prev, cur byte
					if s > 0 {
						prev = m.src[s-1]
					}
					if s < len(m.src) {
						cur = m.src[s]
					}
					if m.setMatches(prev, p, ep-1) || !m.setMatches(cur, p, ep-1) {
						return -1
					}
					p = ep
					continue
				case isDigit(next):
					if s = m.backReference(s, next); s == -1 {
						return -1
					}
					p += 2
					continue
				}
			}
		}
		ep := m.classEnd(p)
		ok := m.single(s, p, ep)
		if ep < len(pat) {
			switch pat[ep] {
			case '?':
				if ok {
					if r := m.match(s+1, ep+1); r != -1 {
						return r
					}
				}
				p = ep + 1
				continue
			case '*':
				return m.maxExpand(s, p, ep)
			case '+':
				if !ok {
					return -1
				}
				return m.maxExpand(s+1, p, ep)
			case '-':
				return m.minExpand(s, p, ep)
			}
		}
		if !ok {
			return -1
		}
		s++
		p = ep
	}
}

func (m *matcher) maxExpand(s, p, ep int) int {
	i := 0
	for m.single(s+i, p, ep) {
		i++
	}
	// What follows may need one byte where it starts ("(.*/)",
	// "([^/]+)/") or the end of the subject ("([^/]*)$"): the positions
	// without it are not tried.
	need := m.required(ep + 1)
	if need.end {
		if e := len(m.src) - s; e >= 0 && e <= i {
			return m.match(s+e, ep+1)
		}
		return -1
	}
	for ; i >= 0; i-- {
		if need.byte && (s+i >= len(m.src) || m.src[s+i] != need.c) {
			continue
		}
		if r := m.match(s+i, ep+1); r != -1 {
			return r
		}
	}
	return -1
}

// requirement is what a pattern needs where its rest starts: one given
// byte, the end of the subject, or nothing known.
type requirement struct {
	c    byte
	byte bool
	end  bool
}

// required tells what the pattern from p needs at the position it is
// tried at, looking past capture marks (they consume nothing:
// "([^_]-)(%.[^._]+)$" needs a '.'). Only what cannot raise an error when
// tried is looked past: a ')' closing a capture that is open, a '(' within
// the capture limit, and no deeper than the depth limit; so skipping a
// position changes nothing but the time taken.
func (m *matcher) required(p int) requirement {
	pat := m.pat
	open := 0
	for i := range m.level {
		if m.capture[i].len == capUnfinished {
			open++
		}
	}
	level, depth := m.level, m.depth+1
	for p < len(pat) && (pat[p] == '(' || pat[p] == ')') {
		switch {
		case pat[p] == ')':
			if open == 0 {
				return requirement{}
			}
			open--
			p++
		case level >= maxCaptures:
			return requirement{}
		case p+1 < len(pat) && pat[p+1] == ')':
			level++
			p += 2
		default:
			level++
			open++
			p++
		}
		depth++
	}
	if depth > maxMatchDepth {
		return requirement{}
	}
	if p == len(pat)-1 && pat[p] == '$' {
		return requirement{end: true}
	}
	c, ok := m.literal(p)
	return requirement{c: c, byte: ok}
}

// literal reports whether the pattern item at p matches exactly one given
// byte, at least once (a plain or escaped character, not followed by '*',
// '-' or '?'), and which.
func (m *matcher) literal(p int) (byte, bool) {
	pat := m.pat
	if p >= len(pat) {
		return 0, false
	}
	c, end := pat[p], p+1
	switch {
	case c == '%':
		if p+1 >= len(pat) || isAlpha(pat[p+1]) || isDigit(pat[p+1]) {
			return 0, false // a class, %b, %f or a back reference
		}
		c, end = pat[p+1], p+2
	case strings.IndexByte("^$*+?.([-])", c) >= 0:
		return 0, false
	}
	if end < len(pat) && strings.IndexByte("*-?", pat[end]) >= 0 {
		return 0, false
	}
	return c, true
}

func (m *matcher) minExpand(s, p, ep int) int {
	need := m.required(ep + 1)
	for {
		if need.end && s != len(m.src) || need.byte && (s >= len(m.src) || m.src[s] != need.c) {
			// the rest cannot match here
		} else if r := m.match(s, ep+1); r != -1 {
			return r
		}
		if !m.single(s, p, ep) {
			return -1
		}
		s++
	}
}

func (m *matcher) startCapture(s, p, what int) int {
	if m.level >= maxCaptures {
		panic(patternError("too many captures"))
	}
	m.capture[m.level].init = s
	m.capture[m.level].len = what
	m.level++
	r := m.match(s, p)
	if r == -1 {
		m.level--
	}
	return r
}

func (m *matcher) endCapture(s, p int) int {
	l := -1
	for i := m.level - 1; i >= 0; i-- {
		if m.capture[i].len == capUnfinished {
			l = i
			break
		}
	}
	if l < 0 {
		panic(patternError("invalid pattern capture"))
	}
	m.capture[l].len = s - m.capture[l].init
	r := m.match(s, p)
	if r == -1 {
		m.capture[l].len = capUnfinished
	}
	return r
}

func (m *matcher) balance(s, p int) int {
	if p+1 >= len(m.pat) {
		panic(patternError("missing arguments to '%b'"))
	}
	if s >= len(m.src) || m.src[s] != m.pat[p] {
		return -1
	}
	open, closing := m.pat[p], m.pat[p+1]
	depth := 1
	for i := s + 1; i < len(m.src); i++ {
		switch m.src[i] {
		case closing:
			if depth--; depth == 0 {
				return i + 1
			}
		case open:
			depth++
		}
	}
	return -1
}

func (m *matcher) backReference(s int, d byte) int {
	i := int(d - '1')
	if i < 0 || i >= m.level || m.capture[i].len == capUnfinished {
		panic(patternError("invalid capture index"))
	}
	if m.capture[i].len == capPosition {
		return -1 // as Lua: a position is no text to match ("()%1")
	}
	c := m.src[m.capture[i].init : m.capture[i].init+m.capture[i].len]
	if strings.HasPrefix(m.src[s:], c) {
		return s + len(c)
	}
	return -1
}

// captureValue returns capture i of the match src[s:e]; capture 0 of a
// pattern without captures is the whole match.
func (m *matcher) captureValue(i, s, e int) glua.LValue {
	if i >= m.level {
		if i != 0 {
			panic(patternError("invalid capture index"))
		}
		return glua.LString(m.src[s:e])
	}
	c := m.capture[i]
	switch c.len {
	case capUnfinished:
		panic(patternError("unfinished capture"))
	case capPosition:
		return glua.LNumber(c.init + 1)
	}
	return glua.LString(m.src[c.init : c.init+c.len])
}

// pushCaptures pushes the captures, or the whole match when the pattern has
// none and whole is set, and returns how many it pushed.
func (m *matcher) pushCaptures(L *glua.LState, s, e int, whole bool) int {
	n := m.level
	if n == 0 && whole {
		n = 1
	}
	for i := range n {
		L.Push(m.captureValue(i, s, e))
	}
	return n
}

func (st *state) newMatcher(src, pat string) *matcher {
	return &matcher{src: src, pat: pat, expired: st.deadline.expired.Load}
}

// startIndex turns Lua's init argument into a 0-based offset within s.
func startIndex(init, n int) int {
	if init < 0 {
		init = n + init + 1
	}
	return min(max(init-1, 0), n)
}

func (st *state) strFind(L *glua.LState) int  { return st.find(L, true) }
func (st *state) strMatch(L *glua.LState) int { return st.find(L, false) }

func (st *state) find(L *glua.LState, find bool) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	// As Lua 5.3: a start past the end finds nothing (5.1 started at the end).
	start := L.OptInt(3, 1)
	if start > len(src)+1 {
		L.Push(glua.LNil)
		return 1
	}
	init := startIndex(start, len(src))
	if find && (glua.LVAsBool(L.Get(4)) || !strings.ContainsAny(pat, "^$*+?.([%-")) {
		if i := strings.Index(src[init:], pat); i >= 0 {
			L.Push(glua.LNumber(init + i + 1))
			L.Push(glua.LNumber(init + i + len(pat)))
			return 2
		}
		L.Push(glua.LNil)
		return 1
	}
	// find calls no Lua code while it matches, so one matcher per state
	// serves every call (gsub and gmatch, which do or which outlive the
	// call, have their own).
	m := &st.findMatcher
	expired := m.expired
	if expired == nil {
		expired = st.deadline.expired.Load
	}
	*m = matcher{src: src, pat: pat, expired: expired}
	defer func() { m.src, m.pat = "", "" }() // do not pin the subject
	n := 0
	m.run(L, func() {
		p, anchor := 0, strings.HasPrefix(pat, "^")
		if anchor {
			p = 1
		}
		// A pattern that starts with a given byte can only match where
		// that byte is ("%.(%a+):").
		lit, must := m.literal(p)
		for s := init; ; s++ {
			if must && !anchor {
				j := strings.IndexByte(src[s:], lit)
				if j < 0 {
					return
				}
				s += j
			}
			m.level = 0
			if e := m.match(s, p); e != -1 {
				if find {
					L.Push(glua.LNumber(s + 1))
					L.Push(glua.LNumber(e))
					n = 2 + m.pushCaptures(L, s, e, false)
				} else {
					n = m.pushCaptures(L, s, e, true)
				}
				return
			}
			if s >= len(src) || anchor {
				return
			}
		}
	})
	if n == 0 {
		L.Push(glua.LNil)
		return 1
	}
	return n
}

func (st *state) strGmatch(L *glua.LState) int {
	src := L.CheckString(1)
	m := st.newMatcher(src, L.CheckString(2))
	pos, last := 0, -1
	L.Push(L.NewFunction(func(L *glua.LState) int {
		n := 0
		m.run(L, func() {
			for s := pos; s <= len(src); s++ {
				m.level = 0
				// As Lua 5.3: no empty match where the last match ended.
				if e := m.match(s, 0); e != -1 && e != last {
					pos, last = e, e
					n = m.pushCaptures(L, s, e, true)
					return
				}
			}
			pos = len(src) + 1
		})
		return n
	}))
	return 1
}

// strGsub is string.gsub with a bounded result. (gopher-lua's copies the
// whole string once per match.)
func (st *state) strGsub(L *glua.LState) int {
	src := L.CheckString(1)
	pat := L.CheckString(2)
	L.CheckTypes(3, glua.LTString, glua.LTTable, glua.LTFunction)
	repl := L.Get(3)
	maxN := L.OptInt(4, len(src)+1)
	limit := st.maxString()
	m := st.newMatcher(src, pat)
	var out []byte
	n := 0
	m.run(L, func() {
		p, anchor := 0, strings.HasPrefix(pat, "^")
		if anchor {
			p = 1
		}
		s, last := 0, -1
		for n < maxN {
			m.level = 0
			// As Lua 5.3: no empty match where the last match ended
			// (5.1 replaced one there too: ("a,b"):gsub("[^,]*", "x") is
			// "x,x" here, "xx,xx" in 5.1).
			if e := m.match(s, p); e != -1 && e != last {
				n++
				out = st.replace(L, m, out, s, e, repl)
				s, last = e, e
			} else if s < len(src) {
				out = append(out, src[s])
				s++
			} else {
				break
			}
			if len(out) > limit {
				st.tooLong(L, "string.gsub", len(out))
			}
			if anchor {
				break
			}
		}
		if s < len(src) {
			out = append(out, src[s:]...)
		}
	})
	if len(out) > limit {
		st.tooLong(L, "string.gsub", len(out))
	}
	L.Push(glua.LString(out))
	L.Push(glua.LNumber(n))
	return 2
}

// replace appends the replacement of the match src[s:e].
func (st *state) replace(L *glua.LState, m *matcher, out []byte, s, e int, repl glua.LValue) []byte {
	var v glua.LValue
	switch r := repl.(type) {
	case glua.LString:
		for i := 0; i < len(r); i++ {
			c := r[i]
			if c != '%' {
				out = append(out, c)
				continue
			}
			// As Lua 5.3: '%' is followed by a digit or by '%' (5.1 took
			// any other byte as itself).
			if i++; i == len(r) {
				panic(patternError("invalid use of '%' in replacement string"))
			}
			switch c = r[i]; {
			case c == '0':
				out = append(out, m.src[s:e]...)
			case isDigit(c):
				out = append(out, glua.LVAsString(m.captureValue(int(c-'1'), s, e))...)
			case c == '%':
				out = append(out, c)
			default:
				panic(patternError("invalid use of '%' in replacement string"))
			}
		}
		return out
	case *glua.LTable:
		v = L.GetTable(r, m.captureValue(0, s, e))
	case *glua.LFunction:
		L.Push(r)
		n := m.pushCaptures(L, s, e, true)
		L.Call(n, 1)
		v = L.Get(-1)
		L.Pop(1)
	}
	switch v := v.(type) {
	case *glua.LNilType:
		return append(out, m.src[s:e]...)
	case glua.LBool:
		if !v {
			return append(out, m.src[s:e]...)
		}
	case glua.LString, glua.LNumber:
		return append(out, glua.LVAsString(v)...)
	}
	panic(patternError("invalid replacement value (a " + v.Type().String() + ")"))
}
