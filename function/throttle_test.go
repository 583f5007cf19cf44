package function

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rgw-nats/rgw-nats/internal/testutil"
)

// TestThrottleReportsWhatItLeftOut: a burst over the rate is cut, and the
// count of what was left out is logged a second later even when no further
// failure comes to trigger it.
func TestThrottleReportsWhatItLeftOut(t *testing.T) {
	var buf testutil.Buffer
	th := newThrottle(slog.New(slog.NewTextHandler(&buf, nil)), 5)
	for range 12 {
		th.log(context.Background(), slog.LevelWarn, "request failed")
	}
	if n := strings.Count(buf.String(), "request failed"); n > 5+5 {
		t.Fatalf("%d lines logged at a rate of 5 a second", n)
	}
	testutil.WaitFor(t, func() bool { return strings.Contains(buf.String(), "failures not logged (rate limit)") })
	logged := strings.Count(buf.String(), `msg="request failed"`)
	if !strings.Contains(buf.String(), "count="+strconv.Itoa(12-logged)) {
		t.Errorf("report does not count the %d left out:\n%s", 12-logged, buf.String())
	}
	time.Sleep(1100 * time.Millisecond)
	if n := strings.Count(buf.String(), "failures not logged"); n != 1 {
		t.Errorf("%d reports, want one", n)
	}
}
