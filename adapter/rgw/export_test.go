package rgw

// DecodeRecord decodes a single record (the data of a CephSource event), as
// Decode does each of its records. The record's Raw is a slice of raw.
func DecodeRecord(raw []byte) (Record, error) {
	var r Record
	err := decodeRecord(raw, &r)
	return r, err
}
