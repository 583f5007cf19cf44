package lua

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
)

// record decodes the data of an output as an RGW record (unwrapping an
// envelope).
func record(t *testing.T, ev *event.Event) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(ev.Data(), &m); err != nil {
		t.Fatalf("data %q: %v", ev.Data(), err)
	}
	if recs, ok := m["Records"].([]any); ok {
		return recs[0].(map[string]any)
	}
	return m
}

func path(m map[string]any, keys ...string) any {
	var v any = m
	for _, k := range keys {
		mm, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = mm[k]
	}
	return v
}

func one(t *testing.T, outs []Output) *event.Event {
	t.Helper()
	if len(outs) != 1 || outs[0].Event == nil {
		t.Fatalf("want one event output, got %+v", outs)
	}
	return outs[0].Event
}

func TestEventAPI(t *testing.T) {
	for _, tc := range []struct {
		name   string
		script string // body of transform(ev)
		check  func(t *testing.T, in *event.Event, outs []Output)
	}{{
		name:   "unchanged event is the input itself",
		script: `return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			if one(t, outs) != in {
				t.Error("unchanged event was copied")
			}
		},
	}, {
		name: "read attributes",
		script: `
			assert(ev.id == "1795554846.485564.8dd5067d1c62a18c414da9ef1f1dbde6.main-created", ev.id)
			assert(ev.source == "ceph:s3..nb-main", ev.source)
			assert(ev.type == "com.amazonaws.ObjectCreated:Put", ev.type)
			assert(ev.subject == "docs/report.txt")
			assert(ev.time == "2026-11-24T21:14:06.482503Z", ev.time)
			assert(ev.datacontenttype == "application/json")
			assert(ev.dataschema == nil)
			assert(ev.specversion == "1.0")
			assert(ev.ext.bucket == "nb-main" and ev.ext.objectkey == "docs/report.txt")
			assert(ev.ext.eventname == "ObjectCreated:Put" and ev.ext.nosuch == nil)
			assert(ev.nats.subject == nil)
			assert(tostring(ev) == "event " .. ev.id)
			return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) { one(t, outs) },
	}, {
		name: "ext and nats are one proxy each, a clone has its own",
		script: `
			assert(rawequal(ev.ext, ev.ext) and rawequal(ev.nats, ev.nats) and not rawequal(ev.ext, ev.nats))
			local c = ev:clone()
			assert(not rawequal(c.ext, ev.ext) and not rawequal(c.nats, ev.nats))
			c.ext.k, c.nats.subject = "clone", "x.clone"
			assert(ev.ext.k == nil and ev.nats.subject == nil and c.ext.k == "clone")
			return ev, c`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			if len(outs) != 2 || outs[0].Event != in || outs[1].Event.Extensions()["k"] != "clone" || outs[1].Subject != "x.clone" {
				t.Errorf("outputs %v", outs)
			}
		},
	}, {
		name: "set attributes",
		script: `
			ev.id = "new-id"
			ev.source = "urn:test"
			ev.type = "com.example.changed"
			ev.subject = "other/key"
			ev.time = "2020-01-02T03:04:05Z"
			ev.dataschema = "https://example.com/schema"
			return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			ev := one(t, outs)
			if ev == in || in.ID() == "new-id" || in.Subject() != "docs/report.txt" {
				t.Fatal("the input event was modified")
			}
			if ev.ID() != "new-id" || ev.Source() != "urn:test" || ev.Type() != "com.example.changed" ||
				ev.Subject() != "other/key" || !ev.Time().Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) ||
				ev.DataSchema() != "https://example.com/schema" {
				t.Errorf("attributes not set: %s", ev)
			}
			if !bytes.Equal(ev.Data(), in.Data()) {
				t.Error("data changed though the script never touched it")
			}
			if err := ev.Validate(); err != nil {
				t.Error(err)
			}
		},
	}, {
		name:   "time from unix seconds, subject removed",
		script: `ev.time = 1700000000.5; ev.subject = nil; return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			ev := one(t, outs)
			if ev.Time().UnixMilli() != 1700000000500 || ev.Subject() != "" {
				t.Errorf("time %v subject %q", ev.Time(), ev.Subject())
			}
		},
	}, {
		name: "extensions",
		script: `
			ev.ext.tenant = "acme"
			ev.ext.retries = 3
			ev.ext.public = true
			ev.ext.opaquedata = nil
			ev.ext.BUCKET = "renamed"
			local names = {}
			for k, v in pairs(ev.ext) do names[#names + 1] = k .. "=" .. tostring(v) end
			assert(table.concat(names, ",") == "bucket=renamed,configurationid=main-created,eventname=ObjectCreated:Put,objectkey=docs/report.txt,public=true,retries=3,tenant=acme", table.concat(names, ","))
			return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			ext := one(t, outs).Extensions()
			if ext["tenant"] != "acme" || ext["retries"] != int32(3) || ext["public"] != true || ext["bucket"] != "renamed" {
				t.Errorf("extensions %v", ext)
			}
			if _, ok := ext["opaquedata"]; ok {
				t.Error("opaquedata not removed")
			}
			if in.Extensions()["bucket"] != "nb-main" {
				t.Error("input extensions modified")
			}
		},
	}, {
		name: "data: change a field, arrays and integers survive",
		script: `
			assert(ev.data.s3.object.size == 24)
			ev.data.s3.object.key = "changed"
			ev.data.extra = {list = {}, n = 7}
			return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			ev := one(t, outs)
			s := string(ev.Data())
			for _, want := range []string{`"key":"changed"`, `"size":24`, `"extra":{"list":{},"n":7}`, `"tags":[{"key":"env","val":"dev"}`} {
				if !strings.Contains(s, want) {
					t.Errorf("data lacks %s: %s", want, s)
				}
			}
			if bytes.Contains(in.Data(), []byte("changed")) {
				t.Error("input data modified")
			}
		},
	}, {
		name:   "data: replace with a table, a string, nothing",
		script: `ev.data = {hello = "world", list = require("rgwnats").json.array()}; return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			if got := string(one(t, outs).Data()); got != `{"hello":"world","list":[]}` {
				t.Errorf("data %s", got)
			}
		},
	}, {
		name:   "data: a string is a JSON string under application/json",
		script: `ev.data = "plain"; return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			if got := string(one(t, outs).Data()); got != `"plain"` {
				t.Errorf("data %s", got)
			}
		},
	}, {
		name:   "data: raw text under another content type",
		script: `ev.datacontenttype = "text/plain"; ev.data = "plain"; return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			ev := one(t, outs)
			if got := string(ev.Data()); got != `plain` || ev.DataContentType() != "text/plain" || ev.DataBase64 {
				t.Errorf("data %s, %s", got, ev.DataContentType())
			}
		},
	}, {
		name:   "data: removed",
		script: `ev.data = nil; return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			if d := one(t, outs).Data(); d != nil {
				t.Errorf("data %s", d)
			}
		},
	}, {
		name:   "record of a plain record",
		script: `ev.record.awsRegion = "eu"; assert(ev.record == ev.data); return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			if r := record(t, one(t, outs)); r["awsRegion"] != "eu" {
				t.Errorf("record %v", r)
			}
		},
	}, {
		name:   "nats subject and headers",
		script: `ev.nats.subject = "a.b.c"; ev.nats.header["X-One"] = "1"; ev.nats.header["X-Many"] = {"a", "b"}; return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			o := outs[0]
			if o.Subject != "a.b.c" || o.Header["X-One"][0] != "1" || strings.Join(o.Header["X-Many"], ",") != "a,b" || one(t, outs) != in {
				t.Errorf("output %+v", o)
			}
		},
	}, {
		name:   "drop with nil",
		script: `return nil`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			if len(outs) != 0 {
				t.Errorf("outputs %+v", outs)
			}
		},
	}, {
		name:   "drop by returning nothing",
		script: `ev.subject = "x"`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			if len(outs) != 0 {
				t.Errorf("outputs %+v", outs)
			}
		},
	}, {
		name: "fan out with clone, several return values and a list",
		script: `
			local a = ev:clone()
			a.ext.copy = "a"
			a.data.s3.object.key = "a"
			a.nats.subject = "copy.a"
			local b = a:clone()
			b.ext.copy = "b"
			b.data.s3.object.key = "b"
			assert(a.data.s3.object.key == "a")
			return ev, {a, b}`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			if len(outs) != 3 || outs[0].Event != in {
				t.Fatalf("outputs %+v", outs)
			}
			for i, want := range []string{"a", "b"} {
				o := outs[i+1]
				if o.Event.Extensions()["copy"] != want || path(record(t, o.Event), "s3", "object", "key") != want || o.Subject != "copy.a" {
					t.Errorf("copy %s: %s %v", want, o.Subject, o.Event)
				}
			}
		},
	}, {
		name:   "raw publish with headers, before the returned events",
		script: `local rn = require("rgwnats"); rn.publish("audit.x", {id = ev.id}, {["X-K"] = "v"}); rn.publish("audit.y", "text"); return ev`,
		check: func(t *testing.T, in *event.Event, outs []Output) {
			if len(outs) != 3 || outs[0].Subject != "audit.x" || string(outs[0].Raw) != `{"id":"`+in.ID()+`"}` ||
				outs[0].Header["X-K"][0] != "v" || outs[1].Subject != "audit.y" || string(outs[1].Raw) != "text" ||
				outs[0].Event != nil || outs[2].Event != in {
				t.Errorf("outputs %+v", outs)
			}
		},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, "function transform(ev)\n"+tc.script+"\nend")
			in := fixture(t, "pacific-16.2.15/put-with-meta.json", cloudevent.Options{})
			tc.check(t, in, transformOne(t, e, in))
		})
	}
}

