package rgw

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/rgw-nats/rgw-nats/samples/events"
)

// seedFuzz adds every fixture, each fixture's bare record, and the variants
// of the table tests.
func seedFuzz(f *testing.F) {
	for _, body := range events.All() {
		f.Add(body)
		f.Add(recordBytes(f, body))
	}
	f.Add([]byte(baseRecord))
	f.Add(wrap(baseRecord, baseRecord))
	f.Add(wrap(strings.Replace(baseRecord, `"size":177`, `"size":"1.5e3"`, 1)))
	f.Add(wrap(strings.Replace(baseRecord, `"val":"blue"`, `"value":"blu\u00e9"`, 1)))
	f.Add([]byte(`{"Records":[]}`))
	f.Add([]byte(`{"Records":[null]}`))
	f.Add([]byte(`{"Records":[1],"Records":[]}`))
	f.Add([]byte(`{"Records":[` + baseRecord + `,` + baseRecord + `],"records":[` + strings.Replace(baseRecord, `"eTag":"e1",`, ``, 1) + `]}`))
	f.Add([]byte(`{"Rec\u006frds":[` + baseRecord + `]}`))
	f.Add([]byte(`{"recordſ":[` + baseRecord + `]}`))
	f.Add([]byte(`[` + baseRecord + `]`))
}

// checkDecoded asserts what holds for every record any decoder returns.
func checkDecoded(t *testing.T, data []byte, recs []Record) {
	t.Helper()
	if len(recs) == 0 {
		t.Fatal("no error and no records")
	}
	for i := range recs {
		r := &recs[i]
		if r.EventName == "" || r.S3.Bucket.Name == "" {
			t.Fatalf("record %d accepted without eventName or bucket: %+v", i, r)
		}
		if len(r.Raw) == 0 || r.Raw[0] != '{' || !json.Valid(r.Raw) {
			t.Fatalf("record %d: Raw is not a JSON object: %q", i, r.Raw)
		}
		if !bytes.Contains(data, r.Raw) {
			t.Fatalf("record %d: Raw is not bytes of the input: %q", i, r.Raw)
		}
		// Raw alone decodes to the same record.
		again, err := DecodeRecord(r.Raw)
		if err != nil {
			t.Fatalf("record %d: its Raw does not decode: %v", i, err)
		}
		if !reflect.DeepEqual(&again, r) {
			t.Fatalf("record %d decodes differently from its Raw:\n%+v\n%+v", i, r, &again)
		}
		_, _ = r.Time()
		_ = r.Name()
	}
}

// checkError asserts an error wraps one of the sentinels and is one line.
func checkError(t *testing.T, err error) {
	t.Helper()
	if !errors.Is(err, ErrNotNotification) && !errors.Is(err, ErrNoRecords) && !errors.Is(err, ErrBadRecord) {
		t.Fatalf("error wraps no sentinel: %v", err)
	}
	if strings.ContainsAny(err.Error(), "\r\n") || len(err.Error()) > 300 {
		t.Fatalf("error is not one short line: %q", err)
	}
}

func FuzzDecode(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := Decode(data)
		// The fast path must agree with decoding each record on its own.
		slow, slowErr := decodeEnvelope(data)
		if (err == nil) != (slowErr == nil) || (err != nil && err.Error() != slowErr.Error()) {
			t.Fatalf("fast and slow paths disagree: %v / %v", err, slowErr)
		}
		if err != nil {
			checkError(t, err)
			if recs != nil {
				t.Fatal("records returned with an error")
			}
			return
		}
		if !reflect.DeepEqual(recs, slow) {
			t.Fatalf("fast and slow paths decode differently:\n%+v\n%+v", recs, slow)
		}
		checkDecoded(t, data, recs)
	})
}

func FuzzDecodeAny(f *testing.F) {
	seedFuzz(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := DecodeAny(data)
		rec, ok := FromData(data)
		if ok != (err == nil && len(recs) == 1) {
			t.Fatalf("FromData ok=%v but DecodeAny gave %d records, %v", ok, len(recs), err)
		}
		if ok && !reflect.DeepEqual(rec, recs[0]) {
			t.Fatalf("FromData and DecodeAny differ:\n%+v\n%+v", rec, recs[0])
		}
		env, envErr := Decode(data)
		if err != nil {
			checkError(t, err)
			if envErr == nil && mayBeNotification(bytes.TrimSpace(data)) {
				t.Fatalf("Decode accepts what DecodeAny rejects: %v", err)
			}
			return
		}
		checkDecoded(t, data, recs)
		// An envelope decodes as Decode decodes it, anything else as one
		// record.
		if envErr == nil {
			if !reflect.DeepEqual(recs, env) {
				t.Fatalf("DecodeAny and Decode differ:\n%+v\n%+v", recs, env)
			}
			return
		}
		single, err := DecodeRecord(data)
		if err != nil {
			t.Fatalf("DecodeAny accepted what neither Decode (%v) nor DecodeRecord (%v) accepts", envErr, err)
		}
		if len(recs) != 1 || !reflect.DeepEqual(recs[0], single) {
			t.Fatalf("DecodeAny and DecodeRecord differ:\n%+v\n%+v", recs, single)
		}
	})
}
