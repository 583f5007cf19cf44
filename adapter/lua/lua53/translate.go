// Package lua53 is the Lua 5.3 front end of the Lua engine (adapter/lua):
// gopher-lua parses Lua 5.1, scripts written for RGW are Lua 5.3, and
// Translate rewrites what the 5.1 parser does not know into what it does,
// line for line. The engine binds the helpers the translation calls
// (Helper, BNotHelper, UnmHelper) and the 5.3 library.
//
// It knows only Lua source text: it must not import gopher-lua, any other
// rgw-nats package, NATS or CloudEvents.
package lua53

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// The Lua 5.3 front end. gopher-lua parses Lua 5.1; scripts written for RGW
// are Lua 5.3. translate rewrites what the 5.1 parser does not know into
// what it does, once per script load:
//
//   - a // b, a & b, a | b, a ~ b, a << b, a >> b and ~a become calls of
//     hidden helpers (ops53.go), with 5.3's precedence, which fall back to
//     the __idiv, __band, ... metamethods as 5.3 does;
//   - -a becomes a call of a helper too, unless a is a numeral: gopher-lua
//     reads a string operand of unary minus with Go's number syntax
//     (octal "010", "1_0", "0b1"), not 5.3's;
//   - a ^ b becomes a call of a helper too: gopher-lua computes (and folds
//     constants of) ^ with Go's math.Pow, which is not correctly rounded
//     as the C pow of Lua 5.3 is (64 ^ 2.5 would be 32767.999999999993);
//   - a % b too: gopher-lua's float modulo gives -64 % 64 the sign of -64
//     (it printed -0) and 1 % 0 NaN, where 5.3's integer modulo gives 0
//     and an error;
//   - a .. b .. c becomes one call of the concat helper, which refuses
//     results longer than the engine's string limit (gopher-lua's own ..
//     has no size hook) and builds a chain with one allocation;
//   - string literals with \x, \z, \u{XXXX} escapes are re-encoded with
//     decimal escapes; hexadecimal floats and hexadecimal integers that
//     wrap around 64 bits become decimal numbers.
//
// Every token of the source stays where it was, in the same order, and the
// translator adds no newline: the helper name and its parenthesis go in
// front of the left operand, the operator becomes a comma, and a closing
// parenthesis follows the right operand. So the line of every token, and
// of every error, is the user's line. The helpers are bound to locals on
// the first line, so that calling one costs an upvalue read, not a global
// lookup, and a script that assigns a global of the same name changes
// nothing.

// HiddenPrefix starts the names of the helpers; scripts may not use it.
const HiddenPrefix = "__rgwnats_"

// The helpers the translation calls, by operator.
var opHelper = map[string]string{
	"//": HiddenPrefix + "idiv",
	"&":  HiddenPrefix + "band",
	"|":  HiddenPrefix + "bor",
	"~":  HiddenPrefix + "bxor",
	"<<": HiddenPrefix + "shl",
	">>": HiddenPrefix + "shr",
	"..": HiddenPrefix + "concat",
	"^":  HiddenPrefix + "pow",
	"%":  HiddenPrefix + "mod",
}

// BNotHelper is the helper unary ~a becomes.
const BNotHelper = HiddenPrefix + "bnot"

// UnmHelper is the helper unary -a becomes, unless a is a numeral:
// gopher-lua negates a string by reading it with Go's rules, so -"010"
// would be -8 (octal) and -"1_0" -10, where 5.3 gives -10 and an error.
const UnmHelper = HiddenPrefix + "unm"

// Helper is the name of the helper that the binary operator op (//, &, |,
// ~, <<, >>, .., ^ or %) becomes; "" for the operators gopher-lua keeps.
func Helper(op string) string { return opHelper[op] }

// Lua 5.3's binary operator priorities (left, right), from its manual.
var binPriority = map[string][2]int{
	"or": {1, 1}, "and": {2, 2},
	"<": {3, 3}, ">": {3, 3}, "<=": {3, 3}, ">=": {3, 3}, "~=": {3, 3}, "==": {3, 3},
	"|": {4, 4}, "~": {5, 5}, "&": {6, 6}, "<<": {7, 7}, ">>": {7, 7},
	"..": {9, 8}, // right associative
	"+":  {10, 10}, "-": {10, 10},
	"*": {11, 11}, "/": {11, 11}, "//": {11, 11}, "%": {11, 11},
	"^": {14, 13}, // right associative
}

