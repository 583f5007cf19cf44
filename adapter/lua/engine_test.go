package lua

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
)

const failing = `
function transform(ev)
  ev.ext.touched = "yes"
  ev.data.s3.object.key = "changed"
  if ev.subject == "slow" then while true do end end
  error("cannot handle " .. ev.subject)
end`

func TestPolicies(t *testing.T) {
	t.Run("reject", func(t *testing.T) {
		e := newEngine(t, failing)
		outs, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{}))
		if outs != nil || !errors.Is(err, ErrScript) || !strings.Contains(err.Error(), "cannot handle notification.json") {
			t.Fatalf("outputs %v, error %v", outs, err)
		}
		if s := e.Stats(); s.Errors != 1 || s.Drops != 0 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("drop", func(t *testing.T) {
		var logs logBuffer
		e := newEngine(t, failing, WithOnError(Drop), WithLogger(newLogger(&logs)))
		in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
		outs := transformOne(t, e, in)
		if len(outs) != 0 {
			t.Fatalf("outputs %+v", outs)
		}
		if s := e.Stats(); s.Errors != 1 || s.Drops != 1 {
			t.Errorf("stats %+v", s)
		}
		if l := logs.String(); strings.Count(l, "\n") != 1 || !strings.Contains(l, "level=WARN") || !strings.Contains(l, in.ID()) || !strings.Contains(l, "script.lua:6") {
			t.Errorf("want one log line naming the event and the line, got %q", l)
		}
	})
	t.Run("passthrough", func(t *testing.T) {
		e := newEngine(t, failing, WithOnError(Passthrough))
		in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
		data := string(in.Data())
		outs := transformOne(t, e, in)
		if len(outs) != 1 || outs[0].Event != in || outs[0].Subject != "" || string(in.Data()) != data || in.Extensions()["touched"] != nil {
			t.Fatalf("want the untransformed event, got %+v", outs)
		}
		if s := e.Stats(); s.Errors != 1 || s.Passthroughs != 1 {
			t.Errorf("stats %+v", s)
		}
	})
	t.Run("drop after a timeout", func(t *testing.T) {
		e := newEngine(t, failing, WithOnError(Drop), WithTimeout(20*time.Millisecond))
		in := fixture(t, "reef-put-capture.json", cloudevent.Options{})
		in.SetSubject("slow")
		if outs := transformOne(t, e, in); len(outs) != 0 {
			t.Fatalf("outputs %+v", outs)
		}
		if s := e.Stats(); s.Timeouts != 1 || s.Drops != 1 {
			t.Errorf("stats %+v", s)
		}
	})
}

func TestParsePolicy(t *testing.T) {
	for in, want := range map[string]Policy{"": Reject, "reject": Reject, "DROP": Drop, " passthrough ": Passthrough} {
		if got, err := ParsePolicy(in); err != nil || got != want {
			t.Errorf("ParsePolicy(%q) = %v, %v", in, got, err)
		}
	}
	if _, err := ParsePolicy("ignore"); err == nil {
		t.Error("ParsePolicy(ignore): no error")
	}
}

func chainDir(t *testing.T, scripts map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, src := range scripts {
		writeScript(t, dir, name, src)
	}
	return dir
}

func TestChain(t *testing.T) {
	dir := chainDir(t, map[string]string{
		"20-second.lua": `function transform(ev) ev.ext.trace = ev.ext.trace .. ",second" return ev end`,
		"10-first.lua": `
			function transform(ev)
			  require("rgwnats").publish("audit", "raw")
			  ev.ext.trace = "first"
			  local copy = ev:clone()
			  copy.ext.trace = "first-copy"
			  copy.nats.subject = "copies"
			  return ev, copy
			end`,
		"README.md":   "not a script",
		".hidden.lua": "syntax error here",
	})
	if err := os.Mkdir(filepath.Join(dir, "sub.lua"), 0o755); err != nil {
		t.Fatal(err)
	}
	e, err := New(context.Background(), dir, WithReload(0), WithTimeout(testTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if got := strings.Join(e.Scripts(), ","); got != "10-first.lua,20-second.lua" {
		t.Errorf("scripts %s", got)
	}
	outs := transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
	if len(outs) != 3 || string(outs[0].Raw) != "raw" || outs[0].Subject != "audit" ||
		outs[1].Event.Extensions()["trace"] != "first,second" ||
		outs[2].Event.Extensions()["trace"] != "first-copy,second" || outs[2].Subject != "copies" {
		t.Errorf("outputs %+v", outs)
	}
}

func TestChainStopsWhenDropped(t *testing.T) {
	dir := chainDir(t, map[string]string{
		"1.lua": `function transform(ev) return nil end`,
		"2.lua": `function transform(ev) error("never called") end`,
	})
	e, err := New(context.Background(), dir, WithReload(0), WithTimeout(testTimeout))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if outs := transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{})); len(outs) != 0 {
		t.Errorf("outputs %+v", outs)
	}
	if s := e.Stats(); s.Calls != 1 || s.Filtered != 1 {
		t.Errorf("stats %+v", s)
	}
}

