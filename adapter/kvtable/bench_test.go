package kvtable

import (
	"context"
	"fmt"
	"runtime"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// The cost of the RGW table per operation and per event, in memory and in a
// KV bucket on an in-process nats-server (loopback; the server's own work
// runs on the same CPUs). The script without table access is the floor.
//
//	go test -run '^$' -bench . -benchmem ./adapter/kvtable/

func benchTables(b *testing.B) map[string]lua.Table {
	s := testutil.NATS(b)
	return map[string]lua.Table{
		"memory": lua.NewMemoryTable(),
		"kv":     newTable(b, connect(b, s.ClientURL()), "bench"),
	}
}

func BenchmarkTable(b *testing.B) {
	ctx := context.Background()
	for _, name := range []string{"memory", "kv"} {
		tbl := benchTables(b)[name]
		if err := tbl.Set(ctx, "n", 1.0); err != nil {
			b.Fatal(err)
		}
		b.Run(name+"/get", func(b *testing.B) {
			for b.Loop() {
				if _, err := tbl.Get("n"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/set", func(b *testing.B) {
			for b.Loop() {
				if err := tbl.Set(ctx, "s", "value"); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(name+"/add", func(b *testing.B) {
			for b.Loop() {
				if _, err := tbl.Add(ctx, "n", 1); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkScript is the cost of one event whose script reads or writes the
// table, against the same script without the table access.
func BenchmarkScript(b *testing.B) {
	scripts := []struct{ name, src string }{
		{"floor", `function transform(ev) local k = "first." .. ev.ext.bucket return nil end`},
		{"read", `function transform(ev) local v = RGW["first." .. ev.ext.bucket] return nil end`},
		{"write", `function transform(ev) RGW["first." .. ev.ext.bucket] = true return nil end`},
		{"increment", `function transform(ev) RGW.increment("uploads." .. ev.ext.bucket) return nil end`},
	}
	for _, name := range []string{"memory", "kv"} {
		tbl := benchTables(b)[name]
		for _, sc := range scripts {
			e := newEngine(b, sc.src, tbl)
			ev := newEvent("1", "photos", "k")
			b.Run(fmt.Sprintf("%s/%s", name, sc.name), func(b *testing.B) {
				for b.Loop() {
					if _, err := e.Transform(context.Background(), ev); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkReplicaSees is a write in one process until another process's
// local copy holds it: the write's round trip plus the watch delay.
func BenchmarkReplicaSees(b *testing.B) {
	s := testutil.NATS(b)
	a := newTable(b, connect(b, s.ClientURL()), "bench")
	other := newTable(b, connect(b, s.ClientURL()), "bench")
	ctx := context.Background()
	n := 0.0
	for b.Loop() {
		n++
		if err := a.Set(ctx, "n", n); err != nil {
			b.Fatal(err)
		}
		for {
			if v, _ := other.Get("n"); v == n {
				break
			}
			runtime.Gosched()
		}
	}
}
