package lua

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

// requestFields publishes what an RGW script can read of Request.
const requestFieldsScript = `
local lunajson = require("lunajson")
local out = {
  RGWOp = Request.RGWOp, Id = Request.Id, RGWId = Request.RGWId, Time = Request.Time,
  Dialect = Request.Dialect, ZoneGroup = Request.ZoneGroup and Request.ZoneGroup.Name,
  UserId = Request.User and Request.User.Id, UserTenant = Request.User and Request.User.Tenant,
  OwnerId = Request.ObjectOwner and Request.ObjectOwner.User.Id,
  BucketName = Request.Bucket and Request.Bucket.Name, BucketId = Request.Bucket and Request.Bucket.Id,
  BucketTenant = Request.Bucket and Request.Bucket.Tenant,
  BucketUserId = Request.Bucket and Request.Bucket.User.Id,
  BucketUserTenant = Request.Bucket and Request.Bucket.User.Tenant,
  ObjectName = Request.Object and Request.Object.Name, ObjectSize = Request.Object and Request.Object.Size,
  ObjectInstance = Request.Object and Request.Object.Instance,
  Metadata = Request.HTTP and Request.HTTP.Metadata, Tags = Request.Tags,
  Status = Request.Response and Request.Response.HTTPStatusCode,
  lower = Request.bucket and Request.bucket.name, upper = Request.OBJECT and Request.OBJECT.NAME,
  Host = Request.HTTP and Request.HTTP.Host, Policy = Request.Policy, UserAcl = Request.UserAcl,
  Quota = Request.Bucket and Request.Bucket.Quota,
}
require("nats").connect():publish("fields", lunajson.encode(out))
`

