package cloudevent

import "github.com/rgw-nats/rgw-nats/adapter/rgw"

// Source is the source a record's event gets (sourceURI), as a string.
func Source(rec *rgw.Record) string {
	u := sourceURI(rec)
	return u.String()
}
