package kvtable

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// recordScript counts uploads per bucket, twice per event on a second key
// (two writes of one key in one call are two writes), remembers the last
// object, deletes a key and creates it again, and hands the count it got to
// the output, so that a test sees what the script saw.
const recordScript = `
function transform(ev)
  local n = RGW.increment("uploads." .. ev.ext.bucket)
  RGW.increment("twice." .. ev.ext.bucket)
  RGW.increment("twice." .. ev.ext.bucket)
  RGW["last." .. ev.ext.bucket] = ev.ext.objectkey
  RGW["gone." .. ev.ext.bucket] = nil
  RGW.increment("gone." .. ev.ext.bucket)
  ev.ext.uploads = n
  return ev
end`

// TestResentEventCountsOnce: events handed to one replica and then resent to
// another (RGW resends what it had no 2xx for, and Knative's activator may
// route the resend to any replica) are counted once, whichever replica runs
// the script first and however they interleave; a resend's script gets the
// number the first run got. Without the write identities each resend would
// count again.
func TestResentEventCountsOnce(t *testing.T) {
	s := testutil.NATS(t)
	a := newTable(t, connect(t, s.ClientURL()), "rgw")
	b := newTable(t, connect(t, s.ClientURL()), "rgw")
	engines := []*lua.Engine{newEngine(t, recordScript, a), newEngine(t, recordScript, b)}
	ctx := context.Background()
	transform := func(e *lua.Engine, id string) float64 {
		t.Helper()
		outs, err := e.Transform(ctx, newEvent(id, "photos", "k-"+id))
		if err != nil || len(outs) != 1 {
			t.Fatalf("event %s: %v, %d outputs", id, err, len(outs))
		}
		n, _ := outs[0].Event.Extensions()["uploads"].(int32)
		return float64(n)
	}

	const events = 60
	cases := []struct {
		name   string
		resend func(id string, first float64)
	}{
		{"resent to the other replica", func(id string, first float64) {
			if got := transform(engines[1], id); got != first {
				t.Errorf("event %s: the resend's script got %v, the first run %v", id, got, first)
			}
		}},
		{"resent to the same replica (its window forgot it, or the publish failed)", func(id string, first float64) {
			if got := transform(engines[0], id); got != first {
				t.Errorf("event %s: the resend's script got %v, the first run %v", id, got, first)
			}
		}},
		{"resent to both at once", func(id string, first float64) {
			var wg sync.WaitGroup
			for _, e := range engines {
				wg.Go(func() { transform(e, id) })
			}
			wg.Wait()
		}},
	}
	total := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for i := range events {
				id := fmt.Sprintf("%s-%d", c.name, i)
				c.resend(id, transform(engines[0], id))
			}
		})
		total += events
		want := float64(total)
		for name, tbl := range map[string]*Table{"a": a, "b": b} {
			waitFor(t, "table "+name+" counts each event once", func() bool {
				up, _ := tbl.Get("uploads.photos")
				tw, _ := tbl.Get("twice.photos")
				return up == want && tw == 2*want
			})
		}
	}
	if v, _ := a.Get("gone.photos"); v != 1.0 {
		t.Errorf("gone.photos = %v, want 1 (deleted and created again by every event)", v)
	}
	if d := a.Stats().Duplicates + b.Stats().Duplicates; d == 0 {
		t.Error("no write was a duplicate: the resends were not noticed")
	}
	t.Logf("%d events, each resent: duplicates noticed a=%d b=%d", total, a.Stats().Duplicates, b.Stats().Duplicates)
}

// TestDistinctEventsStillCount: the identity of a write is the event's, the
// script's and the key's: different events, different keys and the clones of
// a fan-out that a second script of the chain counts are all counted.
func TestDistinctEventsStillCount(t *testing.T) {
	s := testutil.NATS(t)
	tbl := newTable(t, connect(t, s.ClientURL()), "rgw")
	e := newEngineChain(t, tbl, `
function transform(ev)
  return {ev, ev:clone(), ev:clone()}
end`, countScript)
	ctx := context.Background()
	for i := range 10 {
		for _, bucket := range []string{"photos", "scans"} {
			if _, err := e.Transform(ctx, newEvent(fmt.Sprint(i), bucket, "k")); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, bucket := range []string{"photos", "scans"} {
		waitFor(t, bucket+" counted for every clone", func() bool {
			v, _ := tbl.Get("uploads." + bucket)
			return v == 30.0
		})
	}
}

// newEngineChain loads srcs as a chain of scripts, run in the order given.
func newEngineChain(tb testing.TB, table lua.Table, srcs ...string) *lua.Engine {
	tb.Helper()
	dir := tb.TempDir()
	for i, src := range srcs {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d.lua", i)), []byte(src), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return loadEngine(tb, dir, table)
}
