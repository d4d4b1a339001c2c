package widgetd

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/schemas"
)

// FuzzTailDecode feeds the stats changelog decoder a sequence of records
// (one per line of data: key, tab, value; a line without a tab is a
// tombstone of that key) and applies what it accepts to the aggregates.
//
// Each record: a refused record counts as a bad record; an accepted one
// names the row of its key (the canonical form of the key decodes to the
// same update), and keeps exactly the row's positive counted events, one
// per type, sorted. The sequence: the running sums equal the sums
// recomputed from the rows held (while those fit in an int64).
func FuzzTailDecode(f *testing.F) {
	at := time.Date(2024, 1, 15, 12, 0, 0, 0, time.UTC)
	row := func(key string, st schemas.Stats) string {
		b, err := json.Marshal(st)
		if err != nil {
			f.Fatal(err)
		}
		return key + "\t" + string(b)
	}
	k1 := schemas.DayKey("default", "product", "influ_test", "Jan2024_special_event", "2024-01-15")
	k2 := schemas.DayKey("default", "product", "influ_test", "", "2024-01-16")
	k3 := schemas.DayKey("café", "p/roduct", "in flu", "100%", "2024-01-15")
	st := schemas.Stats{V: schemas.StatsVersion, CustomerCode: "default", Product: "product", InfluencerID: "influ_test", Campaign: "Jan2024_special_event", Day: "2024-01-15",
		ByType: map[string]schemas.Counts{"reg": {Counted: 3, Duplicates: map[string]int64{schemas.ReasonDuplicateVisitor: 1}}, "dl": {Counted: 0}, "buy": {Counted: 2}},
		Total:  5, Applied: schemas.Watermarks{{Lane: 'q', Partition: 0, Offset: 9}}, UpdatedAt: at}
	st2 := st
	st2.ByType = map[string]schemas.Counts{"reg": {Counted: 1}}
	st2.UpdatedAt = at.Add(-time.Hour)
	for _, lines := range [][]string{
		{row(k1, st)},
		{row(k1, st), row(k2, st2), row(k1, st2), k1, row(k3, st)},
		{row(k2, st), k2, k2, row(k2, st2)},
		{k1 + "\t{\"v\":3}", "a/b\t{}", "%zz/b/c/d/e\t{}", row("default/product/influ_test/%2F/2024-01-15", st), "c/p/i//2024-01-15\tnull", "c/p/i//d\t[]"},
		{"c/p/i//2024-01-15\t{\"by_type\":{\"reg\":{\"counted\":9223372036854775807}},\"updated_at\":\"2024-01-15T00:00:00+14:00\"}", "c/p/i/x/2024-01-15\t{\"by_type\":{\"reg\":{\"counted\":-5}}}"},
	} {
		f.Add([]byte(strings.Join(lines, "\n")))
	}

	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		f.Fatal(err)
	}
	bad := &fuzzCounter{Counter: m.badRecords}
	m.badRecords = bad
	tl := &tailer{s: &Server{metrics: m, log: slog.New(slog.DiscardHandler)}, topic: "stats"}

	f.Fuzz(func(t *testing.T, data []byte) {
		type rowID struct{ infl, campaign, day string }
		a := newAggregates()
		held := map[rowID]dayRow{}
		for i, line := range bytes.Split(data, []byte("\n")) {
			if i == 32 {
				break
			}
			rec := &kgo.Record{Topic: "stats", Key: line}
			if k, v, ok := bytes.Cut(line, []byte("\t")); ok {
				rec.Key, rec.Value = k, v
			}
			before := bad.n
			u, ok := tl.decode(rec)
			if bad.n != before+fuzzBoolInt(!ok) {
				t.Fatalf("record %q/%q: accepted %v, but %d bad records counted", rec.Key, rec.Value, ok, bad.n-before)
			}
			if !ok {
				continue
			}
			fuzzCheckDayUpdate(t, tl, rec, u)
			a.apply(u)
			id := rowID{u.infl, u.campaign, u.day}
			if u.deleted {
				delete(held, id)
			} else {
				held[id] = u.row
			}
		}

		if a.rows != len(held) {
			t.Fatalf("%d rows held; want %d", a.rows, len(held))
		}
		want := map[aggID]*totals{}
		for id, r := range held {
			for _, agg := range []aggID{{infl: id.infl}, {infl: id.infl, campaign: id.campaign, hasCampaign: true}} {
				w := want[agg]
				if w == nil {
					w = &totals{counts: map[string]int64{}}
					want[agg] = w
				}
				for _, c := range r.counts {
					if w.counts[c.et] > math.MaxInt64-c.n {
						return // counts past int64 are out of scope
					}
					w.counts[c.et] += c.n
				}
				if r.updated.After(w.updated) {
					w.updated = r.updated
				}
			}
		}
		for agg, w := range want {
			got := a.totals(agg)
			if got == nil || !maps.Equal(got.counts, w.counts) && !(len(got.counts) == 0 && len(w.counts) == 0) || !got.updated.Equal(w.updated) {
				t.Fatalf("%+v: running totals %+v; recomputed %+v", agg, got, w)
			}
		}
		for infl, i := range a.infl {
			if want[aggID{infl: infl}] == nil {
				t.Fatalf("totals of %q kept without a row: %+v", infl, i.totals)
			}
		}
	})
}

