package adapter

import (
	"hash/maphash"
	"sync"
	"time"
)

// idWindow remembers event ids for a while: at most max of them, none older
// than age. It keeps a 128-bit hash of each id, never the id, so its memory
// is fixed per entry (about 90 bytes: the map slot, the hash and the ring
// slot; TestIDWindowMemory measures it) whatever the ids look like; two ids colliding in 128 bits is not a
// practical concern. The zero value remembers nothing.
type idWindow struct {
	age time.Duration
	max int

	mu      sync.Mutex
	seed    [2]maphash.Seed
	entries map[idKey]idEntry
	ring    []idKey // insertion order, oldest at head
	head    int
	n       int
}

type idKey [2]uint64

type idEntry struct {
	first time.Time
	count int
}

func newIDWindow(age time.Duration, max int) *idWindow {
	w := &idWindow{age: age, max: max}
	if age <= 0 || max <= 0 {
		w.max = 0
		return w
	}
	w.seed = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}
	w.entries = make(map[idKey]idEntry, min(max, 1024))
	w.ring = make([]idKey, max)
	return w
}

func (w *idWindow) key(id string) idKey {
	return idKey{maphash.String(w.seed[0], id), maphash.String(w.seed[1], id)}
}

// expire drops entries past their age, and the oldest when full. w.mu held.
func (w *idWindow) expire(now time.Time) {
	for w.n > 0 {
		k := w.ring[w.head]
		e, ok := w.entries[k]
		if ok && w.n < w.max && now.Sub(e.first) < w.age {
			return
		}
		delete(w.entries, k)
		w.head = (w.head + 1) % w.max
		w.n--
	}
}

// contains reports whether id was added within the window.
func (w *idWindow) contains(id string, now time.Time) bool {
	if w.max == 0 {
		return false
	}
	k := w.key(id)
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.entries[k]
	return ok && now.Sub(e.first) < w.age
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
	if e, ok := w.entries[k]; ok && now.Sub(e.first) < w.age {
		e.count++
		w.entries[k] = e
		return e.count
	}
	w.expire(now)
	// An id that expired but is still in the ring is re-added with a fresh
	// entry; its old ring slot then points at the new entry, which expire
	// treats by its own time.
	w.entries[k] = idEntry{first: now, count: 1}
	w.ring[(w.head+w.n)%w.max] = k
	w.n++
	return 1
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

// len is the number of ids held.
func (w *idWindow) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.entries)
}
