package stats

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/streamtools/streamtools/schemas"
)

// FuzzRowCodec: the row cache is invisible. A stored row (any bytes: the
// table is restored from its changelog) decodes through rowCodec as
// through schemas.StatsCodec; after a callback applies an event and the
// row is stored, decoding the stored bytes gives what StatsCodec gives;
// and a callback that changes the row it was handed changes nothing that
// a later decode of the same bytes returns.
//
// For a row or event type holding invalid UTF-8 the cached row keeps the
// bytes that the encoding replaces with U+FFFD, so only the last property
// is checked.
func FuzzRowCodec(f *testing.F) {
	at := time.Date(2026, 3, 1, 23, 59, 59, 999000000, time.UTC)
	row := schemas.Stats{V: schemas.StatsVersion, CustomerCode: "default", Product: "product", InfluencerID: "influ_test", Campaign: "Jan2024_special_event", Day: "2026-03-01",
		ByType: map[string]schemas.Counts{
			"reg":      {Counted: 12, Duplicates: map[string]int64{schemas.ReasonDuplicateVisitor: 3, schemas.ReasonDuplicateEventID: 1}},
			"purchase": {Counted: 2},
		},
		Total: 14, Applied: schemas.Watermarks{{Lane: 'r', Partition: 0, Offset: 99}, {Lane: 'r', Partition: 3, Offset: 1234}}, UpdatedAt: at}
	b, err := json.Marshal(row)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(b, "reg", true, int64(1235))
	f.Add(b, "purchase", false, int64(7))
	f.Add([]byte(`{"v":2,"customer_code":"c","product":"p","influencer_id":"i","campaign":"","day":"2026-03-01","by_type":{},"total":0,"applied":{},"updated_at":"2026-03-01T10:00:00+01:00"}`), "event", true, int64(0))
	f.Add([]byte(`{"by_type":{"reg":{"counted":9223372036854775807,"duplicates":{}}},"applied":null}`), "reg", true, int64(1))
	f.Add([]byte(`{}`), "é🎮", false, int64(9223372036854775807))
	f.Add([]byte(`not json`), "reg", true, int64(1))
	f.Fuzz(func(t *testing.T, data []byte, eventType string, counted bool, off int64) {
		c := newRowCodec()
		plain, errPlain := schemas.StatsCodec.Decode(data)
		got, err := c.Decode(data)
		if (err == nil) != (errPlain == nil) {
			t.Fatalf("%q: rowCodec error %v, StatsCodec error %v", data, err, errPlain)
		}
		if err != nil {
			return
		}
		if e1, e2 := fuzzEncode(t, got), fuzzEncode(t, plain); !bytes.Equal(e1, e2) {
			t.Fatalf("%q: rowCodec decodes to %s, StatsCodec to %s", data, e1, e2)
		}

		// A callback applies an event to the row it was handed and stores
		// it; the reference does the same to its own copy.
		if off < 0 {
			off = ^off // src offsets are never negative
		}
		ev := &schemas.Event{V: schemas.EventVersion, ID: "x", ReceivedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), Day: "2026-03-01",
			Attrs: schemas.Attrs{EventType: eventType}, Verdict: schemas.VerdictCounted, Src: schemas.Position{Lane: 'r', Partition: 0, Offset: off}}
		if !counted {
			ev.Verdict, ev.Reason = schemas.VerdictDuplicate, schemas.ReasonDuplicateVisitor
		}
		r1 := got.(*schemas.Stats)
		Apply(r1, ev)
		stored, err := c.Encode(r1)
		if err != nil {
			t.Fatalf("%q: the row does not encode after an event: %v", data, err)
		}
		ref := plain.(*schemas.Stats)
		Apply(ref, ev)
		if want := fuzzEncode(t, ref); !bytes.Equal(stored, want) {
			t.Fatalf("%q: rowCodec stored %s, StatsCodec %s", data, stored, want)
		}

		fresh, err := schemas.StatsCodec.Decode(stored)
		if err != nil {
			t.Fatalf("the stored row %q does not decode: %v", stored, err)
		}
		want := fuzzEncode(t, fresh)
		r2, err := c.Decode(stored)
		if err != nil {
			t.Fatalf("the stored row %q does not decode through the cache: %v", stored, err)
		}
		if utf8.Valid(data) && utf8.ValidString(eventType) {
			if e := fuzzEncode(t, r2); !bytes.Equal(e, want) {
				t.Fatalf("%q: the stored row decodes through the cache to %s, without it to %s", stored, e, want)
			}
		}

		// The next callback changes its row; a later decode of the same
		// bytes must not see that.
		Apply(r2.(*schemas.Stats), &schemas.Event{Attrs: schemas.Attrs{EventType: "other"}, Verdict: schemas.VerdictCounted, Src: schemas.Position{Lane: 'q', Partition: 1, Offset: 1}})
		r3, err := c.Decode(stored)
		if err != nil {
			t.Fatalf("the stored row %q does not decode the second time: %v", stored, err)
		}
		if r3 == r2 {
			t.Fatalf("%q: two decodes handed over the same row", stored)
		}
		if e := fuzzEncode(t, r3); !bytes.Equal(e, want) {
			t.Fatalf("%q decodes to %s after a callback changed the row of an earlier decode, want %s", stored, e, want)
		}
	})
}

func fuzzEncode(t *testing.T, v any) []byte {
	t.Helper()
	b, err := schemas.StatsCodec.Encode(v)
	if err != nil {
		t.Fatalf("encoding %+v: %v", v, err)
	}
	return b
}
