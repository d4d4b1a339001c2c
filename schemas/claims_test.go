package schemas

import (
	"encoding/json"
	"testing"
	"time"
)

// TestPostbackKey: the key of a postback is its first claim's, else its
// day row's, and AppendPostbackKey writes exactly PostbackKey.
func TestPostbackKey(t *testing.T) {
	base := Postback{V: 1, ID: "x", ReceivedAt: time.Now(), CustomerCode: "café", Day: "2026-03-01",
		Attrs: Attrs{InfluencerID: "in flu", Product: "p/roduct", Campaign: "100%"}}
	visitor, eventID, both, acOff := base, base, base, base
	visitor.AntiCheat, visitor.Visitor = true, "abc"
	eventID.EventID = "tx 1"
	both.AntiCheat, both.Visitor, both.EventID = true, "abc", "tx 1"
	acOff.Visitor = "abc" // anti-cheat off: the visitor claims nothing
	for _, c := range []struct {
		name string
		pb   Postback
		want string
	}{
		{"none", base, DayKey("café", "p/roduct", "in flu", "100%", "2026-03-01")},
		{"visitor", visitor, VisitorClaimKey("café", "p/roduct", DefaultEventType, "2026-03-01", "abc")},
		{"event id", eventID, EventIDClaimKey("café", "tx 1")},
		{"both: visitor first", both, VisitorClaimKey("café", "p/roduct", DefaultEventType, "2026-03-01", "abc")},
		{"anti-cheat off", acOff, DayKey("café", "p/roduct", "in flu", "100%", "2026-03-01")},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := PostbackKey(&c.pb); got != c.want {
				t.Fatalf("PostbackKey = %q, want %q", got, c.want)
			}
			if got := string(AppendPostbackKey([]byte("x"), &c.pb)); got != "x"+c.want {
				t.Fatalf("AppendPostbackKey = %q, want %q", got, "x"+c.want)
			}
			if k := PostbackKey(&c.pb); ClaimOfKey(k) != NextClaim(WantedClaims(&c.pb), 0) {
				t.Fatalf("ClaimOfKey(%q) = %v", k, ClaimOfKey(k))
			}
		})
	}
}

// TestWatermarks: a position applies once per source, sources are
// independent, and the JSON form round-trips.
func TestWatermarks(t *testing.T) {
	var w Watermarks
	q3 := func(o int64) Position { return Position{Lane: LaneRequests, Partition: 3, Offset: o} }
	r3 := func(o int64) Position { return Position{Lane: LaneRouted, Partition: 3, Offset: o} }
	for _, s := range []struct {
		p       Position
		applied bool
	}{
		{q3(10), false}, {q3(10), true}, {q3(7), true}, {r3(7), false}, {q3(11), false}, {r3(5), true},
		{Position{Lane: LaneRequests, Partition: 0, Offset: 0}, false},
	} {
		if got := w.Applied(s.p); got != s.applied {
			t.Fatalf("Applied(%v) = %v, want %v (marks %v)", s.p, got, s.applied, w)
		}
		w.Advance(s.p)
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"q0":0,"q3":11,"r3":7}` {
		t.Fatalf("JSON %s", b)
	}
	var back Watermarks
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if len(back) != 3 || !back.Applied(q3(11)) || back.Applied(q3(12)) || !back.Applied(r3(7)) {
		t.Fatalf("round trip: %v", back)
	}
	pb, _ := json.Marshal(q3(1234))
	var p Position
	if string(pb) != `"q3:1234"` || json.Unmarshal(pb, &p) != nil || p != q3(1234) {
		t.Fatalf("position JSON %s -> %v", pb, p)
	}
}

// TestWatermarksJSONErrors: malformed guards are refused, not guessed.
func TestWatermarksJSONErrors(t *testing.T) {
	for _, in := range []string{`[]`, `{"c3"}`, `{"c3":x}`, `{"c":1}`, `{c3:1}`, `{"c3":1,}x`, `"c3"`} {
		var w Watermarks
		if err := json.Unmarshal([]byte(in), &w); err == nil {
			t.Errorf("%s: decoded as %v, want an error", in, w)
		}
	}
	var w Watermarks
	if err := json.Unmarshal([]byte(` { "p0" : 5 , "q12":7 } `), &w); err != nil || len(w) != 2 || !w.Applied(Position{Lane: 'q', Partition: 12, Offset: 7}) {
		t.Fatalf("spaces: %v %v", w, err)
	}
}
