package lua

import (
	"fmt"
	"math"
	"strings"
	"time"

	glua "github.com/yuin/gopher-lua"
)

// os.date and os.time as Lua 5.3 has them on Linux, in the C locale.
// gopher-lua's knew a part of strftime's conversions and got some wrong
// (%a was "mon" for a Tuesday, %x the time), printed the ones it did not
// know as they were, left yday of "*t" at 0, and made os.time of a table
// without day or month a date anyway.

// strftimeOptions are the conversions 5.3 accepts (LUA_STRFTIMEOPTIONS for
// C99): one letter, or E or O and a letter.
var strftimeOptions = func() map[string]bool {
	m := map[string]bool{}
	for _, c := range "aAbBcCdDeFgGhHIjmMnprRStTuUVwWxXyYzZ%" {
		m[string(c)] = true
	}
	for _, o := range []string{"Ec", "EC", "Ex", "EX", "Ey", "EY",
		"Od", "Oe", "OH", "OI", "Om", "OM", "OS", "Ou", "OU", "OV", "Ow", "OW", "Oy"} {
		m[o] = true
	}
	return m
}()

// osDate is os.date([format [, time]]): "!" first for UTC, "*t" for a table.
func osDate(L *glua.LState) int {
	f := "%c"
	if L.Get(1) != glua.LNil {
		f = L.CheckString(1)
	}
	var t time.Time
	if L.Get(2) == glua.LNil {
		t = time.Now()
	} else {
		s := checkInteger(L, 2)
		if s > maxDateSeconds || s < -maxDateSeconds {
			L.RaiseError("time result cannot be represented in this installation")
		}
		t = time.Unix(s, 0)
	}
	utc := strings.HasPrefix(f, "!")
	if utc {
		f = f[1:]
		t = t.UTC()
	} else {
		t = t.Local()
	}
	if f == "*t" {
		tb := L.CreateTable(0, 9)
		setDateFields(tb.RawSetString, t)
		L.Push(tb)
		return 1
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] != '%' {
			b.WriteByte(f[i])
			continue
		}
		rest := f[i+1:]
		n := 0
		switch {
		case len(rest) >= 1 && strftimeOptions[rest[:1]]:
			n = 1
		case len(rest) >= 2 && strftimeOptions[rest[:2]]:
			n = 2
		default:
			L.ArgError(1, "invalid conversion specifier '%"+rest+"'")
		}
		strftime(&b, rest[n-1], t, utc)
		i += n
	}
	L.Push(glua.LString(b.String()))
	return 1
}

// strftime appends conversion c of t as glibc's strftime does in the C
// locale (an E or O modifier changes nothing there).
func strftime(b *strings.Builder, c byte, t time.Time, utc bool) {
	yday := t.YearDay() - 1
	wday := int(t.Weekday())
	weekday, month := t.Weekday().String(), t.Month().String() // English: the C locale's
	hour12 := t.Hour() % 12
	if hour12 == 0 {
		hour12 = 12
	}
	switch c {
	case 'a':
		b.WriteString(weekday[:3])
	case 'A':
		b.WriteString(weekday)
	case 'b', 'h':
		b.WriteString(month[:3])
	case 'B':
		b.WriteString(month)
	case 'c':
		fmt.Fprintf(b, "%s %s %2d %02d:%02d:%02d %d", weekday[:3], month[:3],
			t.Day(), t.Hour(), t.Minute(), t.Second(), t.Year())
	case 'C':
		fmt.Fprintf(b, "%d", floorDiv(t.Year(), 100)) // glibc: 20, but 0 for the year 50
	case 'd':
		fmt.Fprintf(b, "%02d", t.Day())
	case 'D', 'x':
		fmt.Fprintf(b, "%02d/%02d/%02d", int(t.Month()), t.Day(), floorMod(t.Year(), 100))
	case 'e':
		fmt.Fprintf(b, "%2d", t.Day())
	case 'F':
		fmt.Fprintf(b, "%d-%02d-%02d", t.Year(), int(t.Month()), t.Day())
	case 'g':
		y, _ := t.ISOWeek()
		fmt.Fprintf(b, "%02d", floorMod(y, 100))
	case 'G':
		y, _ := t.ISOWeek()
		fmt.Fprintf(b, "%d", y)
	case 'H':
		fmt.Fprintf(b, "%02d", t.Hour())
	case 'I':
		fmt.Fprintf(b, "%02d", hour12)
	case 'j':
		fmt.Fprintf(b, "%03d", yday+1)
	case 'm':
		fmt.Fprintf(b, "%02d", int(t.Month()))
	case 'M':
		fmt.Fprintf(b, "%02d", t.Minute())
	case 'n':
		b.WriteByte('\n')
	case 'p':
		if t.Hour() < 12 {
			b.WriteString("AM")
		} else {
			b.WriteString("PM")
		}
	case 'r':
		fmt.Fprintf(b, "%02d:%02d:%02d ", hour12, t.Minute(), t.Second())
		strftime(b, 'p', t, utc)
	case 'R':
		fmt.Fprintf(b, "%02d:%02d", t.Hour(), t.Minute())
	case 'S':
		fmt.Fprintf(b, "%02d", t.Second())
	case 't':
		b.WriteByte('\t')
	case 'T', 'X':
		fmt.Fprintf(b, "%02d:%02d:%02d", t.Hour(), t.Minute(), t.Second())
	case 'u':
		fmt.Fprintf(b, "%d", (wday+6)%7+1)
	case 'U':
		fmt.Fprintf(b, "%02d", (yday+7-wday)/7)
	case 'V':
		_, w := t.ISOWeek()
		fmt.Fprintf(b, "%02d", w)
	case 'w':
		fmt.Fprintf(b, "%d", wday)
	case 'W':
		fmt.Fprintf(b, "%02d", (yday+7-(wday+6)%7)/7)
	case 'y':
		fmt.Fprintf(b, "%02d", floorMod(t.Year(), 100))
	case 'Y':
		fmt.Fprintf(b, "%d", t.Year())
	case 'z':
		_, off := t.Zone()
		sign := '+'
		if off < 0 {
			sign, off = '-', -off
		}
		fmt.Fprintf(b, "%c%02d%02d", sign, off/3600, off/60%60)
	case 'Z':
		if utc {
			b.WriteString("GMT") // glibc's gmtime names the zone so
		} else {
			name, _ := t.Zone()
			b.WriteString(name)
		}
	case '%':
		b.WriteByte('%')
	}
}

