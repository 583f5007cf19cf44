package adapter

import (
	"strconv"
	"testing"
	"time"
)

func TestIDWindow(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	w := newIDWindow(time.Minute, 3)
	if w.contains("a", t0) {
		t.Fatal("empty window contains a")
	}
	if n := w.add("a", t0); n != 1 {
		t.Fatalf("first add counted %d", n)
	}
	if n := w.add("a", t0.Add(time.Second)); n != 2 || !w.contains("a", t0.Add(time.Second)) {
		t.Fatalf("second add counted %d", n)
	}
	if w.contains("a", t0.Add(time.Minute)) {
		t.Error("a still there after its age")
	}
	if n := w.add("a", t0.Add(time.Minute)); n != 1 {
		t.Errorf("an expired id counts from 1 again, got %d", n)
	}
	// Bounded by count: the oldest go first.
	for i := range 10 {
		w.add(strconv.Itoa(i), t0.Add(2*time.Minute))
	}
	if n := w.len(); n > 3 {
		t.Errorf("window holds %d ids, bound 3", n)
	}
	if w.contains("0", t0.Add(2*time.Minute)) || !w.contains("9", t0.Add(2*time.Minute)) {
		t.Error("count bound did not drop the oldest")
	}
	w.forget("9")
	if w.contains("9", t0.Add(2*time.Minute)) {
		t.Error("forget kept 9")
	}
	// Off: remembers nothing, counts every sighting as the first.
	off := newIDWindow(0, 0)
	off.add("a", t0)
	if off.contains("a", t0) || off.add("a", t0) != 1 {
		t.Error("a window of size 0 remembered")
	}
}

// TestIDWindowMemory states the memory the README gives for the default
// bound: about 90 bytes per id, whatever the ids look like.
func TestIDWindowMemory(t *testing.T) {
	const n = 100000
	var before, after runtimeMem
	before.read()
	w := newIDWindow(time.Hour, n)
	now := time.Now()
	for i := range n {
		w.add("1795554846.485564.8dd5067d1c62a18c414da9ef1f1dbde6.main-created-"+strconv.Itoa(i), now)
	}
	after.read()
	bytes := float64(after.heap-before.heap) / n
	t.Logf("%.0f bytes per id at %d ids", bytes, n)
	if bytes > 110 {
		t.Errorf("%.0f bytes per id, README says about 90", bytes)
	}
	if w.len() != n {
		t.Fatalf("holds %d", w.len())
	}
}

// TestIDWindowFlights: one request owns an id in flight; the others wait
// and answer as it did; what it landed decides what a later request does
// (a dead-lettered id is published again only by a replay).
func TestIDWindowFlights(t *testing.T) {
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	w := newIDWindow(time.Minute, 10)
	done, f, own := w.claim("a", t0, false)
	if done || !own {
		t.Fatalf("first claim: done %v own %v", done, own)
	}
	_, f2, own2 := w.claim("a", t0, false)
	if own2 || f2 != f {
		t.Fatal("second claim of an id in flight does not wait for the first")
	}
	w.land(f, &Outcome{EventID: "a", Status: DeadLettered}, t0)
	var o Outcome
	f2.wait(t.Context(), &o)
	if o.Status != Duplicate {
		t.Errorf("waiter got %v, want duplicate", o.Status)
	}
	if done, _, _ := w.claim("a", t0, false); !done {
		t.Error("a resend of a dead-lettered id is not a duplicate")
	}
	done, f, own = w.claim("a", t0.Add(30*time.Second), true)
	if done || !own {
		t.Fatal("a replay of a dead-lettered id is not processed")
	}
	w.land(f, &Outcome{EventID: "a", Status: Published}, t0.Add(30*time.Second))
	// Remembered a whole window from the publish, not from the dead letter.
	if done, _, _ := w.claim("a", t0.Add(80*time.Second), true); !done {
		t.Error("a published id is replayed again")
	}
	// A failure is handed to the waiters and not remembered.
	_, f, _ = w.claim("b", t0, false)
	_, f2, _ = w.claim("b", t0, false)
	w.land(f, &Outcome{EventID: "b", Status: Failed, Class: Transient, Reason: ReasonNATS}, t0)
	o = Outcome{}
	f2.wait(t.Context(), &o)
	if o.Status != Failed || o.Class != Transient {
		t.Errorf("waiter of a failed flight got %v %v", o.Status, o.Class)
	}
	if _, _, own := w.claim("b", t0, false); !own {
		t.Error("a failed id is remembered")
	}
	// Without a window, flights still hold.
	off := newIDWindow(0, 0)
	_, f, _ = off.claim("c", t0, false)
	if _, f2, own := off.claim("c", t0, false); own || f2 != f {
		t.Error("no single flight with the window off")
	}
}
