package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// bodyKind names what a row POSTs.
type bodyKind int

const (
	onePayload bodyKind = iota // -payload as it is: one record of ~1 KiB
	records10                  // ten copies of its record in one POST
	records100                 // a hundred
	record32k                  // its record grown to 32 KiB by metadata and tags
)

// body is a request body whose eventIds carry idMark, which the wrk script
// replaces with a number unique to the request (each record keeps its own
// prefix, so records of one POST differ too).
type body struct {
	text    []byte
	records int
}

const idMark = "@ID@"

// makeBodies builds every body from the payload, an RGW POST of one record.
func makeBodies(payload []byte) (map[bodyKind]*body, error) {
	var env struct {
		Records []json.RawMessage `json:"Records"`
	}
	if err := json.Unmarshal(payload, &env); err != nil || len(env.Records) != 1 {
		return nil, errors.New("payload: want an RGW POST of one record ({\"Records\":[...]})")
	}
	rec := env.Records[0]
	big, err := grow(rec, 32<<10)
	if err != nil {
		return nil, err
	}
	bodies := map[bodyKind]*body{}
	for kind, recs := range map[bodyKind][]json.RawMessage{
		onePayload: {rec},
		records10:  repeated(rec, 10),
		records100: repeated(rec, 100),
		record32k:  {big},
	} {
		var b bytes.Buffer
		b.WriteString(`{"Records":[`)
		for i, r := range recs {
			if i > 0 {
				b.WriteByte(',')
			}
			marked, err := markID(r, i)
			if err != nil {
				return nil, err
			}
			b.Write(marked)
		}
		b.WriteString(`]}`)
		bodies[kind] = &body{text: b.Bytes(), records: len(recs)}
	}
	return bodies, nil
}

// markID puts idMark and the record's index in front of its eventId.
func markID(rec []byte, i int) ([]byte, error) {
	const key = `"eventId":"`
	at := bytes.Index(rec, []byte(key))
	if at < 0 {
		return nil, errors.New("payload: the record has no eventId")
	}
	at += len(key)
	return concat(rec[:at], fmt.Appendf(nil, "%s.%d.", idMark, i), rec[at:]), nil
}

func repeated(rec json.RawMessage, n int) []json.RawMessage {
	out := make([]json.RawMessage, n)
	for i := range out {
		out[i] = rec
	}
	return out
}

func concat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// grow adds user metadata (s3.object.metadata) and tags (s3.object.tags)
// entries, as RGW sends them, until the record has at least size bytes:
// the tens of KiB records that metadata-heavy applications produce.
func grow(rec []byte, size int) ([]byte, error) {
	var r map[string]any
	if err := json.Unmarshal(rec, &r); err != nil {
		return nil, err
	}
	s3, _ := r["s3"].(map[string]any)
	obj, _ := s3["object"].(map[string]any)
	if obj == nil {
		return nil, errors.New("payload: the record has no s3.object")
	}
	var meta, tags []any
	for i := 0; ; i++ {
		meta = append(meta, map[string]any{"key": fmt.Sprintf("x-amz-meta-field-%03d", i), "val": strings.Repeat(fmt.Sprintf("value %d; ", i), 8)})
		if i%4 == 0 {
			tags = append(tags, map[string]any{"key": fmt.Sprintf("tag-%03d", i), "val": fmt.Sprintf("t%d", i)})
		}
		obj["metadata"], obj["tags"] = meta, tags
		b, err := json.Marshal(r)
		if err != nil {
			return nil, err
		}
		if len(b) >= size {
			return b, nil
		}
	}
}
