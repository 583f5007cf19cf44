package lua

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
	glua "github.com/yuin/gopher-lua"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/samples/events"
)

// Views of event data (lazy.go) against the path they replace: ev.data
// decoded whole into tables and encoded whole (withEagerData). The outputs
// must be the same: the same attributes, subject, headers and raw payloads
// byte for byte, and data that is the same JSON value (the views keep the
// order and spelling of the text, the old path sorted keys).

func withEagerData() Option { return func(c *config) { c.eagerData = true } }

// sameOutputs fails unless the outputs of both paths are the same.
func sameOutputs(t *testing.T, what string, eager, lazy []Output) {
	t.Helper()
	if len(eager) != len(lazy) {
		t.Fatalf("%s: %d outputs (eager) vs %d (views)", what, len(eager), len(lazy))
	}
	for i := range eager {
		e, l := eager[i], lazy[i]
		if e.Subject != l.Subject || !reflect.DeepEqual(e.Header, l.Header) || string(e.Raw) != string(l.Raw) {
			t.Errorf("%s: output %d: subject/header/raw %q %v %q vs %q %v %q", what, i, e.Subject, e.Header, e.Raw, l.Subject, l.Header, l.Raw)
		}
		if (e.Event == nil) != (l.Event == nil) {
			t.Fatalf("%s: output %d: event %v vs %v", what, i, e.Event, l.Event)
		}
		if e.Event == nil {
			continue
		}
		ec, lc := e.Event.Context.Clone(), l.Event.Context.Clone()
		if !reflect.DeepEqual(ec, lc) {
			t.Errorf("%s: output %d: context\n%v\nvs\n%v", what, i, ec, lc)
		}
		if !sameJSON(e.Event.Data(), l.Event.Data()) {
			t.Errorf("%s: output %d: data\n%s\nvs\n%s", what, i, e.Event.Data(), l.Event.Data())
		}
	}
}

// sameJSON: the same bytes, or the same JSON value.
func sameJSON(a, b []byte) bool {
	if string(a) == string(b) {
		return true
	}
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	return reflect.DeepEqual(x, y)
}

// sameChecked runs in through TransformChecked (data trusted, indexed as
// it is read) on an engine of its own and fails unless it gives what the
// old path gave. The data gets trailing spaces up to minStructure: the
// same JSON value, and a text large enough to be stepped over.
func sameChecked(t *testing.T, what string, e *Engine, in *event.Event, eo []Output, eerr error) {
	t.Helper()
	padded := in.Clone()
	padded.DataEncoded = append(slices.Clone(in.Data()), strings.Repeat(" ", minStructure)...)
	co, cerr := e.TransformChecked(context.Background(), &padded)
	if fmt.Sprint(eerr) != fmt.Sprint(cerr) {
		t.Fatalf("%s: errors %v vs %v (checked)", what, eerr, cerr)
	}
	sameOutputs(t, what+" (checked)", eo, co)
}

func bothPaths(t *testing.T, newEng func(...Option) *Engine) (eager, lazy *Engine) {
	return newEng(withEagerData()), newEng()
}

// Every sample script on every captured payload, plain and in an envelope.
func TestViewsMatchEagerOnSamples(t *testing.T) {
	scripts, err := filepath.Glob(filepath.Join("..", "..", "samples", "lua", "*.lua"))
	if err != nil || len(scripts) < 8 {
		t.Fatalf("samples: %v %v", scripts, err)
	}
	mods := WithModuleDirs(filepath.Join("..", "..", "samples", "lua", "modules"))
	for _, script := range scripts {
		name := filepath.Base(script)
		t.Run(name, func(t *testing.T) {
			eager, lazy := bothPaths(t, func(o ...Option) *Engine { return sample(t, name, append(o, mods)...) })
			checked := sample(t, name, mods) // scripts may keep state: an engine of its own
			for _, fx := range events.Names() {
				for _, envelope := range []bool{false, true} {
					what := fmt.Sprintf("%s envelope=%v", fx, envelope)
					in := fixture(t, fx, cloudevent.Options{Envelope: envelope})
					before := string(in.Data())
					eo, eerr := eager.Transform(context.Background(), in)
					lo, lerr := lazy.Transform(context.Background(), in)
					if fmt.Sprint(eerr) != fmt.Sprint(lerr) {
						t.Fatalf("%s: errors %v vs %v", what, eerr, lerr)
					}
					sameOutputs(t, what, eo, lo)
					sameChecked(t, what, checked, in, eo, eerr)
					if string(in.Data()) != before {
						t.Fatalf("%s: the input's data changed", what)
					}
				}
			}
		})
	}
}

