package lua

import (
	"bytes"
	"context"
	"path/filepath"
	"testing"

	"github.com/rgw-nats/rgw-nats/adapter/lua/lua53"

	glua "github.com/yuin/gopher-lua"
	"github.com/yuin/gopher-lua/parse"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
)

// What the Lua 5.3 front end costs, at load and per event. The samples are
// Lua 5.1 as well, so they also run untranslated: the "original" variant
// swaps in a version compiled straight from the source, with gopher-lua's
// own .. operator; "translated" is what the engine runs (.. through the
// bounded concat helper).
//
//	go test -run '^$' -bench 'Lua53' -count 6 ./adapter/lua/ > new.txt
//	benchstat -col /variant new.txt

var benchSamples = []struct {
	name, fixture string
	envelope      bool
}{
	{"anonymize.lua", "downstream-xraylab-put-capture.json", false},
	{"rgw-compat.lua", "downstream-xraylab-put-capture.json", false},
	{"route.lua", "reef-put-capture.json", false},
	{"xray.lua", "downstream-xraylab-put-capture.json", true},
}

// untranslated compiles f without the 5.3 front end.
func untranslated(tb testing.TB, e *Engine, f scriptFile) *script {
	tb.Helper()
	chunk, err := parse.Parse(bytes.NewReader(f.src), f.name)
	if err != nil {
		tb.Fatal(err)
	}
	rgwStyle, err := style(chunk, e.cfg.function)
	if err != nil {
		tb.Fatal(err)
	}
	proto, err := glua.Compile(chunk, f.name)
	if err != nil {
		tb.Fatal(err)
	}
	return &script{eng: e, name: f.name, proto: proto, rgwStyle: rgwStyle, idle: make(chan *state, e.cfg.poolSize)}
}

func BenchmarkLua53Event(b *testing.B) {
	for _, sm := range benchSamples {
		for _, variant := range []string{"original", "translated"} {
			b.Run(sm.name+"/variant="+variant, func(b *testing.B) {
				e := sample(b, sm.name)
				if variant == "original" {
					files, err := readScripts(filepath.Join("..", "..", "samples", "lua", sm.name))
					if err != nil {
						b.Fatal(err)
					}
					old := e.chain.Load()
					e.chain.Store(&chain{scripts: []*script{untranslated(b, e, files[0])}, fingerprint: old.fingerprint})
					old.retire()
				}
				in := fixture(b, sm.fixture, cloudevent.Options{Envelope: sm.envelope})
				ctx := context.Background()
				if _, err := e.Transform(ctx, in); err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := e.Transform(ctx, in); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

const concatBenchSrc = `function transform(ev)
  local a, n = "abc", 0
  for i = 1, 100 do local s = a .. i .. "/" .. a n = n + #s end
  return ev
end`

// The operator alone: a four-part chain of .., native against the helper.
func BenchmarkLua53Concat(b *testing.B) {
	src := concatBenchSrc
	for _, variant := range []string{"original", "translated"} {
		b.Run("chain4x100/variant="+variant, func(b *testing.B) {
			e := newEngine(b, src)
			if variant == "original" {
				old := e.chain.Load()
				e.chain.Store(&chain{scripts: []*script{untranslated(b, e, scriptFile{name: "script.lua", src: []byte(src)})}})
				old.retire()
			}
			in := fixture(b, "reef-put-capture.json", cloudevent.Options{})
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Transform(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// Load: translating a sample, against parsing and compiling it (which
// every load does anyway).
func BenchmarkLua53Load(b *testing.B) {
	for _, sm := range benchSamples {
		files, err := readScripts(filepath.Join("..", "..", "samples", "lua", sm.name))
		if err != nil {
			b.Fatal(err)
		}
		src := files[0].src
		b.Run(sm.name+"/variant=translate", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				if _, err := lua53.Translate(src); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(sm.name+"/variant=parse+compile", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(src)))
			for b.Loop() {
				chunk, err := parse.Parse(bytes.NewReader(src), sm.name)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := glua.Compile(chunk, sm.name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
