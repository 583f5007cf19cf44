package kvtable

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

func TestScriptForMemoryTableRunsUnchanged(t *testing.T) {
	s := testutil.NATS(t)
	tbl := newTable(t, connect(t, s.ClientURL()), "rgw")
	// adapter/lua's test of the in-memory table.
	src, err := os.ReadFile(filepath.Join("..", "lua", "testdata", "rgw-table.lua"))
	if err != nil {
		t.Fatal(err)
	}
	for name, table := range map[string]lua.Table{"memory": lua.NewMemoryTable(), "kv": tbl} {
		t.Run(name, func(t *testing.T) {
			e := newEngine(t, string(src), table)
			if _, err := e.Transform(context.Background(), newEvent("1", "b", "k")); err != nil {
				t.Fatal(err)
			}
		})
	}
	// The script's writes are in the bucket, each with its Lua type.
	kv := bucket(t, s.ClientURL(), "rgw")
	for key, want := range map[string]string{"s": "s:text", "n": "i:40", "f": "f:3.5"} {
		e, err := kv.Get(context.Background(), key)
		if err != nil || string(e.Value()) != want {
			t.Errorf("bucket %s = %v (%v), want %s", key, e, err, want)
		}
	}
	if _, err := kv.Get(context.Background(), "b"); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("deleted key b: %v", err)
	}
}

func bucket(tb testing.TB, url, name string) jetstream.KeyValue {
	tb.Helper()
	js, err := jetstream.New(connect(tb, url))
	if err != nil {
		tb.Fatal(err)
	}
	kv, err := js.KeyValue(context.Background(), name)
	if err != nil {
		tb.Fatal(err)
	}
	return kv
}

// TestLimitsSameAsMemory runs every limit against both tables: the same
// operations fail with the same sentinel and the same message.
func TestLimitsSameAsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("fills a bucket with 100,000 entries")
	}
	s := testutil.NATS(t)
	ctx := context.Background()
	// Fill the bucket to one entry short of the limit, asynchronously (a
	// put at a time would take long), before the table loads it.
	nc := connect(t, s.ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "full", History: 1, MaxValueSize: maxValueSize}); err != nil {
		t.Fatal(err)
	}
	mem := lua.NewMemoryTable()
	acked := func() {
		select {
		case <-js.PublishAsyncComplete():
		case <-time.After(time.Minute):
			t.Fatal("async puts not acknowledged")
		}
	}
	for i := range lua.MaxTableEntries - 1 {
		k := fmt.Sprintf("k%d", i)
		if _, err := js.PublishAsync("$KV.full."+encodeKey(k), encodeValue("v")); err != nil {
			t.Fatal(err)
		}
		if err := mem.Set(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
		if i%1000 == 999 {
			acked() // stay within the client's bound on pending acks
		}
	}
	acked()
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	before, start := heap(), time.Now()
	kvt := newTable(t, connect(t, s.ClientURL()), "full")
	t.Logf("loaded %d entries in %v; heap grew by %d bytes per entry (the server's share included)",
		kvt.Stats().Entries, time.Since(start), (int64(heap())-int64(before))/int64(lua.MaxTableEntries))
	if n := kvt.Stats().Entries; n != lua.MaxTableEntries-1 {
		t.Fatalf("loaded %d entries", n)
	}

	long := strings.Repeat("x", lua.MaxTableEntrySize)
	type op func(lua.Table) error
	set := func(k string, v any) op { return func(tb lua.Table) error { return tb.Set(ctx, k, v) } }
	add := func(k string, d float64) op {
		return func(tb lua.Table) error { _, err := tb.Add(ctx, k, d); return err }
	}
	del := func(k string) op { return func(tb lua.Table) error { return tb.Delete(ctx, k) } }
	for _, step := range []struct {
		name string
		op   op
		want error // nil: succeeds
	}{
		{"a value of another type", set("x", 3), lua.ErrTableEntry},
		{"a nil value", set("x", nil), lua.ErrTableEntry},
		{"key and value of 1024 bytes", set("k1", long[:1022]), nil},
		{"key and value of 1025 bytes", set("k1", long[:1023]), lua.ErrTableEntry},
		{"a key too long to count", add(long[:1017], 1), lua.ErrTableEntry},
		{"increment of a string", add("k1", 1), lua.ErrTableNotNumber},
		{"the 100,000th entry", set("last", true), nil},
		{"one entry too many", set("one-more", "v"), lua.ErrTableFull},
		{"increment of a new key when full", add("counter", 1), lua.ErrTableFull},
		{"overwrite when full", set("k2", 2.5), nil},
		{"increment of a number when full", add("k2", 1), nil},
		{"delete when full", del("k3"), nil},
		{"a new key after a delete", add("counter", 1), nil},
		{"full again", set("one-more", "v"), lua.ErrTableFull},
	} {
		errMem, errKV := step.op(mem), step.op(kvt)
		switch {
		case step.want == nil && (errMem != nil || errKV != nil):
			t.Errorf("%s: memory %v, kv %v; want success", step.name, errMem, errKV)
		case step.want != nil && (!errors.Is(errMem, step.want) || !errors.Is(errKV, step.want)):
			t.Errorf("%s: memory %v, kv %v; want %v", step.name, errMem, errKV, step.want)
		case errMem != nil && errMem.Error() != errKV.Error():
			t.Errorf("%s: messages differ:\n memory %v\n kv     %v", step.name, errMem, errKV)
		}
	}
	for _, k := range []string{"k1", "k2", "counter", "k3", "last"} {
		vm, _ := mem.Get(k)
		vk, _ := kvt.Get(k)
		if vm != vk {
			t.Errorf("%s: memory %v, kv %v", k, vm, vk)
		}
	}
}