// viewData is event data that exercises what views must get right: keys
// that repeat or hold escapes, nulls, numbers written in several ways,
// nested arrays, empty containers.
const viewData = `{"Records":[{"eventVersion":"2.2","eventName":"ObjectCreated:Put","awsRegion":"default",
 "userIdentity":{"principalId":"user"},"requestParameters":{"sourceIPAddress":"10.0.0.1"},
 "s3":{"bucket":{"name":"b","ownerIdentity":{"principalId":"user"}},
  "object":{"key":"dir/a.jpg","size":1.50e3,"eTag":"e","metadata":[{"key":"x-amz-meta-route","val":"images"},{"key":"k\u00e9","val":null}],
   "tags":[],"nested":[[1,2],[],[{"a":"b"}]],"dup":{"a":1,"bb":0,"a":2},"dup2":{"ab":1,"k":0,"cd":2,"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk":3,"ab":4},"alike":{"ab":1,"k":0,"cd":2,"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk":3},"esc\"key":{"x":1,"y\bz":[2]},"empty":{},"t":true,"f":false,"n":null}}}]}`

func viewEvent(t *testing.T, data string) *event.Event {
	t.Helper()
	ev := event.New()
	ev.SetID("view-1")
	ev.SetSource("test")
	ev.SetType("com.amazonaws.ObjectCreated:Put")
	ev.SetSubject("dir/a.jpg")
	ev.SetDataContentType(event.ApplicationJSON)
	ev.DataEncoded = []byte(data) // SetData of bytes would mark them base64
	return &ev
}