const unaryPriority = 12

// ErrSyntax is wrapped by translation errors.
var ErrSyntax = errors.New("syntax error")

// Translate turns Lua 5.3 source into source that gopher-lua parses and
// that means the same, line for line.
func Translate(src []byte) ([]byte, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, edits: make([]edit, len(toks)), used: map[string]bool{}}
	if err := p.chunk(); err != nil {
		return nil, err
	}
	return p.emit(src), nil
}

type tokKind uint8

const (
	tEOF tokKind = iota
	tName
	tKeyword
	tNumber
	tString
	tOp
)

type token struct {
	kind       tokKind
	start, end int // byte offsets in the source
	line       int
	text       string // the token as written (operators, names, keywords)
	// repl replaces a string or number literal that gopher-lua would read
	// differently; lines is how many newlines the literal spanned, to be
	// written after it.
	repl  string
	lines int
}

var keywords = map[string]bool{
	"and": true, "break": true, "do": true, "else": true, "elseif": true, "end": true,
	"false": true, "for": true, "function": true, "goto": true, "if": true, "in": true,
	"local": true, "nil": true, "not": true, "or": true, "repeat": true, "return": true,
	"then": true, "true": true, "until": true, "while": true,
}

var operators3 = []string{"..."}
var operators2 = []string{"..", "==", "~=", "<=", ">=", "<<", ">>", "//", "::"}

const operators1 = "+-*/%^#&~|<>=(){}[];:,."

type lexer struct {
	src  []byte
	pos  int
	line int
	toks []token
}

func lex(src []byte) ([]token, error) {
	lx := &lexer{src: src, line: 1}
	if len(src) > 0 && src[0] == '#' { // a first line "#!..." is skipped, as lua does
		for lx.pos < len(src) && src[lx.pos] != '\n' {
			lx.pos++
		}
	}
	for {
		if err := lx.skip(); err != nil {
			return nil, err
		}
		if lx.pos >= len(src) {
			lx.toks = append(lx.toks, token{kind: tEOF, start: lx.pos, end: lx.pos, line: lx.line})
			return lx.toks, nil
		}
		if err := lx.next(); err != nil {
			return nil, err
		}
	}
}

func (lx *lexer) errorf(format string, args ...any) error {
	return fmt.Errorf("line %d: %w: %s", lx.line, ErrSyntax, fmt.Sprintf(format, args...))
}

// lineBreak counts the line break c that was just passed, and passes the
// other half of a "\r\n" or "\n\r" pair: Lua's lexer counts either pair,
// and a lone "\r" or "\n", as one line.
func (lx *lexer) lineBreak(c byte) {
	if src := lx.src; lx.pos < len(src) && (src[lx.pos] == '\n' || src[lx.pos] == '\r') && src[lx.pos] != c {
		lx.pos++
	}
	lx.line++
}

// skip passes whitespace and comments.
func (lx *lexer) skip() error {
	src := lx.src
	for lx.pos < len(src) {
		c := src[lx.pos]
		switch {
		case c == '\n':
			lx.line++
			lx.pos++
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			lx.pos++
		case c == '-' && lx.pos+1 < len(src) && src[lx.pos+1] == '-':
			lx.pos += 2
			if level, ok := longBracket(src, lx.pos); ok {
				if err := lx.longString(level); err != nil {
					return err
				}
				continue
			}
			for lx.pos < len(src) && src[lx.pos] != '\n' {
				lx.pos++
			}
		default:
			return nil
		}
	}
	return nil
}

// longBracket reports whether a long bracket [[, [=[, ... opens at i.
func longBracket(src []byte, i int) (level int, ok bool) {
	if i >= len(src) || src[i] != '[' {
		return 0, false
	}
	j := i + 1
	for j < len(src) && src[j] == '=' {
		j++
	}
	if j < len(src) && src[j] == '[' {
		return j - i - 1, true
	}
	return 0, false
}

