package ingest

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

func TestNewID(t *testing.T) {
	at := time.Date(2026, 5, 10, 12, 0, 0, 0, time.UTC)
	seen := map[string]bool{}
	prev := ""
	for i := range 1000 {
		id := newID(at.Add(time.Duration(i) * time.Microsecond))
		if !uuidV7.MatchString(id) {
			t.Fatalf("%q is not a UUIDv7", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %s", id)
		}
		seen[id] = true
		if id[:18] < prev[:min(18, len(prev))] {
			t.Fatalf("ids do not sort by time: %s after %s", id, prev)
		}
		prev = id
	}
	u, err := uuid.Parse(prev)
	if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		t.Fatalf("uuid.Parse(%s): version %v variant %v err %v", prev, u.Version(), u.Variant(), err)
	}
	if sec, _ := u.Time().UnixTime(); sec != at.Unix() {
		t.Errorf("id time %d, want %d", sec, at.Unix())
	}
}
