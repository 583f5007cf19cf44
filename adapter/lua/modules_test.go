package lua

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
	"github.com/rgw-nats/rgw-nats/adapter/rgw"
)

// writeTree writes files (path -> content) under a new directory.
func writeTree(t testing.TB, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, src := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func reefEvent(t testing.TB) *event.Event {
	return fixture(t, "reef-put-capture.json", cloudevent.Options{})
}

// ext runs the engine on one event and returns the extension r.
func ext(t *testing.T, e *Engine) any {
	t.Helper()
	outs := transformOne(t, e, reefEvent(t))
	return outs[0].Event.Extensions()["r"]
}

func TestRequireModules(t *testing.T) {
	first := writeTree(t, map[string]string{
		"plain.lua":       `return {name = "plain"}`,
		"a/b.lua":         `return {name = "a.b", idiv = 7 // 2}`,
		"pkg/init.lua":    `return {name = "pkg"}`,
		"both.lua":        `return {name = "both.lua"}`,
		"both/init.lua":   `return {name = "both/init.lua"}`,
		"shadow.lua":      `return {name = "first dir"}`,
		"noreturn.lua":    `X_SET_BY_MODULE = 1`,
		"uses.lua":        `local p = require("plain") return {name = "uses " .. p.name}`,
		"arg.lua":         `local name = ... return {name = name}`,
		"lunajson.lua":    `return {encode = function() return "user lunajson" end}`,
		"with space.lua":  `return {}`,
		".hidden.lua":     `return {}`,
		"native.so":       "\x7fELF",
		"deep/er/est.lua": `return {name = "deep.er.est"}`,
	})
	second := writeTree(t, map[string]string{
		"shadow.lua": `return {name = "second dir"}`,
		"other.lua":  `return {name = "other"}`,
	})
	for _, c := range []struct{ expr, want string }{
		{`require("plain").name`, "plain"},
		{`require("a.b").name .. require("a.b").idiv`, "a.b3"},
		{`require("pkg").name`, "pkg"},
		{`require("both").name`, "both.lua"},
		{`require("shadow").name`, "first dir"},
		{`require("other").name`, "other"},
		{`tostring(require("noreturn")) .. X_SET_BY_MODULE`, "true1"},
		{`require("uses").name`, "uses plain"},
		{`require("arg").name`, "arg"},
		{`require("deep.er.est").name`, "deep.er.est"},
		{`tostring(require("plain") == require("plain"))`, "true"},
		{`require("lunajson").encode({})`, "user lunajson"},
		{`require("cjson").encode({})`, "{}"},
		{`type(require("rgwnats").sha256)`, "function"},
	} {
		e := newEngine(t, "function transform(ev) ev.ext.r = "+c.expr+" return ev end", WithModuleDirs(first, second))
		if got := ext(t, e); got != c.want {
			t.Errorf("%s = %v, want %q", c.expr, got, c.want)
		}
	}
	for _, c := range []struct{ name, want string }{
		{"../plain", "not available: module names are like"},
		{"/etc/passwd", "not available: module names are like"},
		{"a..b", "not available: module names are like"},
		{"a/b", "not available: module names are like"},
		{"", "not available: module names are like"},
		{"with space", "not available: module names are like"},
		{"hidden", "not available: require knows"},
		{".hidden", "not available: module names are like"},
		{"native", "is a C library"},
		{"missing", "a/b.lua"}, // names where it looked
	} {
		e := newEngine(t, fmt.Sprintf("function transform(ev) require(%q) return ev end", c.name), WithModuleDirs(first, second))
		_, err := e.Transform(context.Background(), reefEvent(t))
		if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "not available") && !strings.Contains(err.Error(), "C library") {
			t.Errorf("require(%q): %v", c.name, err)
			continue
		}
		if c.name == "missing" {
			if !strings.Contains(err.Error(), "missing.lua or missing/init.lua in "+first+":"+second) {
				t.Errorf("require(missing): %v", err)
			}
			continue
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("require(%q): %v, want %q", c.name, err, c.want)
		}
	}
}

// A module runs once per state and is kept, like package.loaded; it is
// compiled once per version, not per state.
func TestModuleRunsOncePerState(t *testing.T) {
	dir := writeTree(t, map[string]string{"counted.lua": `RGW.increment("loads") return {n = 0}`})
	e := newEngine(t, `
local counted = require("counted")
function transform(ev)
  counted.n = counted.n + 1
  ev.ext.r = RGW["loads"] .. "/" .. counted.n
  return ev
end`, WithModuleDirs(dir), WithPoolSize(1))
	for i := 1; i <= 3; i++ {
		if got := ext(t, e); got != fmt.Sprintf("1/%d", i) {
			t.Errorf("call %d: %v", i, got)
		}
	}
	c := e.chain.Load()
	if c.scripts[0].mods.protos["counted"] == nil {
		t.Fatal("the module was not compiled with the chain")
	}
}

