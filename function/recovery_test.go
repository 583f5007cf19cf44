package function_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/natsout"
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

var _ = testutil.WaitFor
