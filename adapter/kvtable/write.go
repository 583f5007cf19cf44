package kvtable

import (
	"context"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Every write is a publish to the key's subject in the bucket's stream,
// made here rather than through jetstream.KeyValue so that it can carry the
// write's identity (lua.WriteID) as its JetStream message id. The stream
// stores one message per id within its duplicate window (two minutes for a
// bucket nats.go creates), whichever process sends it: when RGW resends an
// event to another replica, whose own duplicate window has not seen it, the
// script runs again there, and its increments and writes reach the bucket
// as duplicates instead of counting twice.

// kvOperation is the header that marks a delete in a KV stream.
const kvOperation = "KV-Operation"

// subject is the stream subject of the encoded key k.
func (t *Table) subject(k string) string { return "$KV." + t.bucket + "." + k }

// write publishes one message on the subject of the encoded key k: a value,
// or a delete marker when del; compare-and-set on revision rev when cas; with
// id as its message id unless it is "". dup reports that the stream had a
// message of that id already: nothing was written, and seq is the revision
// the first copy got.
func (t *Table) write(ctx context.Context, k string, data []byte, del, cas bool, rev uint64, id string) (seq uint64, dup bool, err error) {
	m := &nats.Msg{Subject: t.subject(k), Header: nats.Header{}, Data: data}
	if del {
		m.Header.Set(kvOperation, "DEL")
	}
	opts := make([]jetstream.PublishOpt, 0, 2)
	if cas {
		opts = append(opts, jetstream.WithExpectLastSequencePerSubject(rev))
	}
	if id != "" {
		opts = append(opts, jetstream.WithMsgID(id))
	}
	ack, err := t.js.PublishMsg(ctx, m, opts...)
	if err != nil {
		if wrongLastSequence(err) {
			err = fmt.Errorf("%w: %w", err, jetstream.ErrKeyRevisionMismatch)
		}
		return 0, false, err
	}
	return ack.Sequence, ack.Duplicate, nil
}

// create writes k when the bucket holds no value of it: a key never written,
// or one whose last message is a delete marker (compared on its revision).
// A key that holds a value fails with jetstream.ErrKeyExists.
func (t *Table) create(ctx context.Context, k string, data []byte, id string) (seq uint64, dup bool, err error) {
	seq, dup, err = t.write(ctx, k, data, false, true, 0, id)
	if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return seq, dup, err
	}
	if last, deleted := t.deleteMarker(ctx, k); deleted {
		return t.write(ctx, k, data, false, true, last, id)
	}
	return 0, false, fmt.Errorf("%w: %w", err, jetstream.ErrKeyExists)
}

// deleteMarker returns the revision of the last message of k, when that is
// a delete (or purge) marker.
func (t *Table) deleteMarker(ctx context.Context, k string) (uint64, bool) {
	s, err := t.js.Stream(ctx, "KV_"+t.bucket)
	if err != nil {
		return 0, false
	}
	msg, err := s.GetLastMsgForSubject(ctx, t.subject(k))
	if err != nil {
		return 0, false
	}
	switch msg.Header.Get(kvOperation) {
	case "DEL", "PURGE":
		return msg.Sequence, true
	}
	return 0, false
}

// wrongLastSequence reports a compare-and-set the stream refused: the
// subject's last revision was not the one expected (10071; 10164 from a
// replicated stream).
func wrongLastSequence(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence ||
		apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}

// firstValue is what a duplicate increment returns: the number the first
// copy stored at revision seq, so that the script sees what it saw the first
// time; when a later write has replaced that revision (the bucket keeps the
// last one), the number the key holds once the watcher has brought seq.
func (t *Table) firstValue(ctx context.Context, kv jetstream.KeyValue, key, k string, seq uint64) float64 {
	if e, err := kv.GetRevision(ctx, k, seq); err == nil && e.Operation() == jetstream.KeyValuePut {
		if n, ok := decodeValue(e.Value()).(float64); ok {
			return n
		}
	}
	t.waitWatched(ctx, seq)
	v, _, _ := t.local(key)
	n, _ := v.(float64)
	return n
}
