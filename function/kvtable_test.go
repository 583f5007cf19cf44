package function_test

import (
	"context"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/function"
)

// TestRGWTableInKVAcrossReplicas: two rgw-nats instances on one NATS share
// the RGW table through LUA_RGW_TABLE_KV: the first upload of a key through
// one is routed as the first, later uploads of it through the other as
// repeats, a resend of an upload to the other instance (RGW resending to
// another replica) is not counted again, and a third instance started later
// goes on counting.
func TestRGWTableInKVAcrossReplicas(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.LuaScript = filepath.Join("..", "samples", "lua", "uploads.lua")
	cfg.LuaRGWTableKV = "rgw-uploads"
	a := startAdapter(t, cfg, s.ClientURL())
	b := startAdapter(t, cfg, s.ClientURL())
	ch := a.subscribe(t, "uploads.>")
	// Each upload of the key is another RGW record: another eventId.
	upload := func(n int) []byte {
		return []byte(strings.Replace(string(fixture(t, putFixture)), `"eventId":"`, `"eventId":"upload`+strconv.Itoa(n)+`-`, 1))
	}
	for i, target := range []*adapter{a, b, a} {
		if resp := post(t, target.url, nil, upload(i)); resp.code != 202 {
			t.Fatalf("upload %d: %d %q", i, resp.code, resp.body)
		}
	}
	msgs := receive(t, ch, 3)
	for i, want := range []string{"first", "again", "again"} {
		if got := msgs[i].Subject; got != "uploads.nb-main."+want {
			t.Errorf("upload %d went to %s, want uploads.nb-main.%s", i, got, want)
		}
	}
	// The resend reaches b, whose duplicate window never saw it: the
	// script runs again there, and sees the counts the first run saw.
	if resp := post(t, b.url, nil, upload(2)); resp.code != 202 {
		t.Fatalf("resend of upload 2: %d %q", resp.code, resp.body)
	}
	if ev := decode(t, receive(t, ch, 1)[0]); ev.Extensions()["uploads"] != int32(3) {
		t.Errorf("the resend of upload 2 carries the count %v, want 3 (the first run's)", ev.Extensions()["uploads"])
	}
	c := startAdapter(t, cfg, s.ClientURL())
	if resp := post(t, c.url, nil, upload(3)); resp.code != 202 {
		t.Fatalf("upload through a new instance: %d %q", resp.code, resp.body)
	}
	ev := decode(t, receive(t, ch, 1)[0])
	if ev.Extensions()["uploads"] != int32(4) {
		t.Errorf("a new instance counts from %v, want 4 (the resend is not an upload)", ev.Extensions()["uploads"])
	}
}

// TestReadyWaitsForTheRGWTable: with a KV bucket that does not exist and
// may not be created, the function never says ready; once the bucket
// exists it loads it and does.
func TestReadyWaitsForTheRGWTable(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.NATSStreamCreate = false
	cfg.LuaScript = filepath.Join("..", "samples", "lua", "uploads.lua")
	cfg.LuaRGWTableKV = "operators-bucket"
	f := function.New(function.WithConfig(cfg))
	if err := f.Start(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Stop(context.Background()) })
	time.Sleep(300 * time.Millisecond)
	if ok, _ := f.Ready(context.Background()); ok {
		t.Fatal("ready without the RGW table")
	}
	createBucket(t, s.ClientURL(), "operators-bucket")
	waitReady(t, f)
}

// TestRGWTableUnavailableIsTransient: when the KV bucket cannot take a
// script's write while NATS itself works, the event is answered 503 (the
// sender retries), nothing is published and nothing is dead-lettered.
func TestRGWTableUnavailableIsTransient(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.LuaScript = filepath.Join("..", "samples", "lua", "uploads.lua")
	cfg.LuaRGWTableKV = "operators-bucket"
	cfg.NATSStreamCreate = false // so that the table does not create the bucket again
	js := createBucket(t, s.ClientURL(), "operators-bucket")
	a := startAdapter(t, cfg, s.ClientURL())
	events := a.subscribe(t, "uploads.>")
	dead := a.subscribe(t, "rgwnats.deadletter.>")
	if err := js.DeleteKeyValue(context.Background(), "operators-bucket"); err != nil {
		t.Fatal(err)
	}
	// Retried again and again (past POISON_ATTEMPTS), the event stays
	// transient: a store that is away does not make it poison.
	for i := range cfg.PoisonAttempts + 2 {
		resp := post(t, a.url, nil, fixture(t, putFixture))
		if resp.code != 503 || resp.header.Get("Retry-After") == "" || strings.Contains(resp.body, "timeout") {
			t.Fatalf("attempt %d with the table gone: %d %q (Retry-After %q); want 503, not a timeout", i, resp.code, resp.body, resp.header.Get("Retry-After"))
		}
	}
	none(t, events)
	none(t, dead)
}

// createBucket creates a KV bucket as an operator would.
func createBucket(t *testing.T, url, bucket string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(context.Background(), jetstream.KeyValueConfig{Bucket: bucket}); err != nil {
		t.Fatal(err)
	}
	return js
}