// Scripts that use the data every way a table is used, on both paths.
func TestViewsMatchEagerOnTableUse(t *testing.T) {
	rn := `local rn = require("rgwnats")
`
	for _, tc := range []struct{ name, body string }{
		{"read only", `local r = ev.record; ev.ext.k = r.s3.object.key; ev.ext.n = r.s3.object.size`},
		{"pairs order", `local ks = {} for k in pairs(ev.record) do ks[#ks+1] = k end ev.ext.keys = table.concat(ks, ",")`},
		{"pairs order after reads and writes", `local r = ev.record; local _ = r.s3; r.awsRegion = "x"; r.zz = 1
		 local ks = {} for k, v in pairs(r) do ks[#ks+1] = k .. "=" .. type(v) end ev.ext.keys = table.concat(ks, ",")`},
		{"pairs of nested", `local ks = {} for k, v in pairs(ev.record.s3.object) do ks[#ks+1] = k .. "=" .. tostring(type(v)) end ev.ext.keys = table.concat(ks, ",")`},
		{"next", `ev.ext.first = next(ev.record); ev.ext.second = next(ev.record, ev.ext.first)`},
		{"rawget", `ev.ext.r = rawget(ev.record, "eventName"); ev.ext.s = type(rawget(ev.record, "s3"))`},
		{"rawset", `rawset(ev.record, "awsRegion", "r"); rawset(ev.record, "new", "n")`},
		{"type and metatable", `assert(type(ev.record) == "table" and getmetatable(ev.record) == nil and getmetatable(ev.record.s3) == nil)`},
		{"setmetatable", `local r = setmetatable(ev.record.s3.object, {__index = function() return "d" end}); ev.ext.x = r.missing; r.key = "k2"`},
		{"delete then read", `ev.record.awsRegion = nil; assert(ev.record.awsRegion == nil); ev.record.s3.bucket = nil; assert(ev.record.s3.bucket == nil)`},
		{"delete then write back", `local b = ev.record.s3.bucket; ev.record.s3.bucket = nil; ev.record.s3.bucket = b`},
		{"write then read", `ev.record.awsRegion = "eu"; assert(ev.record.awsRegion == "eu"); ev.record.s3.object.key = 5; assert(ev.record.s3.object.key == 5)`},
		{"new keys", `ev.record.added = {a = 1, b = {}}; ev.record.zzz = "z"; ev.record.s3.object.aaa = rn.json.array()`},
		{"arrays", `local m = ev.record.s3.object.metadata; table.insert(m, {key = "k", val = "v"}); ev.ext.n = #m
		 for _, kv in ipairs(m) do kv.val = "-" end; ev.record.s3.object.tags = nil; table.remove(ev.record.s3.object.nested)`},
		{"array element replaced", `ev.record.s3.object.metadata[1] = "x"; ev.record.s3.object.nested[1][2] = 3`},
		{"array elements read", `local s = "" for _, kv in ipairs(ev.record.s3.object.metadata) do s = s .. kv.key .. tostring(kv.val) end ev.ext.s = s`},
		{"containers moved", `local r = ev.record; r.copy = r.s3.bucket; r.s3 = {x = 1}; r.userIdentity.principalId = r.copy.name`},
		{"json.encode", `ev.ext.j = rn.json.encode(ev.record); ev.ext.o = rn.json.encode(ev.record.s3.object)`},
		{"json.encode after changes", `ev.record.s3.object.key = "k2"; ev.record.x = 1; ev.ext.j = rn.json.encode(ev.record)`},
		{"clone", `ev.record.awsRegion = "c"; local c = ev:clone(); c.record.eventName = "n"; c.record.s3.object.key = nil; return ev, c`},
		{"clone first", `local c = ev:clone(); c.record.eventName = "n"; return ev, c`},
		{"data reassigned", `local d = ev.data; d.Records[1].awsRegion = "x"; ev.data = d`},
		{"data replaced by a string", `local k = ev.record.s3.object.key; ev.data = k`},
		{"data replaced by a part", `ev.data = ev.record.s3`},
		{"numbers", `local o = ev.record.s3.object; o.size = o.size + 1; ev.ext.n = o.nested[1][1]`},
		{"nulls", `local o = ev.record.s3.object; ev.ext.a = tostring(o.n); ev.ext.b = tostring(o.metadata[2].val); ev.ext.c = tostring(o.n == rn.json.null)`},
		{"repeated and escaped keys", `local o = ev.record.s3.object; ev.ext.d = o.dup.a; ev.ext.e = o['esc"key'].x; o.dup.b = 1`},
		{"repeated keys apart, keys of lengths 64 apart", `local o = ev.record.s3.object; ev.ext.a = o.dup.a; ev.ext.bb = o.dup.bb
		 ev.ext.ab = o.dup2.ab; ev.ext.k = o.dup2.k .. o.dup2[string.rep("k", 65)] .. o.alike.ab .. o.alike[string.rep("k", 65)]; o.alike.cd = 5`},
		{"publish a table", `rn.publish("raw.subject", ev.record.s3)`},
		{"record of Records", `ev.ext.x = tostring(ev.record == ev.data.Records[1])`},
		{"table.insert into an object fails", `table.insert(ev.record, 1)`},
		{"read missing", `ev.ext.m = tostring(ev.record.missing); ev.ext.n = tostring(ev.record[1])`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := rn + "function transform(ev)\ndo\n" + tc.body + "\nend\nreturn ev\nend\n"
			eager, lazy := bothPaths(t, func(o ...Option) *Engine { return newEngine(t, src, o...) })
			checked := newEngine(t, src)
			// Written for viewData; on the Reef record some fail (no
			// Records, no nested arrays), the same way on both paths.
			for i, in := range []*event.Event{viewEvent(t, viewData), fixture(t, "reef-put-capture.json", cloudevent.Options{})} {
				before := string(in.Data())
				eo, eerr := eager.Transform(context.Background(), in)
				lo, lerr := lazy.Transform(context.Background(), in)
				if fmt.Sprint(eerr) != fmt.Sprint(lerr) {
					t.Fatalf("errors %v vs %v", eerr, lerr)
				}
				sameChecked(t, tc.name, checked, in, eo, eerr)
				if wantErr := strings.HasSuffix(tc.name, "fails"); i == 0 && (eerr != nil) != wantErr {
					t.Fatalf("error %v", eerr)
				}
				sameOutputs(t, tc.name, eo, lo)
				if string(in.Data()) != before {
					t.Fatal("the input's data changed")
				}
			}
		})
	}
}

