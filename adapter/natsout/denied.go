package natsout

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrDenied is wrapped when the server refused a publish because the
// connection's user may not publish to its subject. It is permanent: the
// same message is refused again until an operator changes the permissions,
// like a subject no stream captures; the event goes to the dead letter
// (from which it is replayed once the permission is granted) rather than
// being answered 503 forever, which would block an RGW topic. A dead letter
// that is itself denied leaves the event failed transiently (503).
var ErrDenied = errors.New("publish permission denied")

// denials records the publish permission violations the server reports.
// nats-server answers a denied publish with an -ERR, asynchronously, and
// keeps the connection: nats.go sets it as the connection's last error
// while it reads it (before any PONG that follows) and hands it to the
// error handler later, in order. The flusher sees the last error change
// across its round, waits until the handler has recorded that error, and
// fails the messages of the round whose subject was denied.
type denials struct {
	mu      sync.Mutex
	last    error                // the last violation recorded
	when    map[string]time.Time // subject -> last denial
	changed chan struct{}        // closed and replaced on each record
}

// maxDenials bounds the subjects remembered; the oldest half goes first.
const maxDenials = 4096

func newDenials() *denials {
	return &denials{when: map[string]time.Time{}, changed: make(chan struct{})}
}

// deniedSubject is the subject of a publish permission violation, "" for
// any other error.
func deniedSubject(err error) string {
	if !errors.Is(err, nats.ErrPermissionViolation) {
		return ""
	}
	msg := err.Error()
	const marker = `Publish to "`
	i := strings.Index(msg, marker)
	if i < 0 {
		return ""
	}
	rest := msg[i+len(marker):]
	j := strings.LastIndexByte(rest, '"')
	if j < 0 {
		return ""
	}
	return rest[:j]
}

func (d *denials) record(err error) {
	subj := deniedSubject(err)
	if subj == "" {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.when) >= maxDenials {
		cut := time.Now().Add(-time.Minute)
		for s, t := range d.when {
			if t.Before(cut) || len(d.when) >= maxDenials {
				delete(d.when, s)
			}
		}
	}
	d.when[subj] = time.Now()
	d.last = err
	close(d.changed)
	d.changed = make(chan struct{})
}

// await waits (at most timeout) until err has been recorded.
func (d *denials) await(err error, timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		d.mu.Lock()
		done, ch := d.last == err, d.changed
		d.mu.Unlock()
		if done {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			// The handler is late: the error itself still names the last
			// subject denied.
			d.record(err)
			return
		}
	}
}

// changes is closed at the next denial recorded.
func (d *denials) changes() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// since reports whether subj was denied at or after t.
func (d *denials) since(subj string, t time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	w, ok := d.when[subj]
	return ok && !w.Before(t)
}

func deniedError(subj string) error {
	return fmt.Errorf("%w: the NATS user may not publish to this subject", ErrDenied)
}