// Passthrough in a chain keeps what the earlier scripts did (an
// anonymization, say) and skips only the failing one.
func TestChainPassthroughKeepsEarlierStages(t *testing.T) {
	dir := chainDir(t, map[string]string{
		"1.lua": `function transform(ev) ev.ext.stage = "one" ev.nats.subject = "s1" return ev end`,
		"2.lua": `function transform(ev) ev.ext.stage = "two" error("fails") end`,
	})
	e, err := New(context.Background(), dir, WithReload(0), WithTimeout(testTimeout), WithOnError(Passthrough))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	outs := transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
	if len(outs) != 1 || outs[0].Event.Extensions()["stage"] != "one" || outs[0].Subject != "s1" {
		t.Errorf("outputs %+v", outs)
	}
}

func TestNewErrors(t *testing.T) {
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		path string
		opts []Option
		want string
	}{
		"missing file":      {filepath.Join(dir, "nope.lua"), nil, "no such file"},
		"empty directory":   {dir, nil, "no *.lua file"},
		"syntax error":      {writeScript(t, t.TempDir(), "bad.lua", "function transform(ev"), nil, "bad.lua"},
		"local transform":   {writeScript(t, t.TempDir(), "local.lua", "local function transform(ev) return ev end"), nil, "declare it global"},
		"not a function":    {writeScript(t, t.TempDir(), "num.lua", "transform = 5"), nil, "defines no function transform"},
		"main chunk error":  {writeScript(t, t.TempDir(), "main.lua", "error('at load')\nfunction transform(ev) end"), nil, "main.lua:1: at load"},
		"bad function name": {writeScript(t, t.TempDir(), "ok.lua", "function transform(ev) end"), []Option{WithFunction("not a name")}, "not a Lua identifier"},
	} {
		_, err := New(context.Background(), tc.path, append([]Option{WithReload(0)}, tc.opts...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want %q", name, err, tc.want)
		}
	}
}

func TestWithFunction(t *testing.T) {
	e := newEngine(t, `function handle(ev) ev.ext.by = "handle" return ev end`, WithFunction("handle"))
	if got := one(t, transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))).Extensions()["by"]; got != "handle" {
		t.Errorf("by %v", got)
	}
}

func TestClose(t *testing.T) {
	e := newEngine(t, `function transform(ev) return ev end`, WithReload(time.Millisecond))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{})); !errors.Is(err, ErrClosed) {
		t.Errorf("error %v", err)
	}
	if err := e.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := e.Reload(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("Reload after Close: %v", err)
	}
}

func version(t *testing.T, e *Engine) string {
	t.Helper()
	outs := transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))
	v, _ := outs[0].Event.Extensions()["version"].(string)
	return v
}

// versioned is a script of one version; it also counts its calls in the
// RGW table, which outlives versions.
func versioned(v string) string {
	return fmt.Sprintf("function transform(ev) ev.ext.version = %q ev.ext.calls = RGW.increment('calls') return ev end", v)
}

