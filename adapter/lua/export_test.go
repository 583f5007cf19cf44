package lua

import (
	"math"

	glua "github.com/yuin/gopher-lua"
)

// WithMaxString bounds the size of strings built by string.rep, string.gsub,
// table.concat and the like (default 1 MiB, no setting): tests lower it.
func WithMaxString(n int) Option { return func(c *config) { c.maxString = n } }

// encode returns the JSON text of v, unbounded (the engine always bounds
// it: encodeMax). Object keys come out sorted, so the output is
// deterministic. The result aliases the codec's buffer: copy it before the
// next call.
func (c *jsonCodec) encode(v glua.LValue) ([]byte, error) {
	return c.encodeMax(v, math.MaxInt, nil)
}