// fuzzCheckDayUpdate checks one accepted record against its key and value.
func fuzzCheckDayUpdate(t *testing.T, tl *tailer, rec *kgo.Record, u dayUpdate) {
	t.Helper()
	parts, err := schemas.SplitKey(string(rec.Key))
	if err != nil || len(parts) != 5 {
		t.Fatalf("accepted the key %q: %q, %v", rec.Key, parts, err)
	}
	if u.infl != schemas.InfluencerKey(parts[0], parts[1], parts[2]) || u.campaign != parts[3] || u.day != parts[4] {
		t.Fatalf("key %q (%q) decodes to %+v", rec.Key, parts, u)
	}
	if u.deleted != (rec.Value == nil) {
		t.Fatalf("record %q/%q: deleted %v", rec.Key, rec.Value, u.deleted)
	}
	canon := schemas.DayKey(parts[0], parts[1], parts[2], parts[3], parts[4])
	if c, ok := tl.decode(&kgo.Record{Key: []byte(canon), Value: rec.Value}); !ok || c.infl != u.infl || c.campaign != u.campaign || c.day != u.day ||
		c.deleted != u.deleted || !slices.Equal(c.row.counts, u.row.counts) || !c.row.updated.Equal(u.row.updated) {
		t.Fatalf("key %q decodes to %+v, its canonical form %q to %+v, %v", rec.Key, u, canon, c, ok)
	}
	if u.deleted {
		return
	}
	v, err := schemas.StatsCodec.Decode(rec.Value)
	if err != nil {
		t.Fatalf("accepted the row %q: %v", rec.Value, err)
	}
	st := v.(*schemas.Stats)
	if st.V > schemas.StatsVersion {
		t.Fatalf("accepted a row of version %d", st.V)
	}
	want := map[string]int64{}
	for et, c := range st.ByType {
		if c.Counted > 0 {
			want[et] = c.Counted
		}
	}
	got := map[string]int64{}
	for i, c := range u.row.counts {
		if c.n <= 0 || (i > 0 && u.row.counts[i-1].et >= c.et) {
			t.Fatalf("row %q keeps %+v: not positive counts sorted by type", rec.Value, u.row.counts)
		}
		got[c.et] = c.n
	}
	if !maps.Equal(got, want) || !u.row.updated.Equal(st.UpdatedAt) {
		t.Fatalf("row %q keeps %+v at %v; want %v at %v", rec.Value, u.row.counts, u.row.updated, want, st.UpdatedAt)
	}
}

func fuzzBoolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// fuzzCounter counts the bad records the tailer reports.
type fuzzCounter struct {
	prometheus.Counter
	n int
}

func (c *fuzzCounter) Inc() { c.n++; c.Counter.Inc() }
