package function_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestSaturatedAnswers: when rgw-nats is at capacity (MAX_INFLIGHT_BYTES of
// bodies in flight, or no Lua state free within LUA_STATE_WAIT), a
// CloudEvents sender gets 429 + Retry-After (Knative retries it, honouring
// Retry-After), and RGW, which treats every non-2xx alike, 503 + Retry-After,
// in every ingress mode; nothing is published for the refused request, and
// once the load is gone the same request is accepted.
func TestSaturatedAnswers(t *testing.T) {
	for _, limit := range []string{"MAX_INFLIGHT_BYTES", "LUA_MAX_STATES"} {
		t.Run(limit, func(t *testing.T) {
			s := runNATS(t)
			cfg := testConfig(t, s.ClientURL())
			// One slow call holds the only Lua state (and, with room for one
			// body only, all the in-flight bytes) while the others arrive.
			cfg.LuaScript = writeScript(t, `function transform(ev) local t0 = os.clock() while os.clock() - t0 < 0.7 do end return ev end`)
			cfg.LuaMaxStates, cfg.LuaStateWait = 1, 20*time.Millisecond
			env := fixture(t, putFixture)
			if limit == "MAX_INFLIGHT_BYTES" {
				// Room for the slow body and the CloudEvents wrapping of
				// another, not for two bodies.
				cfg.MaxBodyBytes = int64(len(env)) + 512
				cfg.MaxInFlight = cfg.MaxBodyBytes
			}
			a := startAdapter(t, cfg, s.ClientURL())
			ch := a.subscribe(t, "rgw.>")
			n := len(wantFor(t, env))
			for _, m := range ingressModes {
				t.Run(m.name, func(t *testing.T) {
					h, body := m.build(env)
					// The slow request carries another event id: one with
					// the same id would be waited for (single flight), not
					// refused.
					slowBody := []byte(strings.Replace(string(env), `"eventId":"`, `"eventId":"slow-`+m.name+`-`, 1))
					slow := make(chan response, 1)
					go func() { slow <- post(t, a.url, map[string]string{"Content-Type": "application/json"}, slowBody) }()
					// The slow request holds the state (and the bytes) for
					// 0.7 s of CPU once its call runs.
					waitLuaLive(t, a.url)
					r := post(t, a.url, h, body)
					want := 429
					if m.fromRGW {
						want = 503
					}
					if r.code != want || r.header.Get("Retry-After") == "" || !strings.Contains(r.body, limit) {
						t.Errorf("while saturated: %d %v %q, want %d + Retry-After naming %s", r.code, r.header, r.body, want, limit)
					}
					if got := <-slow; got.code != 202 {
						t.Fatalf("the slow request: %d %s", got.code, got.body)
					}
					receive(t, ch, n) // the slow request's events only
					none(t, ch)
					if r := post(t, a.url, h, body); r.code/100 != 2 {
						t.Errorf("after the load: %d %s", r.code, r.body)
					}
					receive(t, ch, n)
				})
			}
		})
	}
}

// waitLuaLive waits until a Lua call is running (the adapter's own metric).
func waitLuaLive(t *testing.T, url string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if strings.Contains(string(b), `rgwnats_lua_states{state="live"} 1`) {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("no Lua call running within 10s")
}
