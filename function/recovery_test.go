package function_test

import (
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/natsout"
	"github.com/rgw-nats/rgw-nats/function"
	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// TestConcurrentResendsPublishOnce: 16 requests carrying one event id at
// the same moment (RGW resending while the first is still being published)
// publish it once, in both modes, and every one of them is answered as the
// first was (issue 17, item 6: core mode published it 7 to 15 times).
func TestConcurrentResendsPublishOnce(t *testing.T) {
	for _, mode := range []natsout.Mode{natsout.Core, natsout.JetStream} {
		t.Run(mode.String(), func(t *testing.T) {
			s := runNATS(t)
			cfg := testConfig(t, s.ClientURL())
			cfg.NATSMode = mode
			cfg.DedupWindow = time.Minute
			a := startAdapter(t, cfg, s.ClientURL())
			events := a.subscribe(t, "rgw.>")
			body := fixture(t, putFixture)
			for round := range 5 {
				// Another id each round: the record's eventId.
				b := []byte(strings.Replace(string(body), `"eventId":"`, `"eventId":"r`+string(rune('0'+round)), 1))
				var wg sync.WaitGroup
				codes := make([]int, 16)
				start := make(chan struct{})
				for i := range codes {
					wg.Go(func() {
						<-start
						codes[i] = post(t, a.url, map[string]string{"Content-Type": "application/json"}, b).code
					})
				}
				close(start)
				wg.Wait()
				for i, c := range codes {
					if c != http.StatusAccepted {
						t.Fatalf("round %d: request %d answered %d", round, i, c)
					}
				}
				receive(t, events, 1)
				none(t, events)
			}
		})
	}
}

// TestOutcomeHeader: every answer says what became of the request's events
// (issue 18: the same samples sent twice answered 202 both times with
// nothing to tell that the second was a duplicate, and `curl --data hello`
// got 202 for a dead letter). A duplicate is logged at debug with its id;
// every dead-letter line has its reason.
func TestOutcomeHeader(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.DedupWindow = time.Minute
	cfg.LuaScript = writeScript(t, `function transform(ev)
  if ev.subject == "drop" then return nil end
  if ev.subject == "bad" then error("bad key") end
  return ev
end`)
	a := startAdapter(t, cfg, s.ClientURL())
	raw := map[string]string{"Content-Type": "application/json"}
	body := fixture(t, putFixture)
	const id = "1795554846.485564.8dd5067d1c62a18c414da9ef1f1dbde6.main-created"
	withKey := func(key, eventID string) []byte {
		b := strings.Replace(string(body), `"key":"docs/report.txt"`, `"key":"`+key+`"`, 1)
		return []byte(strings.Replace(b, `"eventId":"1795554846`, `"eventId":"`+eventID, 1))
	}
	three := []byte(`{"Records":[` + strings.Join([]string{
		recordOf(t, withKey("a", "3a")), recordOf(t, withKey("drop", "3b")), recordOf(t, withKey("bad", "3c")),
	}, ",") + `]}`)
	for _, c := range []struct {
		name   string
		header map[string]string
		body   []byte
		code   int
		want   string
	}{
		{"first send", raw, body, 202, "published=1, duplicate=0, dropped=0, deadlettered=0, failed=0"},
		{"the same again", raw, body, 202, "published=0, duplicate=1, dropped=0, deadlettered=0, failed=0"},
		{"curl --data hello", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, []byte("hello"), 202,
			"published=0, duplicate=0, dropped=0, deadlettered=1, failed=0"},
		{"three records", raw, three, 202, "published=1, duplicate=0, dropped=1, deadlettered=1, failed=0"},
		{"bad CloudEvent", map[string]string{"Content-Type": "application/cloudevents+json"}, []byte(`{"specversion":"1.0"}`), 400,
			"published=0, duplicate=0, dropped=0, deadlettered=0, failed=1"},
	} {
		resp := post(t, a.url, c.header, c.body)
		if resp.code != c.code || resp.header.Get("Rgwnats-Outcome") != c.want {
			t.Errorf("%s: %d %q, Rgwnats-Outcome %q; want %d, %q", c.name, resp.code, resp.body, resp.header.Get("Rgwnats-Outcome"), c.code, c.want)
		}
	}
	// Before the pipeline: counts none.
	req, _ := http.NewRequest(http.MethodGet, a.url, nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 405 ||
		resp.Header.Get("Rgwnats-Outcome") != "published=0, duplicate=0, dropped=0, deadlettered=0, failed=0" {
		t.Errorf("GET: %v %v", err, resp.Header)
	}
	logs := a.log.String()
	if !strings.Contains(logs, `level=DEBUG msg="duplicate: not published again" event_id=`+id) {
		t.Errorf("no debug line for the duplicate:\n%s", logs)
	}
	var lines []string
	for l := range strings.Lines(logs) {
		if strings.Contains(l, `msg=dead-lettered`) {
			lines = append(lines, l)
			if !strings.Contains(l, "reason=decode") && !strings.Contains(l, "reason=script") {
				t.Errorf("dead-letter line without its reason: %s", l)
			}
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[1], "event_id=3c") {
		t.Errorf("dead-letter lines: %q", lines)
	}
}

// recordOf is the one record of an RGW POST body.
func recordOf(t *testing.T, body []byte) string {
	t.Helper()
	s := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(string(body)), `{"Records":[`), `]}`)
	if s == string(body) {
		t.Fatal("not an RGW POST of one record")
	}
	return s
}

// TestNATSCLIAliases: natscli's NATS_CA, NATS_CERT and NATS_KEY configure
// the TLS files when ours are unset (issue 18: they were not read); ours
// win when both are set.
func TestNATSCLIAliases(t *testing.T) {
	t.Setenv("NATS_CA", "/etc/nats/ca.pem")
	t.Setenv("NATS_CERT", "/etc/nats/cert.pem")
	t.Setenv("NATS_KEY", "/etc/nats/key.pem")
	c, err := function.LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if c.NATSTLSCA != "/etc/nats/ca.pem" || c.NATSTLSCert != "/etc/nats/cert.pem" || c.NATSTLSKey != "/etc/nats/key.pem" {
		t.Errorf("aliases not read: %q %q %q", c.NATSTLSCA, c.NATSTLSCert, c.NATSTLSKey)
	}
	t.Setenv("NATS_TLS_CA", "/ours.pem")
	if c, _ = function.LoadConfig(); c.NATSTLSCA != "/ours.pem" {
		t.Errorf("NATS_TLS_CA did not win over NATS_CA: %q", c.NATSTLSCA)
	}
	var usage strings.Builder
	function.PrintUsage(&usage)
	if !strings.Contains(usage.String(), "NATS_TLS_CA (or NATS_CA)") {
		t.Errorf("--help does not name the alias:\n%s", usage.String())
	}
}

// TestReplayOfDeadLetter: a dead-lettered event resent by its sender is a
// duplicate (no second dead letter, nothing published); replayed
// (Rgwnats-Replay) while its cause is still there, it is dead-lettered
// again with the replay named; replayed once fixed, published once.
func TestReplayOfDeadLetter(t *testing.T) {
	s := runNATS(t)
	cfg := testConfig(t, s.ClientURL())
	cfg.DedupWindow = time.Minute
	cfg.LuaScript = writeScript(t, `function transform(ev) error("broken") end`)
	a := startAdapter(t, cfg, s.ClientURL())
	letters := a.subscribe(t, "rgwnats.deadletter.>")
	events := a.subscribe(t, "rgw.>")
	raw := map[string]string{"Content-Type": "application/json"}
	replay := map[string]string{"Content-Type": "application/json", "Rgwnats-Replay": "RGW#7"}
	body := fixture(t, putFixture)
	outcome := func(h map[string]string) string {
		t.Helper()
		resp := post(t, a.url, h, body)
		if resp.code != 202 {
			t.Fatalf("%d %q", resp.code, resp.body)
		}
		return resp.header.Get("Rgwnats-Outcome")
	}
	if got := outcome(raw); got != "published=0, duplicate=0, dropped=0, deadlettered=1, failed=0" {
		t.Fatalf("first: %s", got)
	}
	if m := receive(t, letters, 1)[0]; m.Header.Get("Rgwnats-Replay") != "" {
		t.Errorf("a first dead letter names a replay: %v", m.Header)
	}
	if got := outcome(raw); got != "published=0, duplicate=1, dropped=0, deadlettered=0, failed=0" {
		t.Errorf("resent: %s", got)
	}
	none(t, letters)
	if got := outcome(replay); got != "published=0, duplicate=0, dropped=0, deadlettered=1, failed=0" {
		t.Errorf("replayed, still broken: %s", got)
	}
	if m := receive(t, letters, 1)[0]; m.Header.Get("Rgwnats-Replay") != "RGW#7" {
		t.Errorf("the replay's dead letter does not name it: %v", m.Header)
	}
	os.WriteFile(cfg.LuaScript, []byte(`function transform(ev) return ev end`), 0o644)
	testutil.WaitFor(t, func() bool { return strings.Contains(a.log.String(), "lua: scripts reloaded") })
	deadline := time.Now().Add(10 * time.Second)
	for got := outcome(replay); got != "published=1, duplicate=0, dropped=0, deadlettered=0, failed=0"; got = outcome(replay) {
		// Until the reload is in service the replay fails as before.
		if got != "published=0, duplicate=0, dropped=0, deadlettered=1, failed=0" || time.Now().After(deadline) {
			t.Fatalf("replayed once fixed: %s", got)
		}
		receive(t, letters, 1)
		time.Sleep(50 * time.Millisecond)
	}
	receive(t, events, 1)
	if got := outcome(replay); got != "published=0, duplicate=1, dropped=0, deadlettered=0, failed=0" {
		t.Errorf("replayed twice: %s", got)
	}
	if got := outcome(raw); got != "published=0, duplicate=1, dropped=0, deadlettered=0, failed=0" {
		t.Errorf("resent after the replay: %s", got)
	}
	none(t, events)
	none(t, letters)
}
