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