// longString passes a long string or comment whose bracket opens at pos.
func (lx *lexer) longString(level int) error {
	start := lx.line
	lx.pos += level + 2
	closing := "]" + strings.Repeat("=", level) + "]"
	for lx.pos < len(lx.src) {
		if lx.src[lx.pos] == '\n' {
			lx.line++
		}
		if lx.src[lx.pos] == ']' && string(lx.src[lx.pos:min(len(lx.src), lx.pos+len(closing))]) == closing {
			lx.pos += len(closing)
			return nil
		}
		lx.pos++
	}
	return fmt.Errorf("line %d: %w: unfinished long string or comment", start, ErrSyntax)
}

// IsNameStart tells whether c may start a Lua name.
func IsNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func (lx *lexer) next() error {
	src := lx.src
	start, line := lx.pos, lx.line
	c := src[lx.pos]
	tok := token{start: start, line: line}
	switch {
	case IsNameStart(c):
		for lx.pos < len(src) && (IsNameStart(src[lx.pos]) || isDigit(src[lx.pos])) {
			lx.pos++
		}
		tok.text = string(src[start:lx.pos])
		tok.kind = tName
		if keywords[tok.text] {
			tok.kind = tKeyword
		} else if strings.HasPrefix(tok.text, HiddenPrefix) {
			return lx.errorf("names starting with %s are reserved for rgw-nats", HiddenPrefix)
		}
	case isDigit(c) || c == '.' && lx.pos+1 < len(src) && isDigit(src[lx.pos+1]):
		if err := lx.number(&tok); err != nil {
			return err
		}
	case c == '"' || c == '\'':
		if err := lx.shortString(&tok); err != nil {
			return err
		}
	case c == '[':
		if level, ok := longBracket(src, lx.pos); ok {
			if err := lx.longString(level); err != nil {
				return err
			}
			tok.kind = tString
			break
		}
		fallthrough
	default:
		tok.kind = tOp
		rest := src[lx.pos:]
		for _, ops := range [][]string{operators3, operators2} {
			for _, op := range ops {
				if len(rest) >= len(op) && string(rest[:len(op)]) == op {
					tok.text = op
					break
				}
			}
			if tok.text != "" {
				break
			}
		}
		if tok.text == "" {
			i := strings.IndexByte(operators1, c)
			if i < 0 {
				return lx.errorf("unexpected symbol %q", c)
			}
			tok.text = operators1[i : i+1]
		}
		lx.pos += len(tok.text)
	}
	tok.end = lx.pos
	lx.toks = append(lx.toks, tok)
	return nil
}

