package adapter_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/ingress"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/adapter/subject"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// corePipeline is the pipeline in core mode with the default dead letter,
// on a real nats-server with its default max_payload (1 MiB).
func corePipeline(t *testing.T) (*adapter.Pipeline, string) {
	t.Helper()
	s := testutil.NATS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	pub, err := natsout.Connect(ctx, natsout.Config{URL: s.ClientURL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pub.Close(context.Background()) })
	if err := pub.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	tmpl, _ := subject.Parse("rgw.{bucket}.{event}")
	dl, _ := subject.Parse(adapter.DefaultDeadLetterSubject)
	p, err := adapter.New(adapter.Config{Subject: tmpl, DeadLetter: dl, DedupWindow: time.Minute, DedupMaxIDs: 100}, pub, nil)
	if err != nil {
		t.Fatal(err)
	}
	return p, s.ClientURL()
}

// rawRGW is a raw RGW POST of the sample record with eventId id and its
// bucket named bucket, padded (in opaqueData... the record's own bytes) to
// size bytes when size > 0.
func rawRGW(t *testing.T, id, bucket string, size int) []byte {
	t.Helper()
	var rec map[string]any
	if err := json.Unmarshal(testutil.SampleRecord(t), &rec); err != nil {
		t.Fatal(err)
	}
	rec["eventId"] = id
	rec["s3"].(map[string]any)["bucket"].(map[string]any)["name"] = bucket
	b, _ := json.Marshal(map[string]any{"Records": []any{rec}})
	if size > 0 {
		rec["opaqueData"] = strings.Repeat("p", size-len(b))
		b, _ = json.Marshal(map[string]any{"Records": []any{rec}})
		if len(b) != size {
			t.Fatalf("body is %d bytes, want %d", len(b), size)
		}
	}
	return b
}

// TestDeadLetterAlwaysFits: an event NATS cannot take (over the server's
// max_payload, or with a subject longer than its protocol line) ends in a
// dead letter that fits, cut to max_payload with its headers, on a subject
// NATS can read; the request is answered as done. Before, the dead letter
// was the whole body (over max_payload too), so the request failed
// transiently forever (503), and a long bucket broke the connection.
func TestDeadLetterAlwaysFits(t *testing.T) {
	p, url := corePipeline(t)
	dead := testutil.Subscribe(t, url, "rgwnats.deadletter.>")
	events := testutil.Subscribe(t, url, "rgw.>")
	hdr := ingress.Header{"Content-Type": {"application/json"}}
	for _, c := range []struct {
		name     string
		body     []byte
		oversize int64
		subject  string
	}{
		{"body of exactly 1 MiB", rawRGW(t, "max-1", "photos", 1<<20), 0, "rgwnats.deadletter.photos"},
		{"body just under 1 MiB (event over max_payload with its headers)", rawRGW(t, "max-2", "photos", 1<<20-100), 0, "rgwnats.deadletter.photos"},
		{"body over MAX_BODY_BYTES, first 1 MiB kept", rawRGW(t, "max-3", "photos", 1<<20)[:1<<20], 1<<20 + 1, "rgwnats.deadletter._"},
		{"5000-byte bucket name", rawRGW(t, "long-bucket", strings.Repeat("b", 5000), 0), 0, "rgwnats.deadletter._"},
	} {
		res := p.Handle(context.Background(), adapter.Request{Header: hdr, Body: c.body, Oversize: c.oversize})
		if res.Class != 0 {
			t.Errorf("%s: class %v reason %q: %v", c.name, res.Class, res.Reason, res.FirstErr())
			continue
		}
		m := testutil.Receive(t, dead, 1)[0]
		size := natsout.HeaderLen(m.Header) + len(m.Data)
		if m.Subject != c.subject || size > 1<<20 || !bytes.HasPrefix(c.body, m.Data) {
			t.Errorf("%s: dead letter on %q of %d bytes with headers, want %q within 1 MiB, a prefix of the body", c.name, m.Subject, size, c.subject)
		}
		if len(m.Data) < len(c.body) && m.Header.Get(adapter.HeaderTruncated) == "" {
			t.Errorf("%s: cut dead letter without %s", c.name, adapter.HeaderTruncated)
		}
		t.Logf("%s: %s %s, %d payload bytes, truncated %q", c.name, m.Header.Get(adapter.HeaderReason), m.Subject, len(m.Data), m.Header.Get(adapter.HeaderTruncated))
	}
	testutil.None(t, events)
	// The connection is still up: a good event is published.
	if res := p.Handle(context.Background(), adapter.Request{Header: hdr, Body: rawRGW(t, "good", "photos", 0)}); res.Class != 0 || res.Outcomes[0].Status != adapter.Published {
		t.Fatalf("good event: %+v", res)
	}
	testutil.Receive(t, events, 1)
}