func TestReload(t *testing.T) {
	var logs logBuffer
	p := writeScript(t, t.TempDir(), "script.lua", versioned("1"))
	e, err := New(context.Background(), p, WithReload(0), WithTimeout(testTimeout), WithLogger(newLogger(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Reload(context.Background()); err != nil || e.Stats().Reloads != 0 {
		t.Fatalf("reload of an unchanged file: %v, %+v", err, e.Stats())
	}
	if v := version(t, e); v != "1" {
		t.Fatalf("version %s", v)
	}
	writeScript(t, filepath.Dir(p), "script.lua", versioned("2"))
	if err := e.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := version(t, e); v != "2" || e.Stats().Reloads != 1 {
		t.Fatalf("version %s, stats %+v", v, e.Stats())
	}
	calls := one(t, transformOne(t, e, fixture(t, "reef-put-capture.json", cloudevent.Options{}))).Extensions()["calls"]
	if calls != int32(3) {
		t.Errorf("RGW table after a reload: calls = %v, want 3", calls)
	}

	// A broken version is reported once and the old one keeps serving.
	for _, broken := range []string{"function transform(ev", "error('boom') function transform(ev) end"} {
		writeScript(t, filepath.Dir(p), "script.lua", broken)
		for range 3 {
			if err := e.Reload(context.Background()); err == nil {
				t.Fatalf("broken version %q accepted", broken)
			}
			if v := version(t, e); v != "2" {
				t.Fatalf("version %s served after a broken reload", v)
			}
		}
	}
	if s := e.Stats(); s.ReloadErrors != 2 {
		t.Errorf("stats %+v: want one reload error per broken version", s)
	}
	if n := strings.Count(logs.String(), "changed scripts rejected"); n != 2 {
		t.Errorf("%d rejection lines, want 2:\n%s", n, logs.String())
	}
	writeScript(t, filepath.Dir(p), "script.lua", versioned("3"))
	if err := e.Reload(context.Background()); err != nil || version(t, e) != "3" {
		t.Fatalf("fixed version: %v", err)
	}
}

// configMap lays out a directory as the kubelet does for a ConfigMap volume:
// script.lua -> ..data/script.lua, ..data -> ..<version>/.
type configMap struct {
	t   *testing.T
	dir string
	n   int
}

func newConfigMap(t *testing.T, files map[string]string) *configMap {
	c := &configMap{t: t, dir: t.TempDir()}
	c.update(files)
	for name := range files {
		if err := os.Symlink(filepath.Join("..data", name), filepath.Join(c.dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// update writes a new version directory and swaps ..data to it atomically,
// then removes the old version, as the kubelet does.
func (c *configMap) update(files map[string]string) {
	c.n++
	old, _ := os.Readlink(filepath.Join(c.dir, "..data"))
	ver := fmt.Sprintf("..2026_11_24_21_00_%02d.%d", c.n, c.n)
	if err := os.Mkdir(filepath.Join(c.dir, ver), 0o755); err != nil {
		c.t.Fatal(err)
	}
	for name, src := range files {
		writeScript(c.t, filepath.Join(c.dir, ver), name, src)
	}
	tmp := filepath.Join(c.dir, "..data_tmp")
	if err := os.Symlink(ver, tmp); err != nil {
		c.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(c.dir, "..data")); err != nil {
		c.t.Fatal(err)
	}
	if old != "" {
		if err := os.RemoveAll(filepath.Join(c.dir, old)); err != nil {
			c.t.Fatal(err)
		}
	}
}

func TestReloadConfigMapUnderLoad(t *testing.T) {
	cm := newConfigMap(t, map[string]string{"script.lua": versioned("1")})
	for _, path := range []string{cm.dir, filepath.Join(cm.dir, "script.lua")} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			e, err := New(context.Background(), path, WithReload(5*time.Millisecond), WithTimeout(testTimeout))
			if err != nil {
				t.Fatal(err)
			}
			defer e.Close()
			want := fmt.Sprint(cm.n)
			if v := version(t, e); v != want {
				t.Fatalf("version %s, want %s", v, want)
			}

			var calls, failed atomic.Int64
			stop := make(chan struct{})
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					for {
						select {
						case <-stop:
							return
						default:
						}
						calls.Add(1)
						outs, err := e.Transform(context.Background(), fixture(t, "reef-put-capture.json", cloudevent.Options{}))
						if err != nil || len(outs) != 1 {
							failed.Add(1)
							t.Errorf("call during reload: %v, %+v", err, outs)
						}
					}
				})
			}
			cm.update(map[string]string{"script.lua": versioned(fmt.Sprint(cm.n + 1))})
			want = fmt.Sprint(cm.n)
			deadline := time.Now().Add(30 * time.Second)
			for version(t, e) != want {
				if time.Now().After(deadline) {
					t.Fatalf("the ConfigMap update to version %s was not picked up", want)
				}
				time.Sleep(5 * time.Millisecond)
			}
			close(stop)
			wg.Wait()
			if failed.Load() != 0 {
				t.Fatalf("%d of %d calls failed during the reload", failed.Load(), calls.Load())
			}
			t.Logf("%d calls during the swap, none failed; stats %+v", calls.Load(), e.Stats())
		})
	}
}