// number reads a numeral as Lua 5.3 does and rewrites the ones gopher-lua
// reads differently: hexadecimal floats, and hexadecimal integers of 2^63
// and more, which wrap around in 5.3.
func (lx *lexer) number(tok *token) error {
	src := lx.src
	start := lx.pos
	hex := src[start] == '0' && start+1 < len(src) && (src[start+1] == 'x' || src[start+1] == 'X')
	expo := byte('e')
	if hex {
		expo = 'p'
		lx.pos += 2
	}
	for lx.pos < len(src) {
		c := src[lx.pos] | 0x20 // lower case letters
		switch {
		case c == expo && lx.pos+1 < len(src) && (src[lx.pos+1] == '+' || src[lx.pos+1] == '-'):
			lx.pos += 2
			continue
		case isDigit(src[lx.pos]) || src[lx.pos] == '.' || c >= 'a' && c <= 'z' || src[lx.pos] == '_':
			lx.pos++
			continue
		}
		break
	}
	tok.kind = tNumber
	text := string(src[start:lx.pos])
	tok.text = text
	if !hex {
		f, err := strconv.ParseFloat(text, 64)
		if err != nil && !errors.Is(err, strconv.ErrRange) {
			return lx.errorf("malformed number near %q", text)
		}
		// An integer numeral just below 2^63 is an integer in 5.3; as a
		// double it would round up to 2^63, which prints negative.
		if u, err := strconv.ParseUint(text, 10, 64); err == nil && u < 1<<63 && f > MaxIntFloat {
			tok.repl = numberLiteral(MaxIntFloat)
		}
		return nil
	}
	digits := text[2:]
	if !strings.ContainsAny(digits, ".pP") {
		var u uint64
		for i := 0; i < len(digits); i++ {
			if !isXDigit(digits[i]) {
				return lx.errorf("malformed number near %q", text)
			}
			d, _ := strconv.ParseUint(digits[i:i+1], 16, 8)
			u = u<<4 | d // wraps around, as in Lua 5.3
		}
		if digits == "" {
			return lx.errorf("malformed number near %q", text)
		}
		if u >= 1<<53 {
			tok.repl = numberLiteral(IntToNumber(int64(u)))
		}
		return nil
	}
	g := text
	if !strings.ContainsAny(digits, "pP") {
		g += "p0"
	}
	f, err := strconv.ParseFloat(g, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || strings.HasPrefix(digits, "p") || strings.HasPrefix(digits, "P") {
		return lx.errorf("malformed number near %q", text)
	}
	tok.repl = numberLiteral(f)
	return nil
}

// numberLiteral writes f as a numeral gopher-lua reads back exactly; a
// negative one is parenthesised, so that x-(-1) does not become a comment.
func numberLiteral(f float64) string {
	var s string
	switch {
	case math.IsInf(f, 1):
		return "(1/0)"
	case math.IsInf(f, -1):
		return "(-1/0)"
	case f == math.Trunc(f) && math.Abs(f) < 1<<53:
		s = strconv.FormatInt(int64(f), 10)
	default:
		s = strconv.FormatFloat(f, 'g', -1, 64)
	}
	if f < 0 || f == 0 && math.Signbit(f) {
		return "(" + s + ")"
	}
	return s
}

// shortString reads a quoted string with Lua 5.3's escapes. One with only
// the escapes of 5.1 is left as written; one with \x, \z, \u{XXXX} or an
// escaped line break is written again with decimal escapes only, and the newlines it spanned (\ newline, \z) follow
// it, so that the next token stays on its line.
func (lx *lexer) shortString(tok *token) error {
	src := lx.src
	quote := src[lx.pos]
	lx.pos++
	var b []byte
	escaped := false
	newlines := 0
	for {
		if lx.pos >= len(src) || src[lx.pos] == '\n' || src[lx.pos] == '\r' {
			return lx.errorf("unfinished string")
		}
		c := src[lx.pos]
		if c == quote {
			lx.pos++
			break
		}
		if c != '\\' {
			b = append(b, c)
			lx.pos++
			continue
		}
		lx.pos++
		if lx.pos >= len(src) {
			return lx.errorf("unfinished string")
		}
		c = src[lx.pos]
		if strings.IndexByte("xzu\n\r", c) >= 0 {
			escaped = true // an escape gopher-lua reads differently, or a line break
		}
		lx.pos++
		switch c {
		case 'a':
			b = append(b, '\a')
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'v':
			b = append(b, '\v')
		case '\\', '"', '\'':
			b = append(b, c)
		case '\n', '\r':
			// A backslash before a line break puts a newline in the string.
			lx.lineBreak(c)
			b = append(b, '\n')
			newlines++
		case 'x':
			if lx.pos+2 > len(src) || !isXDigit(src[lx.pos]) || !isXDigit(src[lx.pos+1]) {
				return lx.errorf("hexadecimal digit expected")
			}
			v, _ := strconv.ParseUint(string(src[lx.pos:lx.pos+2]), 16, 8)
			b = append(b, byte(v))
			lx.pos += 2
		case 'z':
			for lx.pos < len(src) {
				switch c := src[lx.pos]; c {
				case '\n', '\r':
					lx.pos++
					lx.lineBreak(c)
					newlines++
					continue
				case ' ', '\t', '\f', '\v':
					lx.pos++
					continue
				}
				break
			}
		case 'u':
			if lx.pos >= len(src) || src[lx.pos] != '{' {
				return lx.errorf("missing '{' in \\u{xxxx}")
			}
			lx.pos++
			var r uint64
			n := 0
			for lx.pos < len(src) && isXDigit(src[lx.pos]) {
				d, _ := strconv.ParseUint(string(src[lx.pos:lx.pos+1]), 16, 8)
				r = r<<4 | d
				if r > 0x7FFFFFFF {
					return lx.errorf("UTF-8 value too large")
				}
				lx.pos++
				n++
			}
			if n == 0 {
				return lx.errorf("hexadecimal digit expected")
			}
			if lx.pos >= len(src) || src[lx.pos] != '}' {
				return lx.errorf("missing '}' in \\u{xxxx}")
			}
			lx.pos++
			b = AppendUTF8(b, uint32(r))
		default:
			if !isDigit(c) {
				return lx.errorf("invalid escape sequence '\\%c'", c)
			}
			v := int(c - '0')
			for k := 0; k < 2 && lx.pos < len(src) && isDigit(src[lx.pos]); k++ {
				v = v*10 + int(src[lx.pos]-'0')
				lx.pos++
			}
			if v > 255 {
				return lx.errorf("decimal escape too large")
			}
			b = append(b, byte(v))
		}
	}
	tok.kind = tString
	if escaped {
		tok.repl = quoteLua(b)
		tok.lines = newlines
	}
	return nil
}

// quoteLua writes s as a Lua 5.1 string literal.
func quoteLua(s []byte) string {
	var b strings.Builder
	b.Grow(len(s) + 2)
	b.WriteByte('"')
	for _, c := range s {
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "\\%03d", c)
	}
	b.WriteByte('"')
	return b.String()
}

