package lua

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	cloudevents "github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
)

// The per-event cost of a transform with the pool of compiled, ready states,
// against a fresh state per event (parse and compile the script, create and
// sandbox a state, run it, close it), which is what RGW and Argo Events do.
//
//	go test -run '^$' -bench . -benchmem ./adapter/lua/

func benchSample(b *testing.B, name string, fresh, envelope bool) {
	e := sample(b, name)
	in := fixture(b, "downstream-xraylab-put-capture.json", cloudevent.Options{Envelope: envelope})
	ctx := context.Background()
	if !fresh {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := transformWith(e, ctx, in); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	files, err := readScripts(filepath.Join("..", "..", "samples", "lua", name))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		s, err := compileScript(e, files[0])
		if err != nil {
			b.Fatal(err)
		}
		st, err := s.warmState()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := st.call(ctx, callSite{origin: in}, Output{Event: in}, nil); err != nil {
			b.Fatal(err)
		}
		st.close()
	}
}

func BenchmarkAnonymizePooled(b *testing.B)     { benchSample(b, "anonymize.lua", false, false) }
func BenchmarkAnonymizeFreshState(b *testing.B) { benchSample(b, "anonymize.lua", true, false) }
func BenchmarkRGWCompatPooled(b *testing.B)     { benchSample(b, "rgw-compat.lua", false, false) }
func BenchmarkRGWCompatFresh(b *testing.B)      { benchSample(b, "rgw-compat.lua", true, false) }
func BenchmarkFilterPooled(b *testing.B)        { benchSample(b, "filter.lua", false, false) }
func BenchmarkXrayEnvelopePooled(b *testing.B)  { benchSample(b, "xray.lua", false, true) }

