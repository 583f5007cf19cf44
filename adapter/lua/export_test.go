package lua

// WithMaxString bounds the size of strings built by string.rep, string.gsub,
// table.concat and the like (default 1 MiB, no setting): tests lower it.
func WithMaxString(n int) Option { return func(c *config) { c.maxString = n } }