// AppendUTF8 encodes r as Lua 5.3 does: up to 6 bytes for values up to
// 2^31, surrogates included (Go's encoder would replace those).
func AppendUTF8(b []byte, r uint32) []byte {
	if r < 0x80 {
		return append(b, byte(r))
	}
	var buf [6]byte
	n := 0
	limit := uint32(0x3f) // the largest value the first byte still holds
	for {
		buf[5-n] = byte(0x80 | r&0x3f)
		n++
		r >>= 6
		limit >>= 1
		if r <= limit {
			break
		}
	}
	buf[5-n] = byte(^limit<<1) | byte(r)
	return append(b, buf[5-n:]...)
}

// The parser: Lua 5.3's grammar, recursive descent, recording edits.

type edit struct {
	pre, post string // written before and after the token
	repl      string // replaces the token when set
	replaced  bool
}

type parser struct {
	toks  []token
	i     int
	edits []edit
	used  map[string]bool
}

// expr is a parsed expression: its first and last token, and for a chain
// of .. not yet written, the positions of its operators.
type expr struct {
	first, last int
	concat      []int // the .. tokens of a pending chain
	// multi: a call or ..., which gives several values as the last
	// argument of a call. tailFirst and tailMulti say the same of the last
	// operand of a pending chain, which must then be parenthesised: a .. f()
	// concatenates one value of f.
	multi     bool
	tailFirst int
	tailMulti bool
}

func (p *parser) tok() token       { return p.toks[p.i] }
func (p *parser) peek(n int) token { return p.toks[min(p.i+n, len(p.toks)-1)] }

func (p *parser) is(text string) bool {
	t := p.toks[p.i]
	return (t.kind == tOp || t.kind == tKeyword) && t.text == text
}

func (p *parser) errorf(format string, args ...any) error {
	t := p.tok()
	near := t.text
	if t.kind == tEOF {
		near = "<eof>"
	} else if near == "" {
		near = "literal"
	}
	return fmt.Errorf("line %d: %w near '%s': %s", t.line, ErrSyntax, near, fmt.Sprintf(format, args...))
}

func (p *parser) expect(text string) error {
	if !p.is(text) {
		return p.errorf("'%s' expected", text)
	}
	p.i++
	return nil
}

func (p *parser) name() error {
	if p.tok().kind != tName {
		return p.errorf("name expected")
	}
	p.i++
	return nil
}

