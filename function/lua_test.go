package function_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/adapter/lua"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
)

// writeScript puts a script in a fresh directory and returns its path.
func writeScript(t *testing.T, src string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "transform.lua")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// failing fails for the xraylab bucket and loops forever for the jayanth
// bucket; everything else passes.
const failing = `
function transform(ev)
  if ev.ext.bucket == "xraylab-0001" then error("cannot handle x-rays") end
  if ev.ext.bucket == "jayanth" then while true do end end
  ev.ext.seen = "yes"
  return ev
end`

// TestLuaFailurePolicies: LUA_ON_ERROR end to end, through HTTP and a real
// nats-server.
func TestLuaFailurePolicies(t *testing.T) {
	bad := fixture(t, "downstream-xraylab-put-capture.json")
	good := fixture(t, putFixture)
	for _, c := range []struct {
		policy    lua.Policy
		code      int
		published bool // is the failing event published (untransformed)?
	}{
		{lua.Reject, 422, false},
		{lua.Drop, 202, false},
		{lua.Passthrough, 202, true},
	} {
		t.Run(c.policy.String(), func(t *testing.T) {
			s := runNATS(t)
			cfg := testConfig(t, s.ClientURL())
			cfg.LuaScript, cfg.LuaOnError = writeScript(t, failing), c.policy
			cfg.DeadLetter = false // what each policy answers on its own
			a := startAdapter(t, cfg, s.ClientURL())
			ch := a.subscribe(t, "rgw.>")

			resp := post(t, a.url, nil, bad)
			if resp.code != c.code {
				t.Fatalf("answer %d %q, want %d", resp.code, resp.body, c.code)
			}
			if c.code == 500 {
				if resp.header.Get("Retry-After") == "" {
					t.Error("500 without Retry-After")
				}
				for _, want := range []string{"transform.lua:3", "cannot handle x-rays", "1613700188.340170.819c1e1c1b4c7b9853301ba2e6c300f1"} {
					if !strings.Contains(resp.body, want) {
						t.Errorf("reason %q does not name %q", resp.body, want)
					}
				}
			}
			if c.published {
				ev := decode(t, receive(t, ch, 1)[0])
				if _, ok := ev.Extensions()["seen"]; ok || ev.Extensions()["bucket"] != "xraylab-0001" {
					t.Errorf("passthrough published %v", ev.Extensions())
				}
			} else {
				none(t, ch)
			}
			if resp := post(t, a.url, nil, good); resp.code != 202 {
				t.Fatalf("good event after a failure: %d %q", resp.code, resp.body)
			}
			if ev := decode(t, receive(t, ch, 1)[0]); ev.Extensions()["seen"] != "yes" {
				t.Errorf("transform not applied: %v", ev.Extensions())
			}
		})
	}
}

// TestLuaDeadline: a script that never returns costs its request a 503 after
// LUA_TIMEOUT, and other requests are served meanwhile.
func TestLuaDeadline(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.LuaScript, cfg.LuaTimeout = writeScript(t, failing), 300*time.Millisecond
	a := startAdapter(t, cfg, s.ClientURL())
	ch := a.subscribe(t, "rgw.>")

	looping := make(chan response, 2)
	for range 2 {
		go func() { looping <- post(t, a.url, nil, fixture(t, "reef-put-capture.json")) }()
	}
	for range 5 {
		if resp := post(t, a.url, nil, fixture(t, putFixture)); resp.code != 202 {
			t.Fatalf("a good request while scripts loop: %d %q", resp.code, resp.body)
		}
	}
	receive(t, ch, 5)
	for range 2 {
		resp := <-looping
		if resp.code != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" || !strings.Contains(resp.body, "deadline") {
			t.Fatalf("looping script: %d %q, want 503 with Retry-After", resp.code, resp.body)
		}
	}
	none(t, ch)
}

