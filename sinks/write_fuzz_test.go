package sinks

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/schemas"
)

// Fuzz targets of the sink's record decoding. The sink writes what it
// accepts and retries a failed write forever, so a record that it accepts
// but PostgreSQL refuses would stop it for good: whatever the decoder
// accepts must satisfy what the tables enforce (text is valid UTF-8
// without NUL, verdict and reason are among the CHECKed values, days are
// dates); everything else must be refused with a reason (the dead-letter
// topic).

const (
	fuzzEvents = "events"
	fuzzStats  = "stats"
)

func fuzzDecoder() *decoder { return &decoder{eventsTopic: fuzzEvents, statsTopic: fuzzStats} }

// FuzzSinkEvent decodes one record of the events topic (and the same
// record again: the last write wins and the row is kept once).
func FuzzSinkEvent(f *testing.F) {
	at := time.Date(2026, 3, 1, 12, 30, 15, 123456789, time.UTC)
	ev := schemas.Event{V: schemas.EventVersion, ID: "0190e2a1-7c4b-7d2e-9f00-000000000000", ReceivedAt: at, CustomerCode: "default", Day: "2026-03-01",
		Attrs: schemas.Attrs{InfluencerID: "influ_test", Product: "product", EventType: "reg", EventName: "registration", Campaign: "Jan2024_special_event",
			Medium: "Influencer", Source: "twitch", Country: "FR", EventID: "tx-1"},
		Verdict: schemas.VerdictDuplicate, Reason: schemas.ReasonDuplicateVisitor, SeqPartition: 2, Seq: 41,
		Src: schemas.Position{Lane: 'r', Partition: 2, Offset: 41}}
	b, err := json.Marshal(ev)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, false)
	ev.Attrs = schemas.Attrs{InfluencerID: "in flu/é🎮", Product: "p"}
	ev.Verdict, ev.Reason, ev.Day, ev.ReceivedAt = schemas.VerdictCounted, "", "2026-02-28", at.In(time.FixedZone("", -5*3600))
	if b, err = json.Marshal(ev); err != nil {
		f.Fatal(err)
	}
	f.Add(b, false)
	for _, s := range []string{
		`{"v":2,"id":"x"}`, `{"v":1,"id":"x","customer_code":"c","product":"p","influencer_id":"i","day":"2026-13-01","received_at":"2026-03-01T00:00:00Z","verdict":"counted"}`,
		`{"v":1,"id":"x","customer_code":"c","product":"p","influencer_id":"i\u0000","day":"2026-03-01","received_at":"2026-03-01T00:00:00Z","verdict":"counted"}`,
		`{"v":1,"id":"x","customer_code":"c","product":"p","influencer_id":"i","day":"2026-03-01","received_at":"2026-03-01T00:00:00Z","verdict":"lost"}`,
		`{"v":1,"id":"x","customer_code":"c","product":"p","influencer_id":"i","day":"2026-03-01","received_at":"0001-01-01T00:00:00Z","verdict":"counted"}`,
		`null`, `[]`, ``,
	} {
		f.Add([]byte(s), false)
	}
	f.Add([]byte(nil), true)
	f.Fuzz(func(t *testing.T, value []byte, tombstone bool) {
		if tombstone {
			value = nil
		} else if value == nil {
			value = []byte{}
		}
		d, b := fuzzDecoder(), newBatch()
		rec := &kgo.Record{Topic: fuzzEvents, Partition: 1, Offset: 7, Value: value}
		reason := d.add(b, rec)
		if b.sum.Records != 1 || b.next[topicPartition{fuzzEvents, 1}] != 8 {
			t.Fatalf("record %q: not counted as read: %+v, next %v", value, b.sum, b.next)
		}
		if reason != "" {
			if len(b.eventRows) != 0 {
				t.Fatalf("record %q refused (%s) but kept", value, reason)
			}
			return
		}
		if len(b.eventRows) == 0 {
			if b.sum.Filtered != 1 {
				t.Fatalf("record %q: neither refused nor kept nor filtered: %+v", value, b.sum)
			}
			return
		}
		if len(b.eventRows) != 1 || len(b.eventDays) != 1 || len(b.events) != 1 {
			t.Fatalf("record %q: %d rows", value, len(b.eventRows))
		}
		e, day := b.eventRows[0], b.eventDays[0]
		for _, s := range []string{e.ID, e.EventID, e.CustomerCode, e.Product, e.InfluencerID, e.EventType, e.EventName, e.Campaign, e.Medium, e.Source, e.Country, e.Verdict, e.Reason} {
			fuzzCheckText(t, value, s)
		}
		if e.ID == "" || e.CustomerCode == "" || e.Product == "" || e.InfluencerID == "" || e.EventType == "" || e.ReceivedAt.IsZero() || e.V > schemas.EventVersion {
			t.Fatalf("record %q accepted as %+v", value, e)
		}
		if e.Verdict != schemas.VerdictCounted && e.Verdict != schemas.VerdictDuplicate {
			t.Fatalf("record %q accepted with verdict %q", value, e.Verdict)
		}
		if e.Reason != "" && e.Reason != schemas.ReasonDuplicateVisitor && e.Reason != schemas.ReasonDuplicateEventID {
			t.Fatalf("record %q accepted with reason %q", value, e.Reason)
		}
		if want, err := time.Parse(schemas.DayLayout, e.Day); err != nil || !want.Equal(day) || day.Format(schemas.DayLayout) != e.Day {
			t.Fatalf("record %q: day %q kept as %v (%v)", value, e.Day, day, err)
		}
		if y := e.ReceivedAt.Year(); y < -4712 || y > 294275 {
			t.Fatalf("record %q: received_at %v is outside timestamptz", value, e.ReceivedAt)
		}

		// The same record again: one row, the later copy.
		if reason := d.add(b, &kgo.Record{Topic: fuzzEvents, Partition: 1, Offset: 8, Value: value}); reason != "" || len(b.eventRows) != 1 || b.sum.Events.Unchanged != 1 {
			t.Fatalf("record %q read twice: %q, %d rows, %+v", value, reason, len(b.eventRows), b.sum)
		}
	})
}

