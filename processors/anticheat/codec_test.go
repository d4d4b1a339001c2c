package anticheat

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/streamtools/streamtools/schemas"
)

func sampleRow() *Row {
	at := time.Date(2026, 3, 8, 6, 59, 59, 123456789, time.UTC)
	attrs := schemas.Attrs{InfluencerID: `in"flu/é`, Product: "p", EventType: "reg", Campaign: "spring", EventID: "tx", Country: "FR"}
	legacy, _ := json.Marshal(&schemas.Event{V: 1, ID: "pb-0", ReceivedAt: at, CustomerCode: "acme", Day: "2026-03-08", Attrs: attrs, Seq: 5})
	return &Row{V: RowVersion, Influencer: &Influencer{LastEnqueued: 9, LastApplied: -1, Pending: []Pending{
		{Seq: 5, Event: legacy, ID: "pb-0", Customer: "acme", Product: "p", EventType: "reg", Day: "2026-03-08", At: at,
			Verdict: schemas.VerdictCounted, Released: true},
		{Seq: 7, Attrs: attrs, SeqPartition: 3, ID: "pb-1", Customer: "acme", Product: "p", EventType: "reg", Day: "2026-03-08", EventID: "tx",
			At: at, Visitor: "v", Want: 3, Got: 1, Dup: 1, EnqueuedAt: at.Add(time.Second)},
		{Seq: 9, Attrs: attrs, Product: "other", EventType: "reg", EventID: "tx", Verdict: schemas.VerdictDuplicate, Reason: schemas.ReasonDuplicateVisitor, Released: true, ReleasedBy: 8, At: at},
	}}}
}

// equalRows compares rows without their entries' cached encodings.
func equalRows(a, b any) bool {
	strip := func(v any) any {
		r, ok := v.(*Row)
		if !ok || r == nil || r.Influencer == nil {
			return v
		}
		cp, inf := *r, *r.Influencer
		inf.Pending = append([]Pending(nil), inf.Pending...)
		for i := range inf.Pending {
			inf.Pending[i].enc = nil
		}
		cp.Influencer = &inf
		return &cp
	}
	return reflect.DeepEqual(strip(a), strip(b))
}

// TestRowCodecRoundTrip: binary rows decode to what was encoded, and rows
// of earlier versions (JSON) still decode.
func TestRowCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	for _, r := range []*Row{
		sampleRow(),
		{V: RowVersion, Influencer: &Influencer{LastEnqueued: -1, LastApplied: -1}},
		{V: RowVersion, EventID: &Claim{Owner: "o", ClaimedAt: at}},
		{V: RowVersion, Visitor: &Claim{Owner: "o", Day: "2026-01-02", ClaimedAt: at}},
	} {
		b, err := RowCodec.Encode(r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := RowCodec.Decode(b)
		if err != nil {
			t.Fatal(err)
		}
		if !equalRows(got, r) {
			t.Errorf("binary round trip:\n got %+v\nwant %+v", got, r)
		}
		j, _ := json.Marshal(r)
		if r.Influencer != nil && len(r.Influencer.Pending) > 2 {
			r.Influencer.Pending[2].ReleasedBy = 0 // binary only
		}
		got, err = RowCodec.Decode(j)
		if err != nil {
			t.Fatal(err)
		}
		if !equalRows(got, r) {
			t.Errorf("JSON row:\n got %+v\nwant %+v", got, r)
		}
		for i := range b {
			if _, err := RowCodec.Decode(b[:i]); err == nil && i > 0 {
				t.Errorf("truncated to %d bytes: no error", i)
			}
		}
		// Encoding again reuses the entries' encodings, changed or not.
		if r.Influencer != nil && len(r.Influencer.Pending) > 1 {
			again, _ := RowCodec.Encode(r)
			if !bytes.Equal(again, appendRow(nil, stripped(r))) {
				t.Error("encoding again gave other bytes than a fresh encoding")
			}
			r.Influencer.Pending[1].Got |= claimVisitor
			r.Influencer.Pending[1].decide()
			changed, _ := RowCodec.Encode(r)
			fresh := appendRow(nil, stripped(r))
			if !bytes.Equal(changed, fresh) {
				t.Error("a changed entry kept its old encoding")
			}
			dec, _ := RowCodec.Decode(changed)
			reenc, _ := RowCodec.Encode(dec)
			if !bytes.Equal(reenc, changed) {
				t.Error("a decoded row encodes to other bytes")
			}
		}
	}
}

