package function

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/rgw-nats/rgw-nats/adapter/ingress"
)

// How a request body must arrive. A body gets bodyGrace to start, then must
// keep up bodyMinRate on average: a 1 MiB body has 18 s, a byte a second
// fails after about 2 s. RGW and Knative send a notification at LAN speed
// in milliseconds; what is slower holds a connection and memory that good
// senders need.
const (
	bodyGrace   = 2 * time.Second
	bodyMinRate = 64 << 10 // bytes per second
	// bodyChunk is what is reserved and read at a time.
	bodyChunk = 32 << 10
)

var (
	// errBusy: reading on would pass MAX_INFLIGHT_BYTES (transient: 503).
	errBusy = errors.New("busy")
	// errSlowBody: the body did not arrive at the minimum rate (408: the
	// sender may retry, on a new connection).
	errSlowBody = errors.New("request body too slow")
)

// bodyReader reads one request body into memory. Admission counts the
// bytes actually read: each chunk is reserved from the in-flight budget
// (MAX_INFLIGHT_BYTES) before it is read, and what a read did not fill is
// given back, so a declared length reserves nothing by itself and the
// buffer grows only with what arrived. The read deadline moves with what
// arrived (bodyGrace + bytes/bodyMinRate), so a slow upload ends, loses its
// reservation and frees its connection within seconds instead of the
// server's ReadTimeout.
type bodyReader struct {
	w        http.ResponseWriter
	r        *http.Request
	run      *running
	reserved int64
}

// release gives back the reservation, once the request is answered.
func (b *bodyReader) release() {
	b.run.inFlight.Add(-b.reserved)
	b.reserved = 0
}

func (b *bodyReader) reserve(n int64) bool {
	if b.run.inFlight.Add(n) > b.run.cfg.MaxInFlight {
		b.run.inFlight.Add(-n)
		return false
	}
	b.reserved += n
	return true
}

// read returns the body, or its first MaxBodyBytes bytes and the declared
// length (-1: unknown) when it is over the limit.
func (b *bodyReader) read() (body []byte, oversize int64, err error) {
	limit := b.run.cfg.MaxBodyBytes
	declared := b.r.ContentLength
	want := limit + 1 // to tell a body over the limit when no length is declared
	switch {
	case declared > limit:
		want, oversize = limit, declared
	case declared >= 0:
		want = declared
	}
	rc := http.NewResponseController(b.w)
	start := time.Now()
	deadlines := rc.SetReadDeadline(start.Add(bodyGrace)) == nil
	if deadlines {
		defer rc.SetReadDeadline(time.Time{})
	}
	for int64(len(body)) < want {
		n := min(int64(bodyChunk), want-int64(len(body)))
		if !b.reserve(n) {
			return nil, 0, errBusy
		}
		if int64(cap(body)-len(body)) < n {
			grown := make([]byte, len(body), min(want, max(2*int64(cap(body)), int64(len(body))+n)))
			copy(grown, body)
			body = grown
		}
		got, rerr := b.r.Body.Read(body[len(body) : int64(len(body))+n])
		body = body[:len(body)+got]
		b.run.inFlight.Add(int64(got) - n) // keep only what was read
		b.reserved += int64(got) - n
		if deadlines && got > 0 && rerr == nil && int64(len(body)) < want {
			_ = rc.SetReadDeadline(start.Add(bodyGrace + time.Duration(float64(len(body))/bodyMinRate*float64(time.Second))))
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			if errors.Is(rerr, os.ErrDeadlineExceeded) {
				return nil, 0, fmt.Errorf("%w: %d bytes in %v, less than %d bytes a second after the first %v",
					errSlowBody, len(body), time.Since(start).Round(time.Millisecond), bodyMinRate, bodyGrace)
			}
			return nil, 0, fmt.Errorf("reading body: %s", ingress.OneLine(rerr))
		}
	}
	if declared >= 0 && declared <= limit && int64(len(body)) < declared {
		return nil, 0, fmt.Errorf("reading body: %s", ingress.OneLine(io.ErrUnexpectedEOF))
	}
	if declared < 0 && int64(len(body)) > limit {
		body, oversize = body[:limit], -1
	}
	return body, oversize, nil
}
