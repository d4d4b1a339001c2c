package schemas

import (
	"encoding/json"
	"math"
	"slices"
	"testing"
)

// Fuzz targets of the replay guard's text forms: Position ("c3:1234") and
// Watermarks ({"c3":1234,"p0":17}), which every stats and claim row carries
// and every processor decodes from records it did not write itself.

// FuzzPosition: a Position of a lane letter and a partition and offset of
// 0 or more formats to text that parses back to it, and to JSON that
// decodes back to it. Any other Position may be refused, but never read
// back as a different one: String parses to it or not at all, and
// MarshalJSON fails or writes valid JSON that decodes to it (the zero
// Position, no lane, is written as "").
func FuzzPosition(f *testing.F) {
	f.Add(byte('q'), int32(3), int64(1234))
	f.Add(byte('p'), int32(0), int64(0))
	f.Add(byte('r'), int32(11), int64(math.MaxInt64))
	f.Add(byte('z'), int32(math.MaxInt32), int64(7))
	f.Add(byte('x'), int32(-1), int64(math.MinInt64))
	f.Add(byte(0), int32(math.MaxInt32), int64(-7))
	f.Add(byte('C'), int32(3), int64(1))
	f.Fuzz(func(t *testing.T, lane byte, part int32, off int64) {
		p := Position{Lane: lane, Partition: part, Offset: off}
		valid := 'a' <= lane && lane <= 'z' && part >= 0 && off >= 0
		s := p.String()
		back, err := ParsePosition(s)
		switch {
		case err != nil && valid:
			t.Fatalf("ParsePosition(%q) of %#v: %v", s, p, err)
		case err == nil && back != p:
			t.Fatalf("ParsePosition(%q) = %#v, want %#v", s, back, p)
		}
		fuzzCheckPositionJSON(t, p, valid)
	})
}

// FuzzParsePosition: whatever ParsePosition accepts formats to a canonical
// text that parses to the same Position and formats to itself.
//
// Inputs that broke it against position.go of 5d7ae61, seeds once
// position.go refuses them: "\xc33:1" (String writes lane 0xc3 as the two
// bytes of U+00C3, which do not parse back) and "\x013:1" (MarshalJSON
// quotes with strconv, writing the invalid JSON "\x013:1").
func FuzzParsePosition(f *testing.F) {
	for _, s := range []string{"c3:1234", "p0:0", "r11:9223372036854775807", "c-1:-5", "c+3:007", "c3:", ":1", "c:1", "c3", "cc3:1", "c2147483648:1", "c3:1:2", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePosition(s)
		if err != nil {
			return
		}
		canon := p.String()
		again, err := ParsePosition(canon)
		if err != nil {
			t.Fatalf("ParsePosition(%q) = %#v, whose String %q does not parse: %v", s, p, canon, err)
		}
		if again != p {
			t.Fatalf("ParsePosition(%q) = %#v, but its String %q parses to %#v", s, p, canon, again)
		}
		if again.String() != canon {
			t.Fatalf("String is not canonical: %q, then %q", canon, again.String())
		}
		fuzzCheckPositionJSON(t, p, true)
	})
}

// fuzzCheckPositionJSON: MarshalJSON writes valid JSON that decodes to p, or
// (unless must) fails.
func fuzzCheckPositionJSON(t *testing.T, p Position, must bool) {
	t.Helper()
	b, err := p.MarshalJSON() // called directly: go-json, the codecs' encoder, does not check its output
	if err != nil {
		if must {
			t.Fatalf("MarshalJSON(%#v): %v", p, err)
		}
		return
	}
	if !json.Valid(b) {
		t.Fatalf("MarshalJSON(%#v) = %q, not valid JSON", p, b)
	}
	var back Position
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("json.Unmarshal(%s) of %#v: %v", b, p, err)
	}
	want := p
	if p.IsZero() {
		want = Position{} // written as "", whatever the partition and offset
	}
	if back != want {
		t.Fatalf("JSON %s of %#v decodes to %#v", b, p, back)
	}
}