func requestOf(t *testing.T, e *Engine, ev *event.Event) map[string]any {
	t.Helper()
	outs := transformOne(t, e, ev)
	if len(outs) != 1 || outs[0].Subject != "fields" || outs[0].Event != nil {
		t.Fatalf("outputs %+v", outs)
	}
	var m map[string]any
	if err := json.Unmarshal(outs[0].Raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestRequestFields(t *testing.T) {
	e := newEngine(t, requestFieldsScript)
	got := requestOf(t, e, fixture(t, "pacific-16.2.15/put-with-meta.json", cloudevent.Options{}))
	want := map[string]any{
		"RGWOp": "put_obj", "Id": "9a5c78a5-252c-4931-9474-8341a5f09156.4114.8486191301316701201",
		"RGWId": "1012-default-default", "Time": "2026-11-24 21:14:06", "Dialect": "s3",
		"ZoneGroup": "", "UserId": "tester", "UserTenant": "", "OwnerId": "tester",
		"BucketName": "nb-main", "BucketId": "9a5c78a5-252c-4931-9474-8341a5f09156.4116.1",
		"BucketTenant": "", "BucketUserId": "tester", "BucketUserTenant": "",
		"ObjectName": "docs/report.txt", "ObjectSize": float64(24), "ObjectInstance": "",
		"Metadata": map[string]any{"x-amz-meta-color": "blue", "x-amz-meta-owner": "alice"},
		"Tags":     map[string]any{"env": "dev", "team": "x"},
		"Status":   float64(200), "lower": "nb-main", "upper": "docs/report.txt",
	}
	for k, w := range want {
		if fmt.Sprint(got[k]) != fmt.Sprint(w) {
			t.Errorf("Request %s = %v, want %v", k, got[k], w)
		}
	}
	for _, k := range []string{"Host", "Policy", "UserAcl", "Quota"} {
		if v, ok := got[k]; ok {
			t.Errorf("Request %s = %v, want nil", k, v)
		}
	}
}

func TestRequestOps(t *testing.T) {
	e := newEngine(t, requestFieldsScript)
	for fixtureName, op := range map[string]string{
		"pacific-16.2.15/copy.json":                    "copy_obj",
		"pacific-16.2.15/delete.json":                  "delete_obj",
		"pacific-16.2.15/multipart-upload.json":        "complete_multipart",
		"pacific-16.2.15/post-object-form.json":        "post_obj",
		"pacific-16.2.15/versioned-delete-marker.json": "delete_obj",
		"pacific-16.2.15/persistent-put.json":          "put_obj",
		"downstream-xraylab-put-capture.json":          "put_obj", // "s3:ObjectCreated:Put"
		"docs-example-lenient.json":                    "put_obj",
	} {
		for _, envelope := range []bool{false, true} {
			got := requestOf(t, e, fixture(t, fixtureName, cloudevent.Options{Envelope: envelope}))
			if got["RGWOp"] != op {
				t.Errorf("%s (envelope %v): RGWOp %v, want %s", fixtureName, envelope, got["RGWOp"], op)
			}
		}
	}
	got := requestOf(t, e, fixture(t, "downstream-xraylab-put-capture.json", cloudevent.Options{}))
	if got["Time"] != "2021-02-19 02:03:08" || got["ObjectSize"] != float64(108622) {
		t.Errorf("xraylab: %v", got)
	}
	got = requestOf(t, e, fixture(t, "docs-example-lenient.json", cloudevent.Options{}))
	if got["ZoneGroup"] != "zonegroup1" || got["ObjectSize"] != float64(1024) {
		t.Errorf("docs example: %v", got)
	}
}

func TestRequestTenants(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("..", "..", "samples", "events", "pacific-16.2.15", "put-with-meta.json"))
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.ReplaceAll(body, []byte(`"principalId":"tester"`), []byte(`"principalId":"acme$tester"`))
	body = bytes.ReplaceAll(body, []byte(`"arn:aws:s3:::nb-main"`), []byte(`"arn:aws:s3::acme:nb-main"`))
	recs, err := rgw.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := cloudevent.FromRecord(&recs[0], cloudevent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := requestOf(t, newEngine(t, requestFieldsScript), &ev)
	for k, w := range map[string]string{
		"UserId": "tester", "UserTenant": "acme", "BucketTenant": "acme", "BucketUserId": "tester", "BucketUserTenant": "acme",
	} {
		if got[k] != w {
			t.Errorf("%s = %v, want %s", k, got[k], w)
		}
	}
}

func TestRequestOfOtherEvents(t *testing.T) {
	ev := event.New()
	ev.SetID("other-1")
	ev.SetSource("urn:other")
	ev.SetType("com.example.other")
	_ = ev.SetData(event.ApplicationJSON, map[string]string{"hello": "world"})
	got := requestOf(t, newEngine(t, requestFieldsScript), &ev)
	if len(got) != 0 {
		t.Errorf("Request of a non-RGW event has fields: %v", got)
	}
}

func TestRequestInTransformScripts(t *testing.T) {
	e := newEngine(t, `
		assert(Request == nil, "no Request while loading")
		function transform(ev)
		  ev.ext.op = Request.RGWOp
		  ev.ext.user = Request.user.id
		  assert(Request == Request, "built once per call")
		  return ev
		end`)
	ext := one(t, transformOne(t, e, fixture(t, "pacific-16.2.15/delete.json", cloudevent.Options{}))).Extensions()
	if ext["op"] != "delete_obj" || ext["user"] != "tester" {
		t.Errorf("extensions %v", ext)
	}
}

// RGW gives every run a fresh state; a pooled state must look fresh too,
// except for the RGW table.
func TestRGWStyleGlobalsDoNotLeak(t *testing.T) {
	e := newEngine(t, `
		local nats = require("nats")
		counter = (counter or 0) + 1
		_G.other = (_G.other or 0) + 1
		rawset(_G, "raw", (rawget(_G, "raw") or 0) + 1)
		local ok = pcall(function() string.leak = true end)
		assert(not ok and string.leak == nil)
		local client = nats.connect({host = nil, port = nil})
		client:connect()
		client:set_auth("user", "password")
		assert(client:ping())
		client:publish("runs", counter .. "," .. other .. "," .. raw .. "," .. RGW.increment("total"))
		client:close()
	`, WithPoolSize(1))
	for i := 1; i <= 20; i++ {
		outs := transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
		if len(outs) != 1 || outs[0].Subject != "runs" || string(outs[0].Raw) != fmt.Sprintf("1,1,1,%d", i) {
			t.Fatalf("run %d: %+v", i, outs)
		}
	}
	if s := e.Stats(); s.States != 1 {
		t.Errorf("%d states for 20 sequential runs with a pool of 1: runs did not reuse the state", s.States)
	}
}

func TestNatsClient(t *testing.T) {
	for _, tc := range []struct{ name, code, want string }{
		{"subscribe", `nats.connect():subscribe("x", print)`, "subscribe is not available"},
		{"wait", `nats.connect():wait(1)`, "wait is not available"},
		{"unsubscribe", `nats.connect():unsubscribe(1)`, "unsubscribe is not available"},
		{"invalid subject", `nats.connect():publish("a b", "x")`, "not a valid NATS subject"},
		{"wildcard subject", `nats.connect():publish("a.*", "x")`, "not a valid NATS subject"},
		{"table payload", `nats.connect():publish("a", {})`, "payload must be a string"},
		{"too many messages", `local c = nats.connect() for i = 1, 1001 do c:publish("a", "x") end`, "101 outputs exceed the limit of 100 (LUA_MAX_OUTPUTS)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEngine(t, "local nats = require('nats')\n"+tc.code)
			_, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{}))
			if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want %q", err, tc.want)
			}
		})
	}
	e := newEngine(t, `local c = require("nats").connect() c.publish("plain.call", 42) c:publish("nil.payload")`)
	outs := transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
	if len(outs) != 2 || outs[0].Subject != "plain.call" || string(outs[0].Raw) != "42" || outs[1].Subject != "nil.payload" || len(outs[1].Raw) != 0 {
		t.Errorf("outputs %+v", outs)
	}
}