func TestEventRecordOfEnvelope(t *testing.T) {
	e := newEngine(t, `function transform(ev) ev.record.s3.object.key = "k2"; return ev end`)
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{Envelope: true})
	ev := one(t, transformOne(t, e, in))
	if !bytes.HasPrefix(ev.Data(), []byte(`{"Records":[{`)) || path(record(t, ev), "s3", "object", "key") != "k2" {
		t.Errorf("data %s", ev.Data())
	}
}

func TestEventAPIErrors(t *testing.T) {
	for _, tc := range []struct{ name, script, want string }{
		{"unknown field", `return ev.subjekt`, `event has no field "subjekt"`},
		{"unknown field set", `ev.bucket = "x"`, `ev.ext.bucket`},
		{"empty id", `ev.id = ""`, `ev.id`},
		{"bad time", `ev.time = "yesterday"`, `ev.time`},
		{"specversion", `ev.specversion = "0.3"`, `cannot be assigned`},
		{"bad extension name", `ev.ext["bad-name"] = "x"`, `ev.ext.bad-name`},
		{"float extension", `ev.ext.ratio = 0.5`, `not a 32-bit integer`},
		{"table extension", `ev.ext.t = {}`, `must be a string, boolean or integer`},
		{"bad subject", `ev.nats.subject = "a b.*"`, `not a valid NATS subject`},
		{"bad header name", `ev.nats.header["a b"] = "x"; return ev`, `invalid header name`},
		{"header line break", `ev.nats.header["a"] = "x\r\ny"; return ev`, `line break`},
		{"function in data", `ev.data.f = print; return ev`, `cannot encode a function`},
		{"returns a string", `return "x"`, `returned a string`},
		{"returns true", `return true`, `returned a true`},
		{"returns a list of strings", `return {"x"}`, `list holding a string`},
		{"table data under text", `ev.datacontenttype = "text/plain"; ev.data = {}; return ev`, `must be a string`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, "function transform(ev)\n"+tc.script+"\nend")
			in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
			_, err := e.Transform(context.Background(), in)
			if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), in.ID()) || !strings.Contains(err.Error(), "script.lua") {
				t.Errorf("error %q does not name the script and the event", err)
			}
		})
	}
}