// A script that only reads the data publishes the data as it came: the
// same bytes, not a copy, and the event is not copied either.
func TestViewUnchangedDataIsShared(t *testing.T) {
	e := newEngine(t, `function transform(ev) ev.nats.subject = "k." .. #ev.record.s3.object.key return ev end`)
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	out := one(t, transformOne(t, e, in))
	if out != in || !sameBytes(out.Data(), in.Data()) {
		t.Errorf("an unchanged event was copied")
	}
}

// Data a script only read goes out as the very bytes it came as, however
// the script read it (arrays and nested objects included, spaces kept);
// data a script changed anywhere is encoded. The text has spaces and line
// breaks that splicing would drop. (An object with escaped or repeated keys
// is a plain table: its record is spliced.)
func TestViewOnlyReadIsShared(t *testing.T) {
	data := strings.NewReplacer(`"dup":{"a":1,"bb":0,"a":2},`, "", `"dup2":{"ab":1,"k":0,"cd":2,"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk":3,"ab":4},`, "", `"esc\"key":{"x":1,"y\bz":[2]},`, "").Replace(viewData)
	if !strings.Contains(data, "\n") || strings.Contains(data, "dup") || strings.Contains(data, "esc") {
		t.Fatalf("test data: %s", data)
	}
	for _, tc := range []struct {
		name, body string
		shared     bool
	}{
		{"record", `local r = ev.record`, true},
		{"nested reads", `local o = ev.record.s3.object; ev.ext.k = o.key .. o.eTag .. tostring(o.size)`, true},
		{"arrays read", `for _, kv in ipairs(ev.record.s3.object.metadata) do local _ = kv.key end; local _ = #ev.record.s3.object.nested[1]`, true},
		{"attribute changed", `ev.subject = ev.record.s3.object.key .. "/x"`, true},
		{"scalars read twice", `local o = ev.record.s3.object; assert(o.key == o.key and o.size + o.size == 2 * o.size); ev.ext.k = o.key`, true},
		{"scalar read, then written", `local o = ev.record.s3.object; local k = o.key; o.key = k .. "x"; assert(o.key == k .. "x")`, false},
		{"scalar read, removed, read", `local o = ev.record.s3.object; local k = o.key; o.key = nil; assert(k ~= nil and o.key == nil)`, false},
		{"member written", `ev.record.s3.object.key = "k"`, false},
		{"member written back", `local o = ev.record.s3.object; o.key = o.key`, false},
		{"member removed", `ev.record.requestParameters = nil`, false},
		{"key added", `ev.record.s3.x = 1`, false},
		{"array element added", `table.insert(ev.record.s3.object.metadata, {key = "a", val = "b"})`, false},
		{"array element replaced", `ev.record.s3.object.nested[1][1] = 9`, false},
		{"array key added", `ev.record.s3.object.metadata.x = 1`, false},
		{"object in an array changed", `ev.record.s3.object.metadata[1].val = "v"`, false},
		{"pairs", `for _ in pairs(ev.record.s3) do end`, false}, // full views are spliced
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, "function transform(ev)\ndo\n"+tc.body+"\nend\nreturn ev\nend\n")
			in := viewEvent(t, data)
			out := one(t, transformOne(t, e, in))
			if shared := sameBytes(out.Data(), in.Data()); shared != tc.shared {
				t.Errorf("data shared: %v, want %v (%s)", shared, tc.shared, out.Data())
			}
			if !tc.shared && string(out.Data()) == string(in.Data()) {
				t.Errorf("changed data came out as it came in")
			}
			if string(in.Data()) != data {
				t.Fatal("the input's data changed")
			}
		})
	}
}

// A view is read during its call only: its text's index is reused by the
// next one. Keeping it fails with a reason instead of reading nothing.
func TestViewKeptBetweenCallsFails(t *testing.T) {
	e := newEngine(t, `local kept
function transform(ev)
  if kept then ev.ext.k = kept.s3.object.key end
  kept = ev.record
  return ev
end`, WithPoolSize(1))
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	transformOne(t, e, in)
	_, err := e.Transform(context.Background(), in)
	if err == nil || !strings.Contains(err.Error(), "event data of an earlier call") {
		t.Errorf("error %v", err)
	}
}