func floorDiv(a, b int) int {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return q
}

func floorMod(a, b int) int { return a - floorDiv(a, b)*b }

// setDateFields fills a date table as "*t" gives it and os.time leaves it.
func setDateFields(set func(string, glua.LValue), t time.Time) {
	set("year", glua.LNumber(t.Year()))
	set("month", glua.LNumber(t.Month()))
	set("day", glua.LNumber(t.Day()))
	set("hour", glua.LNumber(t.Hour()))
	set("min", glua.LNumber(t.Minute()))
	set("sec", glua.LNumber(t.Second()))
	set("yday", glua.LNumber(t.YearDay()))
	set("wday", glua.LNumber(t.Weekday()+1))
	set("isdst", glua.LBool(t.IsDST()))
}

// maxDateSeconds bounds the time os.date takes: about two billion years,
// where the year stops fitting the C int of 5.3's struct tm.
const maxDateSeconds = 1 << 55

// maxDateField is 5.3's L_MAXDATEFIELD (INT_MAX / 2).
const maxDateField = math.MaxInt32 / 2

// osTime is os.time([table]): now, or the local time the table's fields
// name, which it normalizes (month 14 is February of the next year) and
// writes back into the table, as mktime does in 5.3. isdst is not read: Go
// picks the offset the zone has at that time.
func osTime(L *glua.LState) int {
	if L.Get(1) == glua.LNil {
		L.Push(glua.LNumber(time.Now().Unix()))
		return 1
	}
	tb := L.CheckTable(1)
	field := func(key string, def int) int {
		v := L.GetField(tb, key)
		f, ok := arithNumber(v)
		var i int64
		if ok {
			i, ok = floatToInt(f)
		}
		if !ok {
			if v != glua.LNil {
				L.RaiseError("field '%s' is not an integer", key)
			}
			if def < 0 {
				L.RaiseError("field '%s' missing in date table", key)
			}
			return def
		}
		if i < -maxDateField || i > maxDateField {
			L.RaiseError("field '%s' is out-of-bound", key)
		}
		return int(i)
	}
	sec, minute, hour := field("sec", 0), field("min", 0), field("hour", 12)
	day, month, year := field("day", -1), field("month", -1), field("year", -1)
	t := time.Date(year, time.Month(month), day, hour, minute, sec, 0, time.Local)
	setDateFields(func(k string, v glua.LValue) { L.SetField(tb, k, v) }, t)
	if t.Unix() == -1 {
		// mktime's answer for an error: 5.3 refuses the second before 1970
		// (after it normalized the table).
		L.RaiseError("time result cannot be represented in this installation")
	}
	L.Push(glua.LNumber(t.Unix()))
	return 1
}