// countScript counts uploads per bucket.
const countScript = `
function transform(ev)
  RGW.increment("uploads." .. ev.ext.bucket)
  return nil
end`

// countConcurrently runs events events through each engine from goroutines
// goroutines per engine. An event the table could not take now
// (lua.ErrTableUnavailable: an increment that lost every compare-and-set
// round, on a loaded machine) is sent again, as a sender does with the 503
// it gets, at most 10 times: counting it once is the table's job.
func countConcurrently(t *testing.T, engines []*lua.Engine, goroutines, events int) {
	t.Helper()
	var wg sync.WaitGroup
	var failed, retried atomic.Int64
	for i, e := range engines {
		for g := range goroutines {
			wg.Go(func() {
				for n := range events {
					ev := newEvent(fmt.Sprintf("%d-%d-%d", i, g, n), "photos", fmt.Sprintf("k%d", n))
					_, err := e.Transform(context.Background(), ev)
					for try := 0; try < 10 && errors.Is(err, lua.ErrTableUnavailable); try++ {
						retried.Add(1)
						_, err = e.Transform(context.Background(), ev)
					}
					if err != nil {
						if failed.Add(1) == 1 {
							t.Errorf("event %s: %v", ev.ID(), err)
						}
					}
				}
			})
		}
	}
	wg.Wait()
	if n := retried.Load(); n > 0 {
		t.Logf("%d events sent again after the table was unavailable", n)
	}
	if n := failed.Load(); n > 0 {
		t.Fatalf("%d events failed", n)
	}
}

// TestTwoProcessesCountExactly: two tables over two connections, like two
// replicas of the service, each with an engine running a counting script
// from several goroutines, end with the exact total, seen by both.
func TestTwoProcessesCountExactly(t *testing.T) {
	s := testutil.NATS(t)
	a := newTable(t, connect(t, s.ClientURL()), "rgw")
	b := newTable(t, connect(t, s.ClientURL()), "rgw")
	const goroutines, events = 4, 500
	engines := []*lua.Engine{newEngine(t, countScript, a), newEngine(t, countScript, b)}
	countConcurrently(t, engines, goroutines, events)
	const want = float64(2 * goroutines * events)
	for name, tbl := range map[string]*Table{"a": a, "b": b} {
		waitFor(t, "table "+name+" sees the total", func() bool {
			v, _ := tbl.Get("uploads.photos")
			return v == want
		})
	}
	// Stored under the key as the script wrote it: `nats kv get rgw
	// uploads.photos` finds it.
	e, err := bucket(t, s.ClientURL(), "rgw").Get(context.Background(), "uploads.photos")
	if err != nil || string(e.Value()) != fmt.Sprintf("i:%d", int(want)) {
		t.Fatalf("bucket holds %v (%v), want %v", e, err, want)
	}
	t.Logf("%v increments from 2 tables x %d goroutines: total %v; compare-and-set conflicts a=%d b=%d",
		want, goroutines, want, a.Stats().Conflicts, b.Stats().Conflicts)
}