func TestEventKeptBetweenCallsFails(t *testing.T) {
	e := newEngine(t, `
		function transform(ev)
		  if kept then return kept end
		  kept = ev
		  return ev
		end`, WithPoolSize(1))
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	transformOne(t, e, in)
	_, err := e.Transform(context.Background(), in)
	if err == nil || !strings.Contains(err.Error(), "earlier call") {
		t.Fatalf("error %v", err)
	}
}

func TestErrorNamesScriptLineAndEvent(t *testing.T) {
	e := newEngine(t, "function transform(ev)\n  local x = nil\n  return x.field\nend")
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	_, err := e.Transform(context.Background(), in)
	var se *ScriptError
	if !errors.As(err, &se) || se.Script != "script.lua" || se.Line != 3 || se.EventID != in.ID() {
		t.Fatalf("error %#v", err)
	}
	if want := "lua: script.lua:3: "; !strings.HasPrefix(err.Error(), want) || !strings.HasSuffix(err.Error(), "(event "+in.ID()+")") {
		t.Errorf("message %q", err)
	}
	if errors.Is(err, ErrTimeout) {
		t.Error("a runtime error is not a timeout")
	}
}

func TestEventInvalidJSONData(t *testing.T) {
	e := newEngine(t, `function transform(ev) return ev.data end`)
	in := event.New()
	in.SetID("bad-data")
	in.SetSource("urn:test")
	in.SetType("test")
	in.DataEncoded = []byte(`{"truncated":`)
	in.SetDataContentType(event.ApplicationJSON)
	_, err := e.Transform(context.Background(), &in)
	if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "ev.data: json") || !strings.Contains(err.Error(), "bad-data") {
		t.Fatalf("error %v", err)
	}
}

func TestEventNonJSONData(t *testing.T) {
	e := newEngine(t, `function transform(ev) assert(ev.data == "hello"); ev.data = ev.data .. "!"; return ev end`)
	in := event.New()
	in.SetID("text")
	in.SetSource("urn:test")
	in.SetType("test")
	in.SetData("text/plain", "hello")
	if got := string(one(t, transformOne(t, e, &in)).Data()); got != "hello!" {
		t.Errorf("data %q", got)
	}
}