func TestPublishWhileLoading(t *testing.T) {
	p := writeScript(t, t.TempDir(), "s.lua", `require("nats").connect():publish("x", "y") function transform(ev) return ev end`)
	if _, err := New(context.Background(), p, WithReload(0)); err == nil || !strings.Contains(err.Error(), "only possible while an event is processed") {
		t.Fatalf("error %v", err)
	}
}

func TestRGWStyleScriptPublishingNothing(t *testing.T) {
	e := newEngine(t, `if Request.RGWOp == "delete_obj" then return end RGWDebugLog("skipped")`)
	if outs := transformOne(t, e, fixture(t, "pacific-16.2.15/delete.json", cloudevent.Options{})); len(outs) != 0 {
		t.Errorf("outputs %+v", outs)
	}
	if s := e.Stats(); s.Filtered != 1 {
		t.Errorf("stats %+v", s)
	}
}

func TestRGWTableConcurrentIncrements(t *testing.T) {
	e := newEngine(t, `
		function transform(ev)
		  if ev.subject == "read" then
		    ev.ext.total = RGW["hits"]
		    ev.ext.down = RGW["down"]
		    return ev
		  end
		  RGW.increment("hits")
		  RGW.decrement("down", 2)
		  return nil
		end`)
	const goroutines, each = 8, 100
	var wg sync.WaitGroup
	for range goroutines {
		wg.Go(func() {
			for range each {
				if _, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{})); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	read := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	read.SetSubject("read")
	ext := one(t, transformOne(t, e, read)).Extensions()
	if ext["total"] != int32(goroutines*each) || ext["down"] != int32(-2*goroutines*each) {
		t.Errorf("after %d increments: %v", goroutines*each, ext)
	}
}

// TestRGWTable runs testdata/rgw-table.lua, which adapter/kvtable runs on
// its table too.
func TestRGWTable(t *testing.T) {
	src, err := os.ReadFile(filepath.Join("testdata", "rgw-table.lua"))
	if err != nil {
		t.Fatal(err)
	}
	e := newEngine(t, string(src))
	transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
}

func TestMemoryTableLimits(t *testing.T) {
	ctx := context.Background()
	tb := NewMemoryTable()
	for i := range MaxTableEntries {
		if err := tb.Set(ctx, fmt.Sprint(i), "v"); err != nil {
			t.Fatal(err)
		}
	}
	if err := tb.Set(ctx, "one-more", "v"); !errors.Is(err, ErrTableFull) {
		t.Errorf("101st thousand entry: %v", err)
	}
	if _, err := tb.Add(ctx, "another", 1); !errors.Is(err, ErrTableFull) {
		t.Errorf("increment of a new key in a full table: %v", err)
	}
	if err := tb.Set(ctx, "7", "overwrite"); err != nil {
		t.Errorf("overwriting in a full table: %v", err)
	}
	if err := tb.Delete(ctx, "7"); err != nil {
		t.Fatal(err)
	}
	if v, err := tb.Get("7"); v != nil || err != nil {
		t.Errorf("after Delete: %v, %v", v, err)
	}
	if err := tb.Set(ctx, "k", strings.Repeat("x", MaxTableEntrySize)); !errors.Is(err, ErrTableEntry) {
		t.Errorf("an entry over 1 KB: %v", err)
	}
}

// logBuffer collects log lines; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func newLogger(b *logBuffer) *slog.Logger {
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func TestRGWDebugLog(t *testing.T) {
	var logs logBuffer
	e := newEngine(t, `RGWDebugLog("object " .. Request.Object.Name)`, WithLogger(newLogger(&logs)))
	in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
	transformOne(t, e, in)
	if s := logs.String(); !strings.Contains(s, "level=DEBUG") || !strings.Contains(s, `msg="object notification.json"`) ||
		!strings.Contains(s, "script=script.lua") || !strings.Contains(s, "event="+in.ID()) {
		t.Errorf("log %q", s)
	}
}
