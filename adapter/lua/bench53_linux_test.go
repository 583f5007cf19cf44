//go:build linux

package lua

import (
	"bytes"
	"context"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/lua/lua53"

	"github.com/cloudevents/sdk-go/v2/event"
	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
)

// The machine these benchmarks run on is shared: wall-clock ns/op of two
// runs differ more than the two variants do. BenchmarkLua53EventRatio
// runs both variants alternately, in batches, on one locked OS thread,
// and measures each batch in CPU time of that thread, which time spent
// waiting for a CPU does not count. It reports the CPU time per event of
// each variant and their ratio (translated/original).
//
//	go test -run '^$' -bench 'Lua53EventRatio' -count 6 ./adapter/lua/ | tee ratio.txt
//	benchstat ratio.txt

func threadCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ratio runs orig and trans alternately and reports their CPU time.
func ratio(b *testing.B, orig, trans *Engine, in *event.Event) {
	ctx := context.Background()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	const batch = 50
	var cpu [2]time.Duration
	n := 0
	for b.Loop() {
		for i, e := range []*Engine{orig, trans} {
			start := threadCPU()
			for range batch {
				if _, err := e.Transform(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			cpu[i] += threadCPU() - start
		}
		n += batch
	}
	b.ReportMetric(float64(cpu[0].Nanoseconds())/float64(n), "orig-cpu-ns/event")
	b.ReportMetric(float64(cpu[1].Nanoseconds())/float64(n), "trans-cpu-ns/event")
	b.ReportMetric(float64(cpu[1])/float64(cpu[0]), "translated/original")
}

// withOriginal swaps in e's script compiled without the translation.
func withOriginal(b *testing.B, e *Engine, f scriptFile) *Engine {
	old := e.chain.Load()
	e.chain.Store(&chain{scripts: []*script{untranslated(b, e, f)}, fingerprint: old.fingerprint})
	old.retire()
	return e
}

func BenchmarkLua53EventRatio(b *testing.B) {
	for _, sm := range benchSamples {
		b.Run(sm.name, func(b *testing.B) {
			files, err := readScripts(filepath.Join("..", "..", "samples", "lua", sm.name))
			if err != nil {
				b.Fatal(err)
			}
			orig := withOriginal(b, sample(b, sm.name, WithPoolSize(1)), files[0])
			ratio(b, orig, sample(b, sm.name, WithPoolSize(1)), fixture(b, sm.fixture, cloudevent.Options{Envelope: sm.envelope}))
		})
	}
	b.Run("concat-chain4x100", func(b *testing.B) {
		orig := withOriginal(b, newEngine(b, concatBenchSrc, WithPoolSize(1)), scriptFile{name: "script.lua", src: []byte(concatBenchSrc)})
		ratio(b, orig, newEngine(b, concatBenchSrc, WithPoolSize(1)), fixture(b, "reef-put-capture.json", cloudevent.Options{}))
	})
}

// BenchmarkLua53LoadRatio: the CPU time of translating a sample against
// that of parsing and compiling it, which every load does anyway.
func BenchmarkLua53LoadRatio(b *testing.B) {
	for _, sm := range benchSamples {
		b.Run(sm.name, func(b *testing.B) {
			files, err := readScripts(filepath.Join("..", "..", "samples", "lua", sm.name))
			if err != nil {
				b.Fatal(err)
			}
			src := files[0].src
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			var tr, pc time.Duration
			n := 0
			for b.Loop() {
				start := threadCPU()
				for range 20 {
					if _, err := lua53.Translate(src); err != nil {
						b.Fatal(err)
					}
				}
				mid := threadCPU()
				for range 20 {
					chunk, err := parse.Parse(bytes.NewReader(src), sm.name)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := glua.Compile(chunk, sm.name); err != nil {
						b.Fatal(err)
					}
				}
				tr, pc = tr+mid-start, pc+threadCPU()-mid
				n += 20
			}
			b.ReportMetric(float64(tr.Nanoseconds())/float64(n), "translate-cpu-ns/load")
			b.ReportMetric(float64(pc.Nanoseconds())/float64(n), "parse+compile-cpu-ns/load")
			b.ReportMetric(float64(tr)/float64(pc), "translate/parse+compile")
		})
	}
}