// RGW-style scripts require modules too; the module sees Request.
func TestModuleFromRGWStyleScript(t *testing.T) {
	dir := writeTree(t, map[string]string{"req.lua": `return {op = function() return Request.RGWOp end}`})
	e := newEngine(t, `
local req = require("req")
local nats = require("nats")
nats.connect({}):publish("ops", req.op() .. " " .. 7 // 2)`, WithModuleDirs(dir))
	outs := transformOne(t, e, reefEvent(t))
	if len(outs) != 1 || string(outs[0].Raw) != "put_obj 3" {
		t.Fatalf("outputs %+v", outs)
	}
}

// A module runs in the script's sandbox: what the script cannot do, its
// modules cannot either.
func TestModuleSandboxed(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"evil.lua": `return {run = function() return os.execute("id") end}`,
		"io.lua":   `return io.open("/etc/passwd")`,
		"loop.lua": `return require("loop2")`, "loop2.lua": `return require("loop")`,
	})
	for _, c := range []struct{ expr, want string }{
		{`require("evil").run()`, "not available in the rgw-nats sandbox"},
		{`require("io")`, "attempt to index a non-table object(nil)"},
		{`require("loop")`, "loop or previous error loading module"},
	} {
		e := newEngine(t, "function transform(ev) "+c.expr+" return ev end", WithModuleDirs(dir))
		_, err := e.Transform(context.Background(), reefEvent(t))
		if !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: %v, want %q", c.expr, err, c.want)
		}
	}
}

func TestModuleLoadErrors(t *testing.T) {
	script := writeScript(t, t.TempDir(), "s.lua", `function transform(ev) return ev end`)
	for _, c := range []struct {
		files map[string]string
		want  string
	}{
		{map[string]string{"broken.lua": "return {"}, "module broken: lua: broken.lua"},
		{map[string]string{"sub/broken.lua": "x = 1 //"}, "module sub.broken: lua: sub/broken.lua: line 1"},
		{map[string]string{"nats.lua": "return {}"}, "would replace the built-in module nats"},
		{map[string]string{"rgwnats/init.lua": "return {}"}, "would replace the built-in module rgwnats"},
	} {
		dir := writeTree(t, c.files)
		_, err := New(context.Background(), script, WithReload(0), WithModuleDirs(dir))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: error %v, want %q", c.files, err, c.want)
		}
	}
	if _, err := New(context.Background(), script, WithReload(0), WithModuleDirs("/nonexistent/modules")); err == nil {
		t.Error("a missing module directory was accepted")
	}
}