// FuzzSinkStats decodes one record of the stats table's changelog: its key
// names the row, a nil value deletes it.
func FuzzSinkStats(f *testing.F) {
	at := time.Date(2026, 3, 1, 23, 59, 59, 999000000, time.UTC)
	st := schemas.Stats{V: schemas.StatsVersion, CustomerCode: "default", Product: "product", InfluencerID: "influ_test", Campaign: "Jan2024_special_event", Day: "2026-03-01",
		ByType: map[string]schemas.Counts{
			"reg":      {Counted: 12, Duplicates: map[string]int64{schemas.ReasonDuplicateVisitor: 3, schemas.ReasonDuplicateEventID: 1}},
			"purchase": {Counted: 2},
		},
		Total: 14, Applied: schemas.Watermarks{{Lane: 'r', Partition: 3, Offset: 1234}}, UpdatedAt: at}
	b, err := json.Marshal(st)
	if err != nil {
		f.Fatal(err)
	}
	key := schemas.DayKey(st.CustomerCode, st.Product, st.InfluencerID, st.Campaign, st.Day)
	f.Add(key, b, false)
	f.Add(key, []byte(nil), true)
	f.Add(schemas.DayKey("café", "p/roduct", "in flu", "", "2026-02-28"), []byte(`{"v":2,"by_type":{},"updated_at":"2026-02-28T10:00:00+01:00"}`), false)
	f.Add(schemas.DayKey("c", "p", "i", "", "2026-02-30"), b, false)
	f.Add("c/p/i/2026-03-01", b, false)
	f.Add("c/p/i/%00/2026-03-01", b, false)
	f.Add("c/p/i/%zz/2026-03-01", b, false)
	f.Add(key, []byte(`{"v":3}`), false)
	f.Add(key, []byte(`{"by_type":{"a\u0000":{"counted":1}}}`), false)
	f.Fuzz(func(t *testing.T, key string, value []byte, tombstone bool) {
		if tombstone {
			value = nil
		} else if value == nil {
			value = []byte{}
		}
		d, b := fuzzDecoder(), newBatch()
		reason := d.add(b, &kgo.Record{Topic: fuzzStats, Key: []byte(key), Value: value})
		if reason != "" {
			if len(b.stats) != 0 || len(b.statsOrder) != 0 {
				t.Fatalf("record %q/%q refused (%s) but kept", key, value, reason)
			}
			return
		}
		if len(b.stats) != 1 || len(b.statsOrder) != 1 {
			t.Fatalf("record %q/%q: %d rows", key, value, len(b.stats))
		}
		k := b.statsOrder[0]
		s, ok := b.stats[k]
		if !ok || (s == nil) != (value == nil) {
			t.Fatalf("record %q/%q: row %+v (present %v)", key, value, s, ok)
		}
		for _, p := range []string{k.customer, k.product, k.influencer, k.campaign} {
			fuzzCheckText(t, []byte(key), p)
		}
		parts, err := schemas.SplitKey(key)
		if err != nil || len(parts) != 5 || parts[0] != k.customer || parts[1] != k.product || parts[2] != k.influencer || parts[3] != k.campaign ||
			k.day.Format(schemas.DayLayout) != parts[4] {
			t.Fatalf("key %q (%q, %v) kept as %+v", key, parts, err, k)
		}
		canon := schemas.DayKey(parts[0], parts[1], parts[2], parts[3], parts[4])
		b2 := newBatch()
		if reason := d.add(b2, &kgo.Record{Topic: fuzzStats, Key: []byte(canon), Value: value}); reason != "" || len(b2.statsOrder) != 1 || b2.statsOrder[0] != k {
			t.Fatalf("key %q is kept as %+v, its canonical form %q as %+v (%q)", key, k, canon, b2.statsOrder, reason)
		}
		if s == nil {
			return
		}
		if s.V > schemas.StatsVersion {
			t.Fatalf("record %q/%q accepted with version %d", key, value, s.V)
		}
		for et := range s.ByType {
			fuzzCheckText(t, value, et)
		}
		if y := s.UpdatedAt.Year(); y < -4712 || y > 294275 {
			t.Fatalf("record %q: updated_at %v is outside timestamptz", value, s.UpdatedAt)
		}
	})
}

// fuzzCheckText fails unless PostgreSQL text can hold s.
func fuzzCheckText(t *testing.T, rec []byte, s string) {
	t.Helper()
	if !utf8.ValidString(s) {
		t.Fatalf("record %q accepted with %q, not valid UTF-8: PostgreSQL refuses the write and the sink retries it forever", rec, s)
	}
	if strings.IndexByte(s, 0) >= 0 {
		t.Fatalf("record %q accepted with %q, which holds a NUL byte", rec, s)
	}
}