func (p *parser) chunk() error {
	if err := p.block(); err != nil {
		return err
	}
	if p.tok().kind != tEOF {
		return p.errorf("'<eof>' expected")
	}
	return nil
}

func blockEnd(t token) bool {
	if t.kind == tEOF {
		return true
	}
	if t.kind != tKeyword {
		return false
	}
	switch t.text {
	case "end", "else", "elseif", "until":
		return true
	}
	return false
}

func (p *parser) block() error {
	for !blockEnd(p.tok()) {
		if p.is("return") {
			p.i++
			if !blockEnd(p.tok()) && !p.is(";") {
				if err := p.exprList(); err != nil {
					return err
				}
			}
			if p.is(";") {
				p.i++
			}
			if !blockEnd(p.tok()) {
				return p.errorf("'end' expected")
			}
			return nil
		}
		if err := p.statement(); err != nil {
			return err
		}
	}
	return nil
}

// seq parses a run of grammar steps: a string is a token that must come
// next, a function a part to parse.
func (p *parser) seq(steps ...any) error {
	for _, st := range steps {
		var err error
		switch st := st.(type) {
		case string:
			err = p.expect(st)
		case func() error:
			err = st()
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// names parses Name {sep Name}.
func (p *parser) names(sep string) error {
	if err := p.name(); err != nil {
		return err
	}
	for p.is(sep) {
		p.i++
		if err := p.name(); err != nil {
			return err
		}
	}
	return nil
}

func (p *parser) statement() error {
	t := p.tok()
	if t.kind == tOp {
		switch t.text {
		case ";":
			p.i++
			return nil
		case "::":
			p.i++
			return p.seq(p.name, "::")
		}
	}
	if t.kind == tKeyword {
		p.i++
		switch t.text {
		case "break":
			return nil
		case "goto":
			return p.name()
		case "do":
			return p.seq(p.block, "end")
		case "while":
			return p.seq(p.exp, "do", p.block, "end")
		case "repeat":
			return p.seq(p.block, "until", p.exp)
		case "if":
			for {
				if err := p.seq(p.exp, "then", p.block); err != nil {
					return err
				}
				if p.is("elseif") {
					p.i++
					continue
				}
				if p.is("else") {
					p.i++
					if err := p.block(); err != nil {
						return err
					}
				}
				return p.expect("end")
			}
		case "for":
			if err := p.name(); err != nil {
				return err
			}
			if p.is("=") {
				p.i++
				if err := p.exprList(); err != nil {
					return err
				}
			} else {
				for p.is(",") {
					p.i++
					if err := p.name(); err != nil {
						return err
					}
				}
				if err := p.seq("in", p.exprList); err != nil {
					return err
				}
			}
			return p.seq("do", p.block, "end")
		case "function":
			if err := p.names("."); err != nil {
				return err
			}
			if p.is(":") {
				p.i++
				if err := p.name(); err != nil {
					return err
				}
			}
			return p.funcBody()
		case "local":
			if p.is("function") {
				p.i++
				return p.seq(p.name, p.funcBody)
			}
			if err := p.names(","); err != nil {
				return err
			}
			if p.is("=") {
				p.i++
				return p.exprList()
			}
			return nil
		}
		p.i-- // a keyword that starts no statement: an expression's error
	}
	// An assignment or a call.
	if _, err := p.suffixedExp(); err != nil {
		return err
	}
	if p.is("=") || p.is(",") {
		for p.is(",") {
			p.i++
			if _, err := p.suffixedExp(); err != nil {
				return err
			}
		}
		if err := p.expect("="); err != nil {
			return err
		}
		return p.exprList()
	}
	return nil
}

func (p *parser) funcBody() error {
	if err := p.expect("("); err != nil {
		return err
	}
	for !p.is(")") {
		if p.is("...") {
			p.i++
			break
		}
		if err := p.name(); err != nil {
			return err
		}
		if !p.is(",") {
			break
		}
		p.i++
	}
	if err := p.expect(")"); err != nil {
		return err
	}
	if err := p.block(); err != nil {
		return err
	}
	return p.expect("end")
}

func (p *parser) exprList() error {
	for {
		if err := p.exp(); err != nil {
			return err
		}
		if !p.is(",") {
			return nil
		}
		p.i++
	}
}

// exp parses a whole expression and writes its pending edits.
func (p *parser) exp() error {
	e, err := p.subExp(0)
	if err != nil {
		return err
	}
	p.finish(e)
	return nil
}

// finish writes the edits of a pending .. chain.
func (p *parser) finish(e expr) expr {
	if len(e.concat) == 0 {
		return e
	}
	name := opHelper[".."]
	p.used[name] = true
	p.edits[e.first].pre = name + "(" + p.edits[e.first].pre
	for _, i := range e.concat {
		p.edits[i].repl, p.edits[i].replaced = ",", true
	}
	if e.tailMulti {
		p.edits[e.tailFirst].pre = "(" + p.edits[e.tailFirst].pre
		p.edits[e.last].post += ")"
	}
	p.edits[e.last].post += ")"
	return expr{first: e.first, last: e.last}
}

// subExp parses an expression whose operators bind tighter than limit, as
// Lua 5.3's subexpr does.
func (p *parser) subExp(limit int) (expr, error) {
	var e expr
	t := p.tok()
	if t.kind == tKeyword && t.text == "not" || t.kind == tOp && (t.text == "-" || t.text == "#" || t.text == "~") {
		opIndex := p.i
		p.i++
		operand, err := p.subExp(unaryPriority)
		if err != nil {
			return e, err
		}
		operand = p.finish(operand)
		e = expr{first: opIndex, last: operand.last}
		helper := ""
		switch {
		case t.text == "~":
			helper = BNotHelper
		case t.text == "-" && (operand.first != operand.last || p.toks[operand.first].kind != tNumber):
			helper = UnmHelper // -1 stays a constant
		}
		if helper != "" {
			p.used[helper] = true
			p.edits[e.first].repl, p.edits[e.first].replaced = helper+"(", true
			p.edits[operand.last].post += ")"
		}
	} else {
		var err error
		if e, err = p.simpleExp(); err != nil {
			return e, err
		}
	}
	for {
		t := p.tok()
		if t.kind != tOp && t.kind != tKeyword {
			return e, nil
		}
		prio, ok := binPriority[t.text]
		if !ok || prio[0] <= limit {
			return e, nil
		}
		opIndex := p.i
		p.i++
		right, err := p.subExp(prio[1])
		if err != nil {
			return e, err
		}
		if t.text == ".." {
			// Right associative: right is the rest of the chain; join it.
			left := p.finish(e)
			chain := append([]int{opIndex}, right.concat...)
			tailFirst, tailMulti := right.tailFirst, right.tailMulti
			if len(right.concat) == 0 {
				tailFirst, tailMulti = right.first, right.multi
			}
			e = expr{first: left.first, last: right.last, concat: append(left.concat, chain...), tailFirst: tailFirst, tailMulti: tailMulti}
			continue
		}
		e = p.finish(e)
		right = p.finish(right)
		if name, ok := opHelper[t.text]; ok {
			p.used[name] = true
			p.edits[e.first].pre = name + "(" + p.edits[e.first].pre
			p.edits[opIndex].repl, p.edits[opIndex].replaced = ",", true
			p.edits[right.last].post += ")"
		}
		e = expr{first: e.first, last: right.last}
	}
}

func (p *parser) simpleExp() (expr, error) {
	t := p.tok()
	switch t.kind {
	case tNumber, tString:
		p.i++
		return expr{first: p.i - 1, last: p.i - 1}, nil
	case tKeyword:
		switch t.text {
		case "nil", "true", "false":
			p.i++
			return expr{first: p.i - 1, last: p.i - 1}, nil
		case "function":
			first := p.i
			p.i++
			if err := p.funcBody(); err != nil {
				return expr{}, err
			}
			return expr{first: first, last: p.i - 1}, nil
		}
	case tOp:
		switch t.text {
		case "...":
			p.i++
			return expr{first: p.i - 1, last: p.i - 1, multi: true}, nil
		case "{":
			first := p.i
			if err := p.constructor(); err != nil {
				return expr{}, err
			}
			return expr{first: first, last: p.i - 1}, nil
		}
	}
	return p.suffixedExp()
}

func (p *parser) suffixedExp() (expr, error) {
	first := p.i
	call := false
	switch {
	case p.tok().kind == tName:
		p.i++
	case p.is("("):
		p.i++
		if err := p.exp(); err != nil {
			return expr{}, err
		}
		if err := p.expect(")"); err != nil {
			return expr{}, err
		}
	default:
		return expr{}, p.errorf("unexpected symbol")
	}
	for {
		switch {
		case p.is("."):
			p.i++
			if err := p.name(); err != nil {
				return expr{}, err
			}
		case p.is("["):
			p.i++
			if err := p.exp(); err != nil {
				return expr{}, err
			}
			if err := p.expect("]"); err != nil {
				return expr{}, err
			}
		case p.is(":"):
			p.i++
			if err := p.name(); err != nil {
				return expr{}, err
			}
			if err := p.args(); err != nil {
				return expr{}, err
			}
			call = true
			continue
		case p.is("(") || p.is("{") || p.tok().kind == tString:
			if err := p.args(); err != nil {
				return expr{}, err
			}
			call = true
			continue
		default:
			return expr{first: first, last: p.i - 1, multi: call}, nil
		}
		call = false
	}
}

func (p *parser) args() error {
	switch {
	case p.tok().kind == tString:
		p.i++
		return nil
	case p.is("{"):
		return p.constructor()
	}
	if err := p.expect("("); err != nil {
		return err
	}
	if !p.is(")") {
		if err := p.exprList(); err != nil {
			return err
		}
	}
	return p.expect(")")
}

func (p *parser) constructor() error {
	if err := p.expect("{"); err != nil {
		return err
	}
	for !p.is("}") {
		switch {
		case p.is("["):
			p.i++
			if err := p.exp(); err != nil {
				return err
			}
			if err := p.expect("]"); err != nil {
				return err
			}
			if err := p.expect("="); err != nil {
				return err
			}
		case p.tok().kind == tName && p.peek(1).kind == tOp && p.peek(1).text == "=":
			p.i += 2
		}
		if err := p.exp(); err != nil {
			return err
		}
		if !p.is(",") && !p.is(";") {
			break
		}
		p.i++
	}
	return p.expect("}")
}

// emit writes the translated source: the helpers bound to locals in front
// of the first line, then every token with what precedes it.
func (p *parser) emit(src []byte) []byte {
	var b strings.Builder
	b.Grow(len(src) + len(src)/8 + 256)
	if len(p.used) > 0 {
		names := make([]string, 0, len(p.used))
		for n := range p.used {
			names = append(names, n)
		}
		slices.Sort(names)
		list := strings.Join(names, ",")
		b.WriteString("local " + list + "=" + list + ";")
	}
	prev := 0
	if len(src) > 0 && src[0] == '#' {
		b.WriteString("--") // the "#!" line, as a comment
	}
	for i, t := range p.toks {
		b.Write(src[prev:t.start])
		ed := &p.edits[i]
		b.WriteString(ed.pre)
		switch {
		case ed.replaced:
			b.WriteString(ed.repl)
		case t.repl != "":
			b.WriteString(t.repl)
		default:
			b.Write(src[t.start:t.end])
		}
		b.WriteString(ed.post)
		if t.lines > 0 {
			b.WriteString(strings.Repeat("\n", t.lines))
			if t.end < len(src) && src[t.end] == '\r' {
				b.WriteByte(' ') // "\n\r" would be one line break
			}
		}
		prev = t.end
	}
	return []byte(b.String())
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isXDigit(c byte) bool { return isDigit(c) || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F' }

// MaxIntFloat is the largest double below 2^63: math.maxinteger, and what
// integer results of 2^63-512 and more become, so that they stay positive.
const MaxIntFloat = float64(1<<63 - 1024)

// IntToNumber converts an integer result to a Lua 5.1 number.
func IntToNumber(i int64) float64 {
	if i > 1<<63-1024 {
		return MaxIntFloat
	}
	return float64(i)
}