// FuzzWatermarksJSON: the hand-written UnmarshalJSON accepts only valid
// JSON, yields sorted marks with one per source, and what it decodes
// re-encodes to JSON that decodes to the same marks and encodes to the
// same bytes.
//
// Inputs that broke it against position.go of 5d7ae61, seeds once
// position.go refuses them: {"c3":1,}, {"c3":01}, {"c3":+1} and {"00":00}
// were accepted, and "{\"\xc33\":1}" decoded to a lane 0xc3 that encodes
// as "Ã3" (U+00C3) and then does not decode.
func FuzzWatermarksJSON(f *testing.F) {
	for _, s := range []string{
		`{"c3":1234,"p0":17}`, `{}`, `null`, ` { "p0" : 5 , "c12":7 } `, `{"c0":0,"c3":11,"r3":7}`,
		`{"c3":5,"c3":2}`, `{"c-1":-9}`, `{"c\u0033":1}`, `[]`, `{"c3"}`,
		`{"p0":9223372036854775807,"r2147483647":0}`, `{"\\3":1}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var w Watermarks
		if err := w.UnmarshalJSON(data); err != nil {
			return
		}
		if !json.Valid(data) {
			t.Fatalf("UnmarshalJSON accepted %q, which is not valid JSON, as %v", data, w)
		}
		fuzzCheckMarksSorted(t, w)
		b, err := w.MarshalJSON()
		if err != nil {
			t.Fatalf("MarshalJSON(%v): %v", w, err)
		}
		if !json.Valid(b) {
			t.Fatalf("%q decodes to %v, which encodes to invalid JSON %q", data, w, b)
		}
		var back Watermarks
		if err := back.UnmarshalJSON(b); err != nil {
			t.Fatalf("%q decodes to %v, whose encoding %q does not decode: %v", data, w, b, err)
		}
		if len(back) != len(w) || (len(w) > 0 && !slices.Equal(back, w)) {
			t.Fatalf("%q decodes to %v, whose encoding %q decodes to %v", data, w, b, back)
		}
		if b2, _ := back.MarshalJSON(); string(b2) != string(b) {
			t.Fatalf("encoding is not stable: %q, then %q", b, b2)
		}
	})
}

// FuzzWatermarksAdvance runs a sequence of Advance calls (from ops, four
// bytes each: lane, partition, offset) against a model map: marks never go
// down, other sources never change, Applied(p) holds right after
// Advance(p), and Applied answers exactly as the model does.
func FuzzWatermarksAdvance(f *testing.F) {
	f.Add([]byte(`{"c3":10,"r3":7}`), []byte{'c', 3, 0, 11, 'c', 3, 0, 7, 'r', 3, 0, 5, 'p', 0, 0, 0, 'c', 0xff, 0x80, 0})
	f.Add([]byte(`{}`), []byte{'c', 1, 1, 1, 'c', 2, 2, 2, 'c', 1, 0, 0, 'c', 0x80, 0x7f, 0xff})
	f.Add([]byte(`null`), []byte{})
	f.Fuzz(func(t *testing.T, init, ops []byte) {
		var w Watermarks
		if w.UnmarshalJSON(init) != nil {
			w = nil
		}
		model := map[[2]int64]int64{}
		for _, p := range w {
			model[[2]int64{int64(p.Lane), int64(p.Partition)}] = p.Offset
		}
		lanes := []byte{'q', 'p', 'r'}
		for ; len(ops) >= 4; ops = ops[4:] {
			lane := ops[0]
			if lane < 0x80 { // mostly the real lanes, sometimes any byte
				lane = lanes[int(lane)%len(lanes)]
			}
			p := Position{Lane: lane, Partition: int32(int8(ops[1])), Offset: int64(int16(uint16(ops[2])<<8 | uint16(ops[3])))}
			src := [2]int64{int64(p.Lane), int64(p.Partition)}
			mark, had := model[src]
			if got, want := w.Applied(p), had && p.Offset <= mark; got != want {
				t.Fatalf("marks %v: Applied(%v) = %v, want %v", w, p, got, want)
			}
			before := slices.Clone(w)
			w.Advance(p)
			if !had || p.Offset > mark {
				model[src] = p.Offset
			}
			if !w.Applied(p) {
				t.Fatalf("marks %v after Advance(%v): not Applied", w, p)
			}
			fuzzCheckMarksSorted(t, w)
			if len(w) != len(model) {
				t.Fatalf("marks %v: %d sources, want %d", w, len(w), len(model))
			}
			for _, q := range w {
				if m := model[[2]int64{int64(q.Lane), int64(q.Partition)}]; q.Offset != m {
					t.Fatalf("marks %v after Advance(%v) from %v: %v, want offset %d", w, p, before, q, m)
				}
			}
			for _, q := range before {
				if !w.Applied(q) {
					t.Fatalf("Advance(%v) lowered %v: marks %v, before %v", p, q, w, before)
				}
			}
		}
	})
}

// fuzzCheckMarksSorted: strictly increasing by (lane, partition), so one mark
// per source and binary search works.
func fuzzCheckMarksSorted(t *testing.T, w Watermarks) {
	t.Helper()
	for i := 1; i < len(w); i++ {
		a, b := w[i-1], w[i]
		if a.Lane > b.Lane || (a.Lane == b.Lane && a.Partition >= b.Partition) {
			t.Fatalf("marks %v are not sorted with one per source at %d", w, i)
		}
	}
}