// TestRGWScriptSharesTheConnection runs an RGW postRequest script unchanged:
// it calls nats.connect() and client:connect() for every event, yet the NATS
// server sees no new connection, and the payload it publishes arrives.
func TestRGWScriptSharesTheConnection(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.LuaScript = filepath.Join("..", "samples", "lua", "rgw-compat.lua")
	a := startAdapter(t, cfg, s.ClientURL())
	ch := a.subscribe(t, "rgw.notifications")
	before := s.NumClients() // the adapter's connection and the observer

	const n = 50
	for i := range n {
		if resp := post(t, a.url, nil, fixture(t, putFixture)); resp.code != 202 {
			t.Fatalf("request %d: %d %q", i, resp.code, resp.body)
		}
	}
	msgs := receive(t, ch, n)
	if after := s.NumClients(); after != before {
		t.Fatalf("the server had %d connections before and %d after %d events", before, after, n)
	}
	if vz, err := s.Varz(nil); err != nil || vz.TotalConnections > uint64(before) {
		total := vz.TotalConnections
		t.Fatalf("%d connections were opened for %d events (%v); want none beyond the %d there were", total, n, err, before)
	}
	body := string(msgs[0].Data)
	for _, want := range []string{`"eventName":"ObjectCreated:Put"`, `"name":"nb-main"`, `"key":"docs/report.txt"`} {
		if !strings.Contains(strings.ReplaceAll(body, " ", ""), want) {
			t.Errorf("published payload lacks %s: %s", want, body)
		}
	}
	none(t, ch)
}

// anonymizing starts rgw-nats with samples/lua/anonymize.lua on a NATS of its
// own and subscribes to all it publishes.
func anonymizing(t *testing.T) (*adapter, chan *nats.Msg) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.LuaScript = filepath.Join("..", "samples", "lua", "anonymize.lua")
	cfg.LuaHMACKey = "test-key-not-secret"
	a := startAdapter(t, cfg, s.ClientURL())
	return a, a.subscribe(t, ">")
}

// TestAnonymizeEndToEnd: the X-ray key carries patient data; what reaches
// NATS must not.
func TestAnonymizeEndToEnd(t *testing.T) {
	a, ch := anonymizing(t)
	if resp := post(t, a.url, nil, fixture(t, "downstream-xraylab-put-capture.json")); resp.code != 202 {
		t.Fatalf("%d %q", resp.code, resp.body)
	}
	m := receive(t, ch, 1)[0]
	for _, secret := range []string{"Micheal", "Phillips", "6580", "1947-05-22", "xraylab-0001\"}"} {
		if strings.Contains(string(m.Data), secret) || strings.Contains(m.Subject, secret) {
			t.Errorf("%q reached NATS: %s %s", secret, m.Subject, m.Data)
		}
	}
	if ev := decode(t, m); !strings.HasPrefix(ev.Subject(), "demo_XXX_") || !strings.HasSuffix(ev.Subject(), "_XXXX-XX-XX_2017-04-27.jpeg") {
		t.Errorf("subject %q", ev.Subject())
	}
}

// TestAnonymizeLargeRecordEndToEnd: a record of 32 KiB (metadata) takes the
// path of data ingress checked (TransformChecked: stepped over, indexed as
// read): anonymized all the same, and what the script did not touch
// arrives as it was.
func TestAnonymizeLargeRecordEndToEnd(t *testing.T) {
	a, ch := anonymizing(t)
	var body map[string]any
	if err := json.Unmarshal(fixture(t, "downstream-xraylab-put-capture.json"), &body); err != nil {
		t.Fatal(err)
	}
	obj := body["Records"].([]any)[0].(map[string]any)["s3"].(map[string]any)["object"].(map[string]any)
	var meta []any
	for i := range 300 {
		meta = append(meta, map[string]any{"key": fmt.Sprintf("x-amz-meta-f%03d", i), "val": strings.Repeat("v", 90)})
	}
	obj["metadata"] = meta
	large, err := json.Marshal(body)
	if err != nil || len(large) < 32<<10 {
		t.Fatalf("%d bytes, %v", len(large), err)
	}
	if resp := post(t, a.url, nil, large); resp.code != 202 {
		t.Fatalf("%d %q", resp.code, resp.body)
	}
	ev := decode(t, receive(t, ch, 1)[0])
	var rec struct {
		UserIdentity struct{ PrincipalID string } `json:"userIdentity"`
		S3           struct {
			Object struct {
				Key      string
				Metadata []map[string]string
			}
		}
	}
	if err := json.Unmarshal(ev.Data(), &rec); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(rec.UserIdentity.PrincipalID, "anon-") || !strings.HasPrefix(rec.S3.Object.Key, "demo_XXX_") {
		t.Errorf("not anonymized: %q %q", rec.UserIdentity.PrincipalID, rec.S3.Object.Key)
	}
	if len(rec.S3.Object.Metadata) != 300 || rec.S3.Object.Metadata[299]["key"] != "x-amz-meta-f299" {
		t.Errorf("metadata: %d entries", len(rec.S3.Object.Metadata))
	}
}