// The tables of views come from slabs (lazyViews.table): none may be handed
// out again in a later call, or a kept view would turn into another event's
// data.
func TestViewTablesAreNeverReused(t *testing.T) {
	e := newEngine(t, `local seen, n = {}, 0
function transform(ev)
  local r = ev.record
  for _, v in ipairs({r, r.s3, r.s3.object, r.s3.bucket, r.userIdentity, r.s3.object.metadata}) do
    if seen[v] then error("a view table of an earlier call came back") end
    seen[v], n = true, n + 1
  end
  ev.ext.views = tostring(n)
  return ev
end`, WithPoolSize(1))
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	calls := 3*viewSlab + 1
	var out *event.Event
	for range calls {
		out = one(t, transformOne(t, e, in))
	}
	if got, want := out.Extensions()["views"], fmt.Sprint(6*calls); got != want {
		t.Errorf("views seen %v, want %s", got, want)
	}
}

// viewCodec is a codec with views, as a state has one.
func viewCodec(t testing.TB) *jsonCodec {
	c := testCodec(t)
	c.views.mt = c.L.NewTable()
	return c
}

// fillAll fills every view reachable from v, as pairs over all of it would.
func fillAll(c *jsonCodec, v glua.LValue, depth int) {
	t, ok := v.(*glua.LTable)
	if !ok || depth > maxJSONDepth {
		return
	}
	if ln := c.views.node(t); ln != nil {
		c.fill(ln)
	}
	for k, e := t.Next(glua.LNil); k != glua.LNil; k, e = t.Next(k) {
		fillAll(c, e, depth+1)
	}
}

// canonical is the old path's encoding of text: decoded whole, keys sorted,
// twice (the first pass turns bytes that are not UTF-8 into \ufffd escapes,
// the second writes U+FFFD as it is): equal for the same JSON value.
func canonical(t *testing.T, c *jsonCodec, text []byte) string {
	t.Helper()
	for range 2 {
		v, err := c.decode(text, c.null)
		if err != nil {
			t.Fatalf("%q does not decode: %v", text, err)
		}
		b, err := c.encode(v)
		if err != nil {
			t.Fatalf("%q does not encode: %v", text, err)
		}
		text = slices.Clone(b)
	}
	return string(text)
}

// FuzzJSONView: the view's index accepts exactly what the decoder accepts,
// with the same error; an untouched view is written back as the same JSON
// value; a view filled whole is what the decoder makes of the text (the
// same encoding, byte for byte); and changes made through the view land as
// the same changes made to the decoded tables.
func FuzzJSONView(f *testing.F) {
	for _, s := range []string{
		viewData, `{"a":1}`, `[1,{"b":[]},"x"]`, `"s"`, `{"a":{"a":{"a":null}},"b":[true,false]}`,
		`{"k":"\u00e9\ud83d\ude00","k2":"x\\y"}`, `{"a":1,"a":2}`, `{"e\"":{"x":[]}}`, ` { "s" : [ 1 , 2 ] } `, `{"a":`, `[1,]`,
		`{"big":1e400,"a":[1]}`, `[-0.5e-3,123456789012345678901,{"x":" \\\" "}]`,
		strings.Repeat("[", maxJSONDepth) + strings.Repeat("]", maxJSONDepth),
		strings.Repeat(`{"a":`, maxJSONDepth+1) + "1" + strings.Repeat("}", maxJSONDepth+1),
	} {
		f.Add([]byte(s), uint8(0))
	}
	c := viewCodec(f)
	f.Fuzz(func(t *testing.T, data []byte, op uint8) {
		fuzzView(t, c, data, op, false)
		// A trusted text (valid JSON) is indexed as it is read: the same
		// again, the depth and number errors of the decoder included. (Spaces
		// make it large enough to be.)
		if json.Valid(data) {
			fuzzView(t, c, append(slices.Clone(data), strings.Repeat(" ", minStructure)...), op, true)
		}
	})
}