// A changed module is picked up with the scripts; a broken one keeps the
// old version serving.
func TestModuleReload(t *testing.T) {
	dir := writeTree(t, map[string]string{"v.lua": `return {v = "one"}`})
	e := newEngine(t, `local v = require("v") function transform(ev) ev.ext.r = v.v return ev end`, WithModuleDirs(dir))
	if got := ext(t, e); got != "one" {
		t.Fatalf("r = %v", got)
	}
	write := func(src string) {
		if err := os.WriteFile(filepath.Join(dir, "v.lua"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(`return {v = "two"}`)
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := ext(t, e); got != "two" {
		t.Errorf("after reload r = %v", got)
	}
	write(`return {v = `)
	if err := e.Reload(context.Background()); err == nil {
		t.Error("a broken module was swapped in")
	}
	if got := ext(t, e); got != "two" {
		t.Errorf("after a failed reload r = %v", got)
	}
	if s := e.Stats(); s.Reloads != 1 || s.ReloadErrors != 1 {
		t.Errorf("stats %+v", s)
	}
}

// The sample module textkit, from the sample transform textkit-route.lua.
func TestSampleTextkitRoute(t *testing.T) {
	e := sample(t, "textkit-route.lua", WithModuleDirs(filepath.Join("..", "..", "samples", "lua", "modules")))
	in := xrayWithKey(t, "Röntgen Bilder/2024/img.jpg")
	outs := transformOne(t, e, in)
	if len(outs) != 1 {
		t.Fatalf("outputs %+v", outs)
	}
	o := outs[0]
	h := uint32(0)
	for _, c := range []byte("Röntgen Bilder/2024/img.jpg") {
		h = h*31 + uint32(c)
	}
	if want := fmt.Sprintf("uploads.xraylab-0001.r-ntgen-bilder.%d", h&0xF); o.Subject != want {
		t.Errorf("subject %q, want %q", o.Subject, want)
	}
	if o.Header["Size"][0] != "106 KiB" || o.Header["Textkit"][0] != "textkit 1.2.0" {
		t.Errorf("headers %v", o.Header)
	}
	// Without the module directory the script does not load.
	_, err := New(context.Background(), filepath.Join("..", "..", "samples", "lua", "textkit-route.lua"), WithReload(0))
	if err == nil || !strings.Contains(err.Error(), `module "textkit" is not available`) {
		t.Errorf("error %v", err)
	}
}

// The sample module runs the same in lua5.3.
func TestSampleTextkitInLua53(t *testing.T) {
	bin := lua53Binary(t)
	src := `package.path = "../../samples/lua/modules/?.lua"
local tk = require("textkit")
local p = tk.split("a/b//c", "/")
print(#p, p[1], p[3], p[4], tk.trim("  x y  "), tk.starts_with("abc", "ab"), tk.ends_with("abc", "bc"))
print(tk.slug("Röntgen Bilder 2024"), tk.slug("--A__b--"), tk.hash32("Röntgen Bilder/2024/img.jpg"), tk.human(108622), tk.human(5 * 1024 * 1024 * 1024), tk.human(3))
`
	ref := exec.Command(bin, "-")
	ref.Stdin = strings.NewReader(src)
	want, err := ref.CombinedOutput()
	if err != nil {
		t.Fatalf("lua5.3: %v\n%s", err, want)
	}
	p := writeScript(t, t.TempDir(), "snippet.lua", strings.Replace(src, `package.path = "../../samples/lua/modules/?.lua"`, "", 1))
	capture := &printCapture{}
	e, err := New(context.Background(), p, WithReload(0), WithTimeout(testTimeout), WithLogger(slog.New(capture)),
		WithModuleDirs(filepath.Join("..", "..", "samples", "lua", "modules")))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, err := e.Transform(context.Background(), reefEvent(t)); err != nil {
		t.Fatal(err)
	}
	if got := capture.buf.String(); got != string(want) {
		t.Errorf("lua5.3:\n%s\nrgw-nats:\n%s", want, got)
	}
}

// xrayWithKey is the X-ray capture with another object key.
func xrayWithKey(t testing.TB, key string) *event.Event {
	t.Helper()
	body, err := os.ReadFile(filepath.Join("..", "..", "samples", "events", "downstream-xraylab-put-capture.json"))
	if err != nil {
		t.Fatal(err)
	}
	body = bytes.Replace(body, []byte("demo_Micheal Phillips_6580_1947-05-22_2017-04-27.jpeg"), []byte(key), 1)
	recs, err := rgw.Decode(body)
	if err != nil {
		t.Fatal(err)
	}
	ev, err := cloudevent.FromRecord(&recs[0], cloudevent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return &ev
}

// The "done when" of issue 12: an RGW postRequest script in Lua 5.3 (//,
// bitwise operators, utf8) publishes here what it publishes in lua5.3.
func TestSampleRGWLua53MatchesLua53(t *testing.T) {
	bin := lua53Binary(t)
	script := filepath.Join("..", "..", "samples", "lua", "rgw-lua53.lua")
	e := sample(t, "rgw-lua53.lua")
	for _, key := range []string{
		"demo_Micheal Phillips_6580_1947-05-22_2017-04-27.jpeg",
		"Röntgen/北京/img €.jpg",
		"a",
	} {
		outs := transformOne(t, e, xrayWithKey(t, key))
		if len(outs) != 1 || outs[0].Event != nil {
			t.Fatalf("%s: outputs %+v", key, outs)
		}
		got := outs[0].Subject + "\n" + string(outs[0].Raw) + "\n"

		stub := fmt.Sprintf(`Request = {RGWOp = "put_obj", Object = {Name = %q, Size = 108622}, Bucket = {Name = "xraylab-0001"}}
package.preload["nats"] = function() return {connect = function() return {connect = function() end,
  publish = function(_, subject, payload) print(subject) print(payload) end} end} end`, key)
		cmd := exec.Command(bin, "-e", stub, script)
		want, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("lua5.3: %v\n%s", err, want)
		}
		if got != string(want) {
			t.Errorf("%s:\nlua5.3:   %s\nrgw-nats: %s", key, want, got)
		}
	}
}
