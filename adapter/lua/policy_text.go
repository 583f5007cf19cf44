package lua

// UnmarshalText makes a Policy a configuration value (LUA_ON_ERROR).
func (p *Policy) UnmarshalText(b []byte) error {
	v, err := ParsePolicy(string(b))
	if err == nil {
		*p = v
	}
	return err
}
