package kvtable

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
)

// TestClusterR3 runs the table on a real three-node JetStream cluster with
// an R3 bucket: two processes count exactly, and shutting down the server
// that leads the bucket's stream loses no acknowledged write.
func TestClusterR3(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster")
	}
	c := runCluster(t, 3)
	urls := c.urls()
	a := newTable(t, connect(t, urls), "rgw", WithCreate(3))
	b := newTable(t, connect(t, urls), "rgw", WithCreate(3))
	js, err := jetstream.New(connect(t, urls))
	if err != nil {
		t.Fatal(err)
	}
	info, err := js.Stream(context.Background(), "KV_rgw")
	if err != nil || info.CachedInfo().Config.Replicas != 3 {
		t.Fatalf("bucket stream: %v, %+v", err, info)
	}

	t.Run("two processes count exactly", func(t *testing.T) {
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
		t.Logf("R3: %v increments from 2 tables x %d goroutines: total %v; compare-and-set conflicts a=%d b=%d",
			want, goroutines, want, a.Stats().Conflicts, b.Stats().Conflicts)
	})

	t.Run("killed stream leader loses no acknowledged write", func(t *testing.T) {
		leader := c.streamLeader("rgw")
		if leader == nil {
			t.Fatal("no leader for the bucket's stream")
		}
		// Writers set keys and increment one counter, retrying what
		// fails as a sender retries a 503, and record what was
		// acknowledged. The leader goes down while they write.
		const goroutines, writes = 3, 150
		var acked sync.Map // key -> value
		var addsAcked, addsTried, failures atomic.Int64
		var started sync.WaitGroup
		started.Add(1)
		var once sync.Once
		var wg sync.WaitGroup
		for ti, tbl := range []*Table{a, b} {
			for g := range goroutines {
				wg.Go(func() {
					for n := range writes {
						if n == writes/3 {
							once.Do(started.Done)
						}
						key := fmt.Sprintf("w-%d-%d-%d", ti, g, n)
						for !try(func(ctx context.Context) error { return tbl.Set(ctx, key, float64(n)) }) {
							failures.Add(1)
						}
						acked.Store(key, float64(n))
						for {
							addsTried.Add(1)
							if try(func(ctx context.Context) error { _, err := tbl.Add(ctx, "acked", 1); return err }) {
								break
							}
							failures.Add(1)
						}
						addsAcked.Add(1)
					}
				})
			}
		}
		started.Wait()
		leader.Shutdown()
		leader.WaitForShutdown()
		killedAt := time.Now()
		wg.Wait()
		t.Logf("leader %s shut down; writers done %v later, %d failed attempts retried", leader.Name(), time.Since(killedAt).Round(time.Millisecond), failures.Load())

		// A process started now, on the surviving servers, reads
		// every acknowledged write.
		fresh := newTable(t, connect(t, c.urls()), "rgw")
		n := 0
		acked.Range(func(k, v any) bool {
			n++
			if got, _ := fresh.Get(k.(string)); got != v {
				t.Errorf("%s = %v after the leader was killed, want %v", k, got, v)
			}
			return true
		})
		got, _ := fresh.Get("acked")
		count, _ := got.(float64)
		if int64(count) < addsAcked.Load() || int64(count) > addsTried.Load() {
			t.Errorf("counter %v: %d increments acknowledged, %d tried", got, addsAcked.Load(), addsTried.Load())
		}
		t.Logf("%d acknowledged keys all present; counter %v (%d increments acknowledged, %d tried)", n, got, addsAcked.Load(), addsTried.Load())
		if n != 2*goroutines*writes {
			t.Errorf("%d keys acknowledged, want %d", n, 2*goroutines*writes)
		}
		// The processes that lived through it catch up too.
		for name, tbl := range map[string]*Table{"a": a, "b": b} {
			waitFor(t, "table "+name+" catches up after the kill", func() bool {
				v, _ := tbl.Get("acked")
				return v == got
			})
		}
	})
}

// try runs one write with a deadline, as a script call has one, and pauses
// after a failure, as a sender does before retrying.
func try(write func(ctx context.Context) error) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := write(ctx); err != nil {
		time.Sleep(50 * time.Millisecond)
		return false
	}
	return true
}
