package natsout

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// TestGroupCommit: concurrent core-mode publishes share round trips, and
// every message whose Publish returned nil is on the server: a subscriber
// that flushes its own connection afterwards has received all of them.
func TestGroupCommit(t *testing.T) {
	s := testutil.NATS(t)
	cfg := Config{URL: s.ClientURL(), Mode: Core, AckTimeout: 5 * time.Second}
	p := connect(t, cfg)
	waitReady(t, p)

	sub, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var mu sync.Mutex
	got := map[string]bool{}
	if _, err := sub.Subscribe("rgw.group.>", func(m *nats.Msg) {
		mu.Lock()
		got[string(m.Data)] = true
		mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}

	const workers, each = 32, 50
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				id := fmt.Sprintf("%d-%d", w, i)
				if err := p.Publish(context.Background(), []Message{{Subject: "rgw.group." + id, Data: []byte(id), MsgID: id}})[0]; err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == workers*each })

	st := p.Stats()
	if st.Published != workers*each {
		t.Fatalf("published %d, want %d", st.Published, workers*each)
	}
	if st.Flushes == 0 || st.Flushes >= st.Published {
		t.Fatalf("%d round trips for %d concurrent publishes: not shared", st.Flushes, st.Published)
	}
	t.Logf("%d publishes, %d round trips", st.Published, st.Flushes)
}

// TestGroupCommitCallerGivesUp: a caller whose context ends stops waiting
// with that error; the others are unaffected.
func TestGroupCommitCallerGivesUp(t *testing.T) {
	s := testutil.NATS(t)
	p := connect(t, Config{URL: s.ClientURL(), Mode: Core, AckTimeout: 5 * time.Second})
	waitReady(t, p)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := p.Publish(ctx, []Message{{Subject: "rgw.a", Data: []byte("x"), MsgID: "a"}})[0]
	if err == nil || !errors.Is(err, ErrUnavailable) || !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled publish: %v, want ErrUnavailable", err)
	}
	if err := p.Publish(context.Background(), []Message{{Subject: "rgw.b", Data: []byte("y"), MsgID: "b"}})[0]; err != nil {
		t.Fatal(err)
	}
}

// TestGroupCommitAbandonedMessagesUntouched: once Publish returns, even
// because its context ended while the flusher had its messages queued, the
// flusher no longer reads or writes them: the caller may reuse the buffers
// at once (run with -race), and no subscriber ever sees a reused buffer.
func TestGroupCommitAbandonedMessagesUntouched(t *testing.T) {
	s := testutil.NATS(t)
	p := connect(t, Config{URL: s.ClientURL(), Mode: Core, AckTimeout: 5 * time.Second})
	waitReady(t, p)
	got := testutil.Subscribe(t, s.ClientURL(), "rgw.abandon.>")
	var wg sync.WaitGroup
	var gaveUp sync.Map
	for w := range 16 {
		wg.Go(func() {
			for i := range 200 {
				data := []byte(fmt.Sprintf("%04d%04d", w, i))
				msgs := []Message{{Subject: fmt.Sprintf("rgw.abandon.%d", w), Data: data}}
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(i%5)*20*time.Microsecond)
				errs := p.Publish(ctx, msgs)
				cancel()
				if errs[0] != nil {
					gaveUp.Store(w, true)
				}
				copy(data, "reused!!")
				msgs[0].Subject = "rgw.abandon.reused"
				errs[0] = nil
			}
		})
	}
	wg.Wait()
	// Whatever was published arrives within a round trip of the last one.
	if err := p.Publish(context.Background(), []Message{{Subject: "rgw.abandon.end", Data: []byte("end")}})[0]; err != nil {
		t.Fatal(err)
	}
	for m := range got {
		if string(m.Data) == "reused!!" {
			t.Fatalf("a message was published from a buffer its caller had taken back (%s)", m.Subject)
		}
		if m.Subject == "rgw.abandon.end" {
			break
		}
	}
	n := 0
	gaveUp.Range(func(any, any) bool { n++; return true })
	t.Logf("callers that gave up at least once: %d of 16", n)
}