func fuzzView(t *testing.T, c *jsonCodec, data []byte, op uint8, trusted bool) {
	defer c.views.reset()
	dv, derr := c.decode(data, c.null)
	v, err := c.view(data, c.null, trusted)
	if fmt.Sprint(derr) != fmt.Sprint(err) {
		t.Fatalf("%q (trusted %v): decoder says %v, view %v", data, trusted, derr, err)
	}
	if err != nil {
		return
	}
	spliced := func() []byte {
		out, err := c.encodeOutput(v, 1<<30, nil)
		if err != nil {
			t.Fatalf("%q: splice: %v", data, err)
		}
		return slices.Clone(out)
	}
	want := canonical(t, c, data)
	if out := spliced(); canonical(t, c, out) != want {
		t.Fatalf("%q spliced to %q: %s, want %s", data, out, canonical(t, c, out), want)
	}
	top, isTable := v.(*glua.LTable)
	if isTable && c.views.node(top) != nil && !c.unchangedText(top, data) {
		t.Fatalf("%q: a view nobody touched is not unchanged", data)
	}
	// Change the top object (op picks what) through the view and the
	// same in the decoded tables.
	if isTable {
		if ln := c.views.node(top); ln != nil && !ln.arr && len(ln.mem) > 0 {
			i := int(op) % len(ln.mem)
			key, _ := c.keyOf(ln.doc, &ln.doc.tape[ln.mem[i].at])
			var nv glua.LValue = glua.LNil
			if op&0x80 != 0 {
				nv = glua.LString("changed")
			}
			switch op & 0x60 {
			case 0x20:
				_ = c.get(ln, glua.LString(key)) // read first
			case 0x40:
				c.fill(ln)
			}
			if ln.full {
				top.RawSetString(key, nv)
			} else {
				c.set(ln, glua.LString(key), nv)
			}
			if op&0x10 != 0 {
				c.set(ln, glua.LString("zz-added"), glua.LNumber(1))
				dv.(*glua.LTable).RawSetString("zz-added", glua.LNumber(1))
			}
			dv.(*glua.LTable).RawSetString(key, nv)
			if c.unchangedText(top, data) {
				t.Fatalf("%q op %#x: a changed view is unchanged", data, op)
			}
			eb, err := c.encode(dv)
			if err != nil {
				t.Fatal(err)
			}
			want = canonical(t, c, slices.Clone(eb))
			if out := spliced(); canonical(t, c, out) != want {
				t.Fatalf("%q op %#x spliced to %q: %s, want %s", data, op, out, canonical(t, c, out), want)
			}
		}
	}
	// Filled whole, the view is the decoded tables: the same bytes.
	eb, err := c.encode(dv)
	if err != nil {
		t.Fatal(err)
	}
	wantBytes := string(eb)
	fillAll(c, v, 0)
	b, err := c.encode(v)
	if err != nil {
		t.Fatalf("%q: encode of the filled view: %v", data, err)
	}
	if string(b) != wantBytes {
		t.Fatalf("%q (trusted %v): filled view encodes to %s, want %s", data, trusted, b, wantBytes)
	}
}

// What views keep between calls is bounded, however large the last text.
func TestViewsKeepLittle(t *testing.T) {
	c := viewCodec(t)
	text := []byte(`{"list":[` + strings.Repeat(`{"a":{"b":[1,2]}},`, 4*maxKeptViews) + `{}]}`)
	v, err := c.view(text, c.null, false)
	if err != nil {
		t.Fatal(err)
	}
	fillAll(c, v, 0)
	if c.views.used <= maxKeptViews {
		t.Fatalf("only %d views made: the test does not reach the bound", c.views.used)
	}
	c.views.reset()
	if len(c.views.pool) > maxKeptViews || len(c.views.nodes) != 0 || cap(c.views.docs[0].tape) > maxKeptTape {
		t.Errorf("kept %d views, %d in the map, a tape of %d nodes", len(c.views.pool), len(c.views.nodes), cap(c.views.docs[0].tape))
	}
	for _, n := range c.views.pool {
		if n.t != nil || n.doc != nil || cap(n.mem) > maxKeptStack {
			t.Fatalf("a kept view holds on to its table, text or members: %+v", n)
		}
	}
}

