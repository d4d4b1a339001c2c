package widgetd

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
	"time"
)

// The running sums always equal the sums recomputed from the rows held,
// whatever the order of updates, replacements and tombstones; empty
// aggregates are dropped.
func TestAggregatesMatchRecomputedSums(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	a := newAggregates()
	type key struct{ infl, campaign, day string }
	truth := map[key]dayRow{}
	base := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	types := []string{"reg", "dl", "click"}
	for step := range 5000 {
		k := key{fmt.Sprintf("c/p/i%d", rng.IntN(3)), fmt.Sprintf("camp%d", rng.IntN(3)), fmt.Sprintf("2024-01-0%d", 1+rng.IntN(3))}
		u := dayUpdate{infl: k.infl, campaign: k.campaign, day: k.day}
		if rng.IntN(4) == 0 {
			u.deleted = true
			delete(truth, k)
		} else {
			counted := map[string]int64{}
			for _, et := range types {
				counted[et] = int64(rng.IntN(4)) // 0 leaves the type out
			}
			// updated_at usually grows, sometimes goes back (a replay).
			u.row = newDayRow(counted, base.Add(time.Duration(rng.IntN(100))*time.Minute))
			truth[k] = u.row
		}
		a.apply(u)

		want := map[aggID]*totals{}
		for k, r := range truth {
			for _, id := range []aggID{{infl: k.infl}, {infl: k.infl, campaign: k.campaign, hasCampaign: true}} {
				w := want[id]
				if w == nil {
					w = &totals{counts: map[string]int64{}}
					want[id] = w
				}
				for _, c := range r.counts {
					w.counts[c.et] += c.n
				}
				if r.updated.After(w.updated) {
					w.updated = r.updated
				}
			}
		}
		if a.rows != len(truth) {
			t.Fatalf("step %d: %d rows held; want %d", step, a.rows, len(truth))
		}
		for i := range 3 {
			infl := fmt.Sprintf("c/p/i%d", i)
			ids := []aggID{{infl: infl}}
			for c := range 3 {
				ids = append(ids, aggID{infl: infl, campaign: fmt.Sprintf("camp%d", c), hasCampaign: true})
			}
			for _, id := range ids {
				got, w := a.totals(id), want[id]
				if (got == nil) != (w == nil) {
					t.Fatalf("step %d: %+v: totals %v; want %v", step, id, got, w)
				}
				if got != nil && (!maps.Equal(got.counts, w.counts) || !got.updated.Equal(w.updated)) {
					t.Fatalf("step %d: %+v: counts %v updated %v; want %v %v", step, id, got.counts, got.updated, w.counts, w.updated)
				}
			}
		}
	}
}

// A day row keeps only its counted event types.
func TestNewDayRow(t *testing.T) {
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	r := newDayRow(map[string]int64{"reg": 2, "dl": 0, "click": 1}, at)
	if len(r.counts) != 2 || r.counts[0] != (typeCount{"click", 1}) || r.counts[1] != (typeCount{"reg", 2}) || !r.updated.Equal(at) {
		t.Fatalf("newDayRow = %+v", r)
	}
	if r := newDayRow(map[string]int64{"reg": 0}, at); r.counts != nil {
		t.Fatalf("a row without counted events keeps %v", r.counts)
	}
}
