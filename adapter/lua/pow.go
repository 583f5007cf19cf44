package lua

import (
	"math"
	"math/big"
	"sync"
)

// Lua 5.3 computes a ^ b with C's pow, which is correctly rounded but for
// the hardest cases (glibc's is within 0.52 ulp, and rounds an exact tie
// such as 255255 ^ 3 by the sign of its own error; pow rounds it to even).
// Go's math.Pow is not: math.Pow(64, 2.5) is 32767.999999999993, so
// math.floor(64 ^ 2.5) would be 32767 and 64 ^ 2.5 << 0 an error. pow gives
// the double nearest to x^y: exact integer powers stay in float64 when
// every product is exact, the rest is computed in big.Float with enough
// bits that rounding it once is right.

// powPrec is the working precision of the slow path: the exponential's
// argument reduction (2^8 squarings) and a result exponent of up to ±1100
// cost some 20 bits of it; what is left, about 100, is far beyond the 54
// that rounding needs but for results within 2^-100 of a midpoint.
const powPrec = 128

// pow is x^y rounded to the nearest double.
func pow(x, y float64) float64 {
	switch {
	case x == 0 || y == 0 || x == 1 || math.IsInf(x, 0) || math.IsInf(y, 0) || math.IsNaN(x) || math.IsNaN(y),
		y == 0.5: // C99's special cases, which Go follows; y = 0.5 is math.Sqrt, correctly rounded
		return math.Pow(x, y)
	}
	if x < 0 && y != math.Trunc(y) {
		return math.NaN()
	}
	// An integral y beyond int64 is even: (-2) ^ 2^64 is 2^64 ^ 2^64, inf.
	yi, fits := floatToInt(y)
	if fits {
		if r, ok := exactIntPow(x, yi); ok {
			return r
		}
	}
	neg := x < 0 && fits && yi&1 == 1
	ax := new(big.Float).SetPrec(powPrec).SetFloat64(math.Abs(x))
	var r *big.Float
	if fits && yi > -1<<62 && yi < 1<<62 {
		r = bigIntPow(ax, yi)
	} else {
		t := bigLog(ax)
		t.Mul(t, new(big.Float).SetPrec(powPrec).SetFloat64(y))
		r = bigExp(t)
	}
	f, _ := r.Float64() // nearest, overflow to +Inf and underflow to subnormals included
	if neg {
		f = -f
	}
	return f
}

// exactIntPow is x^n by squaring when every product is exact in float64
// (FMA shows the rounding error each would have): 2^10, 10^15, 3^20.
func exactIntPow(x float64, n int64) (float64, bool) {
	if n < 0 || n > 64 {
		return 0, false
	}
	r, b := 1.0, x
	for {
		if n&1 == 1 {
			p := r * b
			if math.FMA(r, b, -p) != 0 || math.IsInf(p, 0) {
				return 0, false
			}
			r = p
		}
		n >>= 1
		if n == 0 {
			return r, true
		}
		p := b * b
		if math.FMA(b, b, -p) != 0 || math.IsInf(p, 0) {
			return 0, false
		}
		b = p
	}
}

// bigIntPow is a^n by squaring, a > 0.
func bigIntPow(a *big.Float, n int64) *big.Float {
	neg := n < 0
	if neg {
		n = -n
	}
	r := new(big.Float).SetPrec(powPrec).SetInt64(1)
	b := new(big.Float).SetPrec(powPrec).Set(a)
	for n > 0 {
		if n&1 == 1 {
			r.Mul(r, b)
		}
		n >>= 1
		if n > 0 {
			b.Mul(b, b)
		}
	}
	if neg {
		r.Quo(new(big.Float).SetPrec(powPrec).SetInt64(1), r)
	}
	return r
}

var (
	ln2Once sync.Once
	ln2     *big.Float
)

// bigLn2 is ln 2 to powPrec bits: 2 atanh(1/3).
func bigLn2() *big.Float {
	ln2Once.Do(func() {
		third := new(big.Float).SetPrec(powPrec).Quo(big.NewFloat(1).SetPrec(powPrec), big.NewFloat(3).SetPrec(powPrec))
		ln2 = bigAtanh(third)
		ln2.Mul(ln2, big.NewFloat(2))
	})
	return ln2
}

// bigAtanh is atanh(z) = z + z^3/3 + z^5/5 + ... for |z| <= 1/3, where each
// term is at least 9 times smaller than the one before.
func bigAtanh(z *big.Float) *big.Float {
	sum := new(big.Float).SetPrec(powPrec).Set(z)
	z2 := new(big.Float).SetPrec(powPrec).Mul(z, z)
	p := new(big.Float).SetPrec(powPrec).Set(z)
	term := new(big.Float).SetPrec(powPrec)
	div := new(big.Float).SetPrec(powPrec)
	for k := int64(3); ; k += 2 {
		p.Mul(p, z2)
		term.Quo(p, div.SetInt64(k))
		if term.Sign() == 0 || term.MantExp(nil)-sum.MantExp(nil) < -powPrec-8 {
			return sum
		}
		sum.Add(sum, term)
	}
}

// bigLog is ln a for a > 0: a = m 2^e with m in [1/sqrt 2, sqrt 2), so
// ln a = e ln 2 + 2 atanh((m-1)/(m+1)), the argument within ±0.172 (each
// term of the series 34 times smaller than the one before).
func bigLog(a *big.Float) *big.Float {
	m := new(big.Float).SetPrec(powPrec)
	e := a.MantExp(m) // m in [0.5, 1)
	if m.Cmp(big.NewFloat(math.Sqrt2/2)) < 0 {
		m.SetMantExp(m, 1)
		e--
	}
	one := big.NewFloat(1).SetPrec(powPrec)
	num := new(big.Float).SetPrec(powPrec).Sub(m, one)
	den := new(big.Float).SetPrec(powPrec).Add(m, one)
	r := bigAtanh(num.Quo(num, den))
	r.Mul(r, big.NewFloat(2))
	return r.Add(r, new(big.Float).SetPrec(powPrec).Mul(bigLn2(), new(big.Float).SetInt64(int64(e))))
}

// bigExp is e^t: t = k ln 2 + r with |r| <= ln 2 / 2, e^r from its series
// at r / 2^8 squared 8 times, then scaled by 2^k. Results far beyond
// float64's range are returned as 2^±4096, which Float64 turns into +Inf
// or 0.
func bigExp(t *big.Float) *big.Float {
	ln2 := bigLn2()
	kf, _ := new(big.Float).Quo(t, ln2).Float64()
	switch {
	case kf > 4096:
		return new(big.Float).SetMantExp(big.NewFloat(1), 4096)
	case kf < -4096:
		return new(big.Float).SetMantExp(big.NewFloat(1), -4096)
	}
	k := int64(math.Round(kf))
	r := new(big.Float).SetPrec(powPrec).Mul(ln2, new(big.Float).SetInt64(k))
	r.Sub(t, r)
	const halvings = 8
	r.SetMantExp(r, -halvings)
	sum := big.NewFloat(1).SetPrec(powPrec)
	term := big.NewFloat(1).SetPrec(powPrec)
	div := new(big.Float).SetPrec(powPrec)
	for n := int64(1); ; n++ {
		term.Mul(term, r)
		term.Quo(term, div.SetInt64(n))
		if term.Sign() == 0 || term.MantExp(nil) < -powPrec-8 {
			break
		}
		sum.Add(sum, term)
	}
	for range halvings {
		sum.Mul(sum, sum)
	}
	return sum.SetMantExp(sum, int(k))
}
