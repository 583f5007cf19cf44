package function_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	pipeline "github.com/rgw-nats/rgw-nats/adapter"
	"github.com/rgw-nats/rgw-nats/adapter/natsout"
)

// rgwQueue behaves like one persistent topic of RGW as measured on Pacific
// and Tentacle (shared/reference/rgw-notifications.md): every round it POSTs
// every entry still queued, without backoff, and only the entries before the
// first failure leave the queue, so the ones behind a failing head are sent
// again although they were answered 2xx.
type rgwQueue struct {
	entries []queued
	posts   map[string]int
	answers map[string][]int
}

type queued struct {
	key  string
	body []byte
}

func (q *rgwQueue) round(t *testing.T, url string) {
	t.Helper()
	ok := make([]bool, len(q.entries))
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i, e := range q.entries {
		wg.Add(1)
		go func() { // RGW posts queued entries concurrently
			defer wg.Done()
			resp := post(t, url, map[string]string{"Content-Type": "application/json"}, e.body)
			mu.Lock()
			q.posts[e.key]++
			q.answers[e.key] = append(q.answers[e.key], resp.code)
			ok[i] = resp.code/100 == 2
			mu.Unlock()
		}()
	}
	wg.Wait()
	n := 0
	for n < len(ok) && ok[n] {
		n++
	}
	q.entries = q.entries[n:]
}

// TestPoisonEventDoesNotBlockTheTopic is the poison scenario of a real RGW
// persistent topic, against the real adapter: five objects, the second of
// which the script can never process in time. The poison event ends in the
// dead letter once, with its original bytes; every good event is published
// once; the number of POSTs is bounded by the attempt limit, not by time.
func TestPoisonEventDoesNotBlockTheTopic(t *testing.T) {
	for _, c := range []struct {
		name, script string
		reason       pipeline.Reason
		posts        int // POSTs of the poison entry
	}{
		// A script error is permanent at once: one POST.
		{"script error", `error("cannot process " .. ev.subject)`, pipeline.ReasonScript, 1},
		// A deadline might pass next time: it takes POISON_ATTEMPTS POSTs.
		{"deadline", `while true do end`, pipeline.ReasonPoison, 3},
	} {
		for _, mode := range []natsout.Mode{natsout.Core, natsout.JetStream} {
			t.Run(c.name+"/"+mode.String(), func(t *testing.T) {
				s := runNATS(t)
				cfg := testConfig(t, s.ClientURL())
				cfg.NATSMode = mode
				cfg.DedupWindow = 10 * time.Minute
				cfg.PoisonAttempts = 3
				cfg.LuaTimeout = 50 * time.Millisecond
				cfg.LuaScript = writeScript(t, `
function transform(ev)
  if ev.subject:find("^poison/") then `+c.script+` end
  return ev
end`)
				a := startAdapter(t, cfg, s.ClientURL())
				events := a.subscribe(t, "rgw.>")
				letters := a.subscribe(t, "rgwnats.deadletter.>")

				q := &rgwQueue{posts: map[string]int{}, answers: map[string][]int{}}
				keys := []string{"ok/1", "poison/x.txt", "ok/2", "ok/3", "ok/4"}
				bodies := map[string][]byte{}
				for i, key := range keys {
					body := strings.NewReplacer(
						`"key":"docs/report.txt"`, `"key":"`+key+`"`,
						`"eventId":"1795554846`, fmt.Sprintf(`"eventId":"%d`, 1795554900+i),
					).Replace(string(fixture(t, putFixture)))
					bodies[key] = []byte(body)
					q.entries = append(q.entries, queued{key, []byte(body)})
				}
				rounds := 0
				for len(q.entries) > 0 && rounds < 20 {
					q.round(t, a.url)
					rounds++
				}
				if len(q.entries) != 0 {
					t.Fatalf("queue still holds %d entries after %d rounds: %v", len(q.entries), rounds, q.answers)
				}
				// The head entry is retried until the poison rule takes it, and
				// the rounds stop there.
				if q.posts["poison/x.txt"] != c.posts {
					t.Errorf("poison POSTed %d times, want %d: %v", q.posts["poison/x.txt"], c.posts, q.answers)
				}
				for _, key := range keys {
					if q.posts[key] > cfg.PoisonAttempts {
						t.Errorf("%s POSTed %d times: more than the attempt limit", key, q.posts[key])
					}
				}
				got := receive(t, events, 4)
				none(t, events)
				seen := map[string]int{}
				for _, m := range got {
					ev := decode(t, m)
					seen[ev.Subject()]++
				}
				for _, key := range []string{"ok/1", "ok/2", "ok/3", "ok/4"} {
					if seen[key] != 1 {
						t.Errorf("%s published %d times, want once: %v", key, seen[key], seen)
					}
				}
				dl := receive(t, letters, 1)[0]
				none(t, letters)
				if string(dl.Data) != string(bodies["poison/x.txt"]) || dl.Header.Get(pipeline.HeaderReason) != c.reason.String() {
					t.Errorf("dead letter %v %q", dl.Header, dl.Data)
				}
				if mode == natsout.JetStream {
					js, _ := jetstream.New(a.nc)
					st, err := js.Stream(t.Context(), cfg.NATSStream)
					if err != nil {
						t.Fatal(err)
					}
					info, _ := st.Info(t.Context())
					// Four events and one dead letter, each stored once.
					if info.State.Msgs != 5 {
						t.Errorf("stream holds %d messages, want 5", info.State.Msgs)
					}
				}
				t.Logf("%d rounds; POSTs per entry %v; published per good event %v; dead letters 1", rounds, q.posts, seen)
			})
		}
	}
}
