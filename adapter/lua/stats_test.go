package lua

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/cloudevent"
)

// TestStatsForMetrics checks what the metrics read from Stats: every
// finished call is counted once as ok, error or timeout; the observer sees
// every call; states are busy while a call runs and idle in the pool after.
func TestStatsForMetrics(t *testing.T) {
	const src = `
function transform(ev)
  if ev.subject == "fail" then error("no") end
  if ev.subject == "slow" then while true do end end
  return ev
end`
	var mu sync.Mutex
	var observed []time.Duration
	e := newEngine(t, src, WithOnError(Drop), WithTimeout(50*time.Millisecond), WithPoolSize(2),
		WithCallObserver(func(d time.Duration) {
			mu.Lock()
			observed = append(observed, d)
			mu.Unlock()
		}))
	ctx := context.Background()
	for _, subj := range []string{"fail", "slow", "ok", "ok"} {
		ev := fixture(t, "reef-put-capture.json", cloudevent.Options{})
		ev.SetSubject(subj)
		if _, err := e.Transform(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	s := e.Stats()
	if s.Calls != 4 || s.OK != 2 || s.Errors != 2 || s.Timeouts != 1 || s.Drops != 2 {
		t.Errorf("stats %+v, want 4 calls: 2 ok, 1 error, 1 timeout", s)
	}
	// Failed calls close their state; the last call put its state back.
	if s.Live != 0 || s.Idle != 1 {
		t.Errorf("between calls: live %d idle %d, want 0 and 1", s.Live, s.Idle)
	}
	mu.Lock()
	n := len(observed)
	slow := observed[1]
	mu.Unlock()
	if n != 4 {
		t.Errorf("observer saw %d calls, want 4", n)
	}
	if slow < 50*time.Millisecond {
		t.Errorf("the timed-out call was observed as %v, shorter than its deadline", slow)
	}

	// A call that runs: busy while it does. The script spins until its
	// deadline, which is long enough to look.
	done := make(chan struct{})
	go func() {
		defer close(done)
		ev := fixture(t, "reef-put-capture.json", cloudevent.Options{})
		ev.SetSubject("slow")
		e.Transform(ctx, ev)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for e.Stats().Live != 1 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if b := e.Stats().Live; b != 1 {
		t.Errorf("busy %d while a call runs, want 1", b)
	}
	<-done
	if b := e.Stats().Live; b != 0 {
		t.Errorf("busy %d after the call, want 0", b)
	}
}