// A record of 32 KiB (whose output gets a buffer of its own) through the
// samples that read and change it, on both paths.
func TestViewsMatchEagerOnLargeRecord(t *testing.T) {
	for _, name := range []string{"anonymize.lua", "route.lua", "fanout.lua", "xray.lua"} {
		t.Run(name, func(t *testing.T) {
			eager, lazy := bothPaths(t, func(o ...Option) *Engine { return sample(t, name, o...) })
			checked := sample(t, name)
			in := largeFixture(t, 32<<10)
			before := string(in.Data())
			eo, eerr := eager.Transform(context.Background(), in)
			lo, lerr := lazy.Transform(context.Background(), in)
			if eerr != nil || lerr != nil {
				t.Fatalf("errors %v, %v", eerr, lerr)
			}
			sameOutputs(t, name, eo, lo)
			sameChecked(t, name, checked, in, eo, eerr)
			if string(in.Data()) != before {
				t.Fatal("the input's data changed")
			}
		})
	}
}

// A trusted text of minStructure bytes or more is stepped over: only what
// is read is indexed. A smaller one, or one the caller did not vouch for,
// is indexed whole; so is a trusted one the decoder refuses even so (it
// gets the decoder's error).
func TestViewTrustedIsIndexedAsRead(t *testing.T) {
	large := largeFixture(t, 32<<10).Data()
	deep := []byte(strings.Repeat("[", maxJSONDepth+1) + strings.Repeat("]", maxJSONDepth+1) + strings.Repeat(" ", minStructure))
	huge := []byte(`{"n":1e400}` + strings.Repeat(" ", minStructure))
	for _, tc := range []struct {
		name     string
		raw      []byte
		trusted  bool
		stepped  bool
		maxNodes int
	}{
		{"large, trusted", large, true, true, 16},
		{"large", large, false, false, 1 << 20},
		{"small, trusted", []byte(viewData), true, false, 1 << 20},
		{"too deep, trusted", deep, true, false, 1 << 20},
		{"number out of range, trusted", huge, true, false, 1 << 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := viewCodec(t)
			defer c.views.reset()
			_, verr := c.view(tc.raw, c.null, tc.trusted)
			_, derr := c.decode(tc.raw, c.null)
			if fmt.Sprint(verr) != fmt.Sprint(derr) {
				t.Fatalf("view: %v, decoder: %v", verr, derr)
			}
			doc := c.views.docs[0]
			if doc.trusted != tc.stepped || len(doc.tape) > tc.maxNodes {
				t.Errorf("stepped over %v, %d nodes; want %v, at most %d", doc.trusted, len(doc.tape), tc.stepped, tc.maxNodes)
			}
		})
	}
}

// A chain under TransformChecked: the data the first script kept or wrote
// is vouched for to the next (DataJSON), with the old path's results.
func TestChainChecked(t *testing.T) {
	for _, first := range []string{
		`function transform(ev) ev.nats.subject = "k." .. #ev.record.s3.object.metadata return ev end`,
		`function transform(ev) ev.record.s3.object.eTag = "e" return ev end`,
	} {
		scripts := map[string]string{
			"10-first.lua":  first,
			"20-second.lua": `function transform(ev) ev.record.s3.object.key = "x" .. ev.record.s3.object.key return ev end`,
		}
		ctx := context.Background()
		eager, err := New(ctx, chainDir(t, scripts), WithReload(0), WithTimeout(testTimeout), withEagerData())
		if err != nil {
			t.Fatal(err)
		}
		defer eager.Close()
		checked, err := New(ctx, chainDir(t, scripts), WithReload(0), WithTimeout(testTimeout))
		if err != nil {
			t.Fatal(err)
		}
		defer checked.Close()
		in := largeFixture(t, 32<<10)
		eo, eerr := eager.Transform(ctx, in)
		co, cerr := checked.TransformChecked(ctx, in)
		if eerr != nil || cerr != nil || len(co) != 1 {
			t.Fatalf("errors %v, %v; %d outputs", eerr, cerr, len(co))
		}
		sameOutputs(t, "chain", eo, co)
		if !co[0].DataJSON {
			t.Error("the chain's output data is not marked valid")
		}
	}
}