func stripped(r *Row) *Row {
	cp, inf := *r, *r.Influencer
	inf.Pending = append([]Pending(nil), inf.Pending...)
	for i := range inf.Pending {
		inf.Pending[i].enc = nil
	}
	cp.Influencer = &inf
	return &cp
}

func TestLoopCodecRoundTrip(t *testing.T) {
	m := &loopMsg{V: RowVersion, Kind: kindRelease, Claim: claimVisitor, Origin: "a/b/c", Seq: 42, PostbackID: "id",
		Day: "2026-01-02", ReceivedAt: time.Unix(0, 1767322800123456789).UTC(), Duplicate: true, Event: []byte(`{"v":1}`),
		Verdict: "counted", Reason: "r", CampaignKey: "ck", DayKey: "dk"}
	b, err := loopCodec{}.Encode(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeLoop(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("binary: %v\n got %+v\nwant %+v", err, got, m)
	}
	j, _ := json.Marshal(m)
	m.CampaignKey, m.DayKey, m.legacy = "", "", true // binary only
	if got, err = decodeLoop(j); err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("JSON: %v\n got %+v\nwant %+v", err, got, m)
	}
}

// TestEncodeEvent: an entry encodes the same event as a row of an earlier
// version, which kept the event encoded.
func TestEncodeEvent(t *testing.T) {
	at := time.Date(2026, 3, 8, 6, 59, 59, 0, time.UTC)
	ev := schemas.Event{V: schemas.EventVersion, ID: "pb-1", ReceivedAt: at, CustomerCode: "acme", Day: "2026-03-08",
		Attrs: schemas.Attrs{InfluencerID: "i", Product: "p", EventType: "reg", Campaign: "c"}, SeqPartition: 2, Seq: 7}
	old, _ := json.Marshal(&ev)
	ev.Verdict, ev.Reason = schemas.VerdictDuplicate, schemas.ReasonDuplicateEventID
	want, _ := json.Marshal(&ev)
	for _, p := range []Pending{
		{Seq: 7, Event: old, Verdict: ev.Verdict, Reason: ev.Reason},
		{Seq: 7, Attrs: ev.Attrs, SeqPartition: 2, ID: "pb-1", Customer: "acme", Day: "2026-03-08", At: at, Verdict: ev.Verdict, Reason: ev.Reason},
	} {
		got, err := p.encodeEvent()
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%v\n got %s\nwant %s", err, got, want)
		}
	}
}

// TestRowCache: a cached row is what decoding its bytes gives, even when
// the encoded row changes after encoding, and is handed out only once.
func TestRowCache(t *testing.T) {
	c := rowCodec{cache: newRowCache()}
	r := sampleRow()
	b, err := c.Encode(r)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := decodeRow(b)
	r.Influencer.Pending[1].Got = 7 // a change after ctx.SetValue
	r.Influencer.Pending = r.Influencer.Pending[1:]
	for i := range 2 { // a hit, then a plain decode
		got, err := c.Decode(b)
		if err != nil || !equalRows(got, want) {
			t.Fatalf("decode %d: %v\n got %+v\nwant %+v", i, err, got, want)
		}
		got.(*Row).Influencer.Pending[0].Seq = 99 // the callback owns it
	}
	if len(c.cache.rows) != 0 || c.cache.bytes != 0 {
		t.Fatalf("cache not emptied: %d rows, %d bytes", len(c.cache.rows), c.cache.bytes)
	}
}