// TestRestartedProcessSeesValues: what one process wrote, a process started
// later (scale to zero and back) reads, with its Lua types; a delete by one
// reaches the other.
func TestRestartedProcessSeesValues(t *testing.T) {
	s := testutil.NATS(t)
	ctx := context.Background()
	nc := connect(t, s.ClientURL())
	first := newTable(t, nc, "rgw")
	want := map[string]any{
		"s": "text", "empty": "", "int": float64(-7), "big": float64(1 << 60), "float": 0.1,
		"yes": true, "no": false, "a key. with *all* >kinds= of ünïcode": "v", "": "empty key",
	}
	for k, v := range want {
		if err := first.Set(ctx, k, v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := first.Add(ctx, "int", 2); err != nil {
		t.Fatal(err)
	}
	want["int"] = float64(-5)
	first.Close()
	nc.Close()

	second := newTable(t, connect(t, s.ClientURL()), "rgw")
	got, err := second.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("restarted table holds %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%q = %#v, want %#v", k, got[k], v)
		}
	}

	third := newTable(t, connect(t, s.ClientURL()), "rgw")
	if err := third.Delete(ctx, "s"); err != nil {
		t.Fatal(err)
	}
	if v, _ := third.Get("s"); v != nil {
		t.Errorf("deleter still reads %v", v)
	}
	waitFor(t, "delete reaches the other process", func() bool { v, _ := second.Get("s"); return v == nil })
	if err := second.Set(ctx, "s", "again"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new write after the delete reaches the deleter", func() bool { v, _ := third.Get("s"); return v == "again" })
}

// TestUnavailable: with NATS down, reads are served from the local copy, a
// write fails with ErrTableUnavailable (not a script error, whatever the
// policy, even when the script catches it), and once NATS is back writes
// work again with nothing lost.
func TestUnavailable(t *testing.T) {
	store := t.TempDir()
	s := testutil.NATSOn(t, -1, store)
	port := s.Addr().(*net.TCPAddr).Port
	url := s.ClientURL()
	tbl := newTable(t, connect(t, url), "rgw")
	ctx := context.Background()
	if err := tbl.Set(ctx, "kept", "yes"); err != nil {
		t.Fatal(err)
	}
	reader := newEngine(t, `function transform(ev) ev.ext.kept = RGW["kept"] return ev end`, tbl)
	writers := map[string]*lua.Engine{
		"reject":         newEngine(t, `function transform(ev) RGW.increment("n") return ev end`, tbl),
		"drop":           newEngine(t, `function transform(ev) RGW["x"] = 1 return ev end`, tbl, lua.WithOnError(lua.Drop)),
		"passthrough":    newEngine(t, `function transform(ev) RGW["x"] = nil RGW["kept"] = nil return ev end`, tbl, lua.WithOnError(lua.Passthrough)),
		"caught":         newEngine(t, `function transform(ev) pcall(function() RGW.increment("n") end) return ev end`, tbl),
		"caught, failed": newEngine(t, `function transform(ev) pcall(function() RGW["y"] = "v" end) error("later") end`, tbl),
	}
	testutil.StopNATS(s)

	for name, e := range writers {
		_, err := e.Transform(ctx, newEvent("ev-"+name, "b", "k"))
		var se *lua.ScriptError
		if !errors.Is(err, lua.ErrTableUnavailable) || errors.Is(err, lua.ErrScript) || !errors.As(err, &se) || se.EventID != "ev-"+name {
			t.Errorf("%s: %v; want ErrTableUnavailable, not ErrScript, naming the event", name, err)
		}
	}
	outs, err := reader.Transform(ctx, newEvent("read", "b", "k"))
	if err != nil || len(outs) != 1 || outs[0].Event.Extensions()["kept"] != "yes" {
		t.Errorf("read while NATS is down: %v, %v", outs, err)
	}

	testutil.NATSOn(t, port, store)
	waitFor(t, "writes work again", func() bool {
		_, err := writers["reject"].Transform(ctx, newEvent("again", "b", "k"))
		return err == nil
	})
	if v, _ := tbl.Get("kept"); v != "yes" {
		t.Errorf("kept = %v after the outage", v)
	}
}