// The floor: calling a transform that returns the event as it came.
func BenchmarkIdentity(b *testing.B) {
	e := newEngine(b, `function transform(ev) return ev end`)
	in := fixture(b, "reef-put-capture.json", cloudevent.Options{})
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Transform(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAnonymizePooledParallel(b *testing.B) {
	e := sample(b, "anonymize.lua")
	in := fixture(b, "downstream-xraylab-put-capture.json", cloudevent.Options{})
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := e.Transform(context.Background(), in); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// The JSON data of an event to Lua tables and back, alone.
func BenchmarkJSONDecode(b *testing.B) {
	c := testCodec(b)
	raw := fixture(b, "downstream-xraylab-put-capture.json", cloudevent.Options{}).Data()
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := c.decode(raw, c.null); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONEncode(b *testing.B) {
	c := testCodec(b)
	raw := fixture(b, "downstream-xraylab-put-capture.json", cloudevent.Options{}).Data()
	v, err := c.decode(raw, c.null)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		if _, err := c.encode(v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRoutePooled(b *testing.B)  { benchSample(b, "route.lua", false, false) }
func BenchmarkFanoutPooled(b *testing.B) { benchSample(b, "fanout.lua", false, false) }

// transformWith is how the benchmarks call the engine: Transform, or
// TransformChecked (data vouched for, as the service does for what ingress
// decoded) under a Checked sub-benchmark name.
func transformWith(e *Engine, ctx context.Context, in *cloudevents.Event) ([]Output, error) {
	if checkedBench {
		return e.TransformChecked(ctx, in)
	}
	return e.Transform(ctx, in)
}

var checkedBench bool

// The same, with the data vouched for: what rgw-nats runs.
func BenchmarkChecked(b *testing.B) {
	checkedBench = true
	defer func() { checkedBench = false }()
	b.Run("AnonymizePooled", BenchmarkAnonymizePooled)
	b.Run("RoutePooled", BenchmarkRoutePooled)
	b.Run("FilterPooled", BenchmarkFilterPooled)
	b.Run("FanoutPooled", BenchmarkFanoutPooled)
	b.Run("Anonymize32KiB", BenchmarkAnonymize32KiB)
	b.Run("Route32KiB", BenchmarkRoute32KiB)
}

// A record of 32 KiB (user metadata and tags, as applications that tag
// heavily send them), through anonymize.lua and route.lua.
func BenchmarkAnonymize32KiB(b *testing.B) { benchLarge(b, "anonymize.lua") }
func BenchmarkRoute32KiB(b *testing.B)     { benchLarge(b, "route.lua") }

func benchLarge(b *testing.B, name string) {
	e := sample(b, name)
	in := largeFixture(b, 32<<10)
	ctx := context.Background()
	b.ReportAllocs()
	b.SetBytes(int64(len(in.Data())))
	for b.Loop() {
		if _, err := transformWith(e, ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// largeFixture is the Reef record with metadata and tags added until its
// data has at least size bytes.
func largeFixture(t testing.TB, size int) *cloudevents.Event {
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	var rec map[string]any
	if err := json.Unmarshal(in.Data(), &rec); err != nil {
		t.Fatal(err)
	}
	obj := rec["s3"].(map[string]any)["object"].(map[string]any)
	var meta, tags []any
	for i := 0; ; i++ {
		meta = append(meta, map[string]any{"key": fmt.Sprintf("x-amz-meta-field-%03d", i), "val": strings.Repeat(fmt.Sprintf("value %d; ", i), 8)})
		if i%4 == 0 {
			tags = append(tags, map[string]any{"key": fmt.Sprintf("tag-%03d", i), "val": fmt.Sprintf("t%d", i)})
		}
		obj["metadata"], obj["tags"] = meta, tags
		data, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) >= size {
			out := in.Clone()
			out.DataEncoded, out.DataBase64 = data, false // SetData of bytes would mark them base64
			return &out
		}
	}
}

// The view of a record's JSON text (lazy.go): the one pass that checks and
// indexes it, alone, for the 1 KiB and the 32 KiB record.
func BenchmarkJSONView(b *testing.B) {
	for _, tc := range []struct {
		name string
		raw  []byte
	}{
		{"1KiB", fixture(b, "downstream-xraylab-put-capture.json", cloudevent.Options{}).Data()},
		{"32KiB", largeFixture(b, 32<<10).Data()},
	} {
		for _, trusted := range []bool{false, true} {
			name := tc.name
			if trusted {
				name += "Trusted" // only the structure: TransformChecked
			}
			b.Run(name, func(b *testing.B) {
				c := testCodec(b)
				c.views.mt = c.L.NewTable()
				b.ReportAllocs()
				b.SetBytes(int64(len(tc.raw)))
				for b.Loop() {
					if _, err := c.view(tc.raw, c.null, trusted); err != nil {
						b.Fatal(err)
					}
					c.views.reset()
				}
			})
		}
	}
}

// What one operation of a script costs in the sandbox, the loop included
// (the "loop" row is the loop alone): each runs 1,000 times in one call on
// the X-ray record. samples/lua/README.md has the table; its advice (keep
// a field read twice in a local) comes from these rows.
//
//	go test -run '^$' -bench ScriptOps -benchmem ./adapter/lua/
func BenchmarkScriptOps(b *testing.B) {
	const loops = 1000
	in := fixture(b, "downstream-xraylab-put-capture.json", cloudevent.Options{})
	ctx := context.Background()
	for _, op := range []struct{ name, code string }{
		{"loop", "x = i"},
		{"local_call", "x = id(i)"},
		{"ev.type", "x = ev.type"},
		{"ev.ext.bucket", "x = ev.ext.bucket"},
		{"ev.record", "x = ev.record"},
		{"record_field", "x = rec.eventName"},
		{"record_path_4", "x = ev.record.s3.object.key"},
		{"local_table_field", "x = t.eventName"},
		{"concat_4", "x = 'rgw.' .. i .. '.' .. 'b'"},
		{"sub", "x = s:sub(1, 16)"},
		{"match_anchored", "x = key:match('^([^/]+)/')"},
		{"match_unanchored", "x = typ:match('%.(%a+):')"},
		{"token", "x = rn.token('my.bucket')"},
		{"hmac_sha256", "x = rn.hmac_sha256('user')"},
	} {
		b.Run(op.name, func(b *testing.B) {
			src := fmt.Sprintf(`local rn = require("rgwnats")
local function id(v) return v end
local t = {eventName = "ObjectCreated:Put"}
local s, key, typ = ("ab"):rep(20), "notification.json", "com.amazonaws.ObjectCreated:Put"
function transform(ev)
  local x
  local rec = ev.record
  for i = 1, %d do
    %s
  end
  return ev
end`, loops, op.code)
			e := newEngine(b, src, WithHMACKey(testKey))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Transform(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/loops, "ns/lua-op")
		})
	}
}
