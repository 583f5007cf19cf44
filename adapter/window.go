package adapter

import (
	"context"
	"hash/maphash"
	"sync"
	"time"
)

// idWindow remembers event ids for a while: at most max of them, none older
// than age, each with what became of it (mark). It keeps a 128-bit hash of
// each id, never the id, so its memory is fixed per entry (about 90 bytes:
// the map slot, the hash and the ring slot; TestIDWindowMemory measures it)
// whatever the ids look like; two ids colliding in 128 bits is not a
// practical concern. The zero value remembers nothing.
//
// It also holds the ids in flight (claim/land): one request publishes an id
// while every other request carrying it waits and answers as the first did,
// so that concurrent resends of one event are published once. Flights are
// kept whether or not ids are remembered afterwards.
type idWindow struct {
	age time.Duration
	max int

	mu      sync.Mutex
	seed    [2]maphash.Seed
	entries map[idKey]idEntry
	ring    []ringSlot // insertion order, oldest at head
	head    int
	n       int
	seq     uint32
	flights map[idKey]*flight
}

type idKey [2]uint64

// mark is what became of a remembered id.
type mark uint8

const (
	markNone         mark = iota // not remembered (or only counted: poison)
	markDone                     // published or dropped: never again
	markDeadLettered             // in the dead letter: a replay may publish it, a resend may not
)

type idEntry struct {
	first int64 // unix nanoseconds
	count int32
	seq   uint32 // of its ring slot: an older slot of the same key is stale
	mark  mark
}

type ringSlot struct {
	key idKey
	seq uint32
}

// flight is one id being processed; done is closed once out holds its
// outcome. done is made (under idWindow.mu) only when a second request
// waits for it: most ids are never resent while in flight.
type flight struct {
	done chan struct{}
	out  Outcome
}

func newIDWindow(age time.Duration, max int) *idWindow {
	w := &idWindow{age: age, max: max, flights: map[idKey]*flight{}}
	w.seed = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	if age <= 0 || max <= 0 {
		w.max = 0
		return w
	}
	w.entries = make(map[idKey]idEntry, min(max, 1024))
	w.ring = make([]ringSlot, max)
	return w
}

func (w *idWindow) key(id string) idKey {
	return idKey{maphash.String(w.seed[0], id), maphash.String(w.seed[1], id)}
}

func (w *idWindow) young(e idEntry, now time.Time) bool {
	return now.UnixNano()-e.first < int64(w.age)
}

// expire drops entries past their age, and the oldest when full. w.mu held.
func (w *idWindow) expire(now time.Time) {
	for w.n > 0 {
		s := w.ring[w.head]
		e, ok := w.entries[s.key]
		if ok && e.seq == s.seq && w.n < w.max && w.young(e, now) {
			return
		}
		if ok && e.seq == s.seq {
			delete(w.entries, s.key)
		}
		w.head = (w.head + 1) % w.max
		w.n--
	}
}

// put stores a fresh entry for k in a new ring slot. w.mu held.
func (w *idWindow) put(k idKey, e idEntry, now time.Time) {
	w.expire(now)
	w.seq++
	e.first, e.seq = now.UnixNano(), w.seq
	w.entries[k] = e
	w.ring[(w.head+w.n)%w.max] = ringSlot{key: k, seq: w.seq}
	w.n++
}

// lookup is what became of id within the window. w.mu held.
func (w *idWindow) lookup(k idKey, now time.Time) (idEntry, bool) {
	if w.max == 0 {
		return idEntry{}, false
	}
	e, ok := w.entries[k]
	return e, ok && w.young(e, now)
}

// add counts one more sighting of id and returns how many there were within
// the window, this one included.
func (w *idWindow) add(id string, now time.Time) int {
	if w.max == 0 {
		return 1
	}
	k := w.key(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	if e, ok := w.lookup(k, now); ok {
		e.count++
		w.entries[k] = e
		return int(e.count)
	}
	w.put(k, idEntry{count: 1}, now)
	return 1
}

// remember marks id (refresh: its time starts again, so a replayed dead
// letter that is now published is remembered a whole window).
func (w *idWindow) remember(id string, m mark, now time.Time) {
	if w.max == 0 {
		return
	}
	w.mu.Lock()
	w.rememberLocked(w.key(id), m, now)
	w.mu.Unlock()
}

func (w *idWindow) rememberLocked(k idKey, m mark, now time.Time) {
	if w.max == 0 {
		return
	}
	e, _ := w.lookup(k, now)
	e.mark = m
	w.put(k, e, now)
}

// markOf is what became of id within the window.
func (w *idWindow) markOf(id string, now time.Time) mark {
	if w.max == 0 {
		return markNone
	}
	k := w.key(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	e, _ := w.lookup(k, now)
	return e.mark
}

// claim says what a request should do with id: done (it was published or
// dropped, or dead-lettered and this is no replay: answer it as a
// duplicate), wait for f (another request has it in flight), or own f (go
// on, then land f). replay: the request replays a dead letter, which may
// publish an id that was dead-lettered.
func (w *idWindow) claim(id string, now time.Time, replay bool) (done bool, f *flight, own bool) {
	k := w.key(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	if e, ok := w.lookup(k, now); ok && (e.mark == markDone || e.mark == markDeadLettered && !replay) {
		return true, nil, false
	}
	if f := w.flights[k]; f != nil {
		if f.done == nil {
			f.done = make(chan struct{})
		}
		return false, f, false
	}
	f = flightPool.Get().(*flight)
	w.flights[k] = f
	return false, f, true
}

// land ends the flight of o.EventID with o: remembered when it is done or
// dead-lettered, and handed to every request that waited for it.
func (w *idWindow) land(f *flight, o *Outcome, now time.Time) {
	k := w.key(o.EventID)
	w.mu.Lock()
	switch o.Status {
	case Published, Dropped:
		w.rememberLocked(k, markDone, now)
	case DeadLettered:
		w.rememberLocked(k, markDeadLettered, now)
	}
	if w.flights[k] == f {
		delete(w.flights, k)
	}
	done := f.done
	if done == nil {
		// No one waited, and no one can start once the flight is out of
		// the map: it can serve another id.
		w.mu.Unlock()
		flightPool.Put(f)
		return
	}
	// Waiters read out only after done is closed.
	f.out = *o
	f.out.Published, f.out.flight = nil, nil
	w.mu.Unlock()
	close(done)
}

// flightPool keeps the flights no one waited for: most ids are never
// resent while in flight, and a request then allocates no flight.
var flightPool = sync.Pool{New: func() any { return new(flight) }}

// wait is the outcome of the flight another request had for o.EventID: a
// duplicate when it made it, its failure when not.
func (f *flight) wait(ctx context.Context, o *Outcome) {
	select {
	case <-f.done:
	case <-ctx.Done():
		o.Status, o.Err = Failed, context.Cause(ctx)
		o.Class, o.Reason = Transient, ReasonShutdown
		return
	}
	if f.out.Status == Failed {
		o.Status, o.Err, o.Class, o.Reason, o.Attempts = Failed, f.out.Err, f.out.Class, f.out.Reason, f.out.Attempts
		return
	}
	o.Status = Duplicate
}

// forget removes id (a poison count once the event has been dealt with).
func (w *idWindow) forget(id string) {
	if w.max == 0 {
		return
	}
	k := w.key(id)
	w.mu.Lock()
	delete(w.entries, k)
	w.mu.Unlock()
}