// TestLuaReloadUnderLoad swaps the script the way a Kubernetes ConfigMap
// volume does (a new ..data directory, then an atomic symlink rename) while
// requests keep coming: none fails, and the new version takes over.
func TestLuaReloadUnderLoad(t *testing.T) {
	dir := t.TempDir()
	version := func(v string) {
		gen := filepath.Join(dir, "..gen"+v)
		os.Mkdir(gen, 0o755)
		src := `function transform(ev) ev.ext.version = "` + v + `" return ev end`
		if err := os.WriteFile(filepath.Join(gen, "transform.lua"), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(dir, "..data_tmp")
		os.Remove(tmp)
		if err := os.Symlink(filepath.Base(gen), tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("1")
	if err := os.Symlink(filepath.Join("..data", "transform.lua"), filepath.Join(dir, "transform.lua")); err != nil {
		t.Fatal(err)
	}

	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.LuaScript = filepath.Join(dir, "transform.lua")
	a := startAdapter(t, cfg, s.ClientURL())
	ch := a.subscribe(t, "rgw.>")
	var seen2 atomic.Bool
	go func() {
		for m := range ch {
			if ev, err := decodeMsg(m); err == nil && ev.Extensions()["version"] == "2" {
				seen2.Store(true)
			}
		}
	}()

	var (
		wg     sync.WaitGroup
		failed atomic.Int64
		sent   atomic.Int64
		stop   atomic.Bool
	)
	body := fixture(t, putFixture)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if resp := post(t, a.url, nil, body); resp.code != 202 {
					failed.Add(1)
				}
				sent.Add(1)
			}
		}()
	}
	time.Sleep(200 * time.Millisecond)
	version("2")
	deadline := time.Now().Add(15 * time.Second)
	for !seen2.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	stop.Store(true)
	wg.Wait()
	if !seen2.Load() {
		t.Fatal("the new script version never took over")
	}
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during the reload", failed.Load(), sent.Load())
	}
}

// TestPartialFailureRetry: a two-record POST where one record fails
// transiently (its first call runs into the Lua deadline) is not
// acknowledged; RGW's retry publishes the record that failed, and the one
// that already made it is not published again.
func TestPartialFailureRetry(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.NATSMode = natsout.JetStream
	cfg.DedupWindow = time.Minute
	cfg.LuaTimeout = 50 * time.Millisecond
	cfg.LuaScript = writeScript(t, `
function transform(ev)
  if ev.ext.bucket == "jayanth" then
    local tries = (RGW["tries"] or 0) + 1
    RGW["tries"] = tries
    if tries == 1 then while true do end end
  end
  return ev
end`)
	a := startAdapter(t, cfg, s.ClientURL())
	one := wantFor(t, fixture(t, putFixture))[0].data
	two := wantFor(t, fixture(t, "reef-put-capture.json"))[0].data
	body := []byte(`{"Records":[` + string(one) + `,` + string(two) + `]}`)

	if resp := post(t, a.url, nil, body); resp.code != 503 || !strings.Contains(resp.body, "1 of 2 events not delivered (transient, timeout)") {
		t.Fatalf("first attempt: %d %q, want 503 naming the failed record", resp.code, resp.body)
	}
	if resp := post(t, a.url, nil, body); resp.code != 202 {
		t.Fatalf("retry: %d %q", resp.code, resp.body)
	}
	if n := streamMsgs(t, a.nc, cfg.NATSStream); n != 2 {
		t.Fatalf("stream holds %d messages, want each record once", n)
	}
}
