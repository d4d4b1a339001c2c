package gokautil

import "testing"

// TestOffsetTracker: the mark advances only over a completed prefix of the
// delivered offsets, whatever order messages complete in.
func TestOffsetTracker(t *testing.T) {
	tr := &offsetTracker{done: map[int64]bool{}}
	for _, off := range []int64{10, 11, 13, 14} { // 12 is a gap (e.g. a control record)
		tr.delivered(off)
	}
	steps := []struct {
		complete int64
		next     int64
		ok       bool
	}{
		{11, 0, false}, // 10 still running: no commit past it
		{14, 0, false},
		{10, 12, true}, // 10 and 11 done: next is 12
		{13, 15, true}, // 13 and 14 done
		{9, 0, false},  // never delivered here: ignored
	}
	for _, s := range steps {
		next, ok := tr.completed(s.complete)
		if next != s.next || ok != s.ok {
			t.Fatalf("completed(%d) = %d, %v; want %d, %v", s.complete, next, ok, s.next, s.ok)
		}
	}
	if len(tr.pending) != 0 || len(tr.done) != 0 {
		t.Fatalf("left over: pending %v, done %v", tr.pending, tr.done)
	}
}
