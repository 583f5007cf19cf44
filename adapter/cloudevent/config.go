package cloudevent

import "fmt"

// Data says what a mapped event's data holds (CE_DATA).
type Data int

const (
	// DataRecord is the record itself.
	DataRecord Data = iota
	// DataEnvelope is {"Records":[record]}, as RGW POSTs it.
	DataEnvelope
)

func (d Data) String() string {
	if d == DataEnvelope {
		return "envelope"
	}
	return "record"
}

// UnmarshalText reads "record" or "envelope".
func (d *Data) UnmarshalText(b []byte) error {
	switch string(b) {
	case "record", "":
		*d = DataRecord
	case "envelope":
		*d = DataEnvelope
	default:
		return fmt.Errorf("must be record or envelope, not %q", b)
	}
	return nil
}

// Overrides are the extensions of K_CE_OVERRIDES, parsed once.
type Overrides map[string]any

// UnmarshalText parses {"extensions":{...}} (see ParseOverrides).
func (o *Overrides) UnmarshalText(b []byte) error {
	m, err := ParseOverrides(string(b))
	if err != nil {
		return err
	}
	*o = m
	return nil
}
