package schemas

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Lanes name the input streams whose positions records carry. A lane and a
// partition together are one ordered source: a processor reads each source
// in offset order and emits to any one key in that order.
//
// A claim decision is identified by the claims processor's own input
// position (lanes p and q), not by its place in the claims changelog: a
// decision written twice (a stalled instance whose writes land after
// another took over its partitions) then carries the same position twice.
const (
	// LanePostbacks: the claims processor reading the postbacks topic. Also
	// the position of a postback itself (Event.SeqPartition, Seq).
	LanePostbacks byte = 'p'
	// LaneRequests: the claims processor reading the claims topic.
	LaneRequests byte = 'q'
	// LaneRouted: the verdicts processor reading the postbacks topic.
	LaneRouted byte = 'r'
	// LaneForwarded and LaneForwardedRequest: a claim request forwarded
	// after a decision at lane p, or at lane q; partition and offset are
	// that decision's.
	LaneForwarded        byte = 'f'
	LaneForwardedRequest byte = 'g'
)

// KnownLane reports whether l is one of the lanes above.
func KnownLane(l byte) bool {
	switch l {
	case LanePostbacks, LaneRequests, LaneRouted, LaneForwarded, LaneForwardedRequest:
		return true
	}
	return false
}

// ForwardedFrom is the position of a claim request forwarded after the
// decision at d (lane p or q), and false for any other lane.
func ForwardedFrom(d Position) (Position, bool) {
	switch d.Lane {
	case LanePostbacks:
		return Position{Lane: LaneForwarded, Partition: d.Partition, Offset: d.Offset}, true
	case LaneRequests:
		return Position{Lane: LaneForwardedRequest, Partition: d.Partition, Offset: d.Offset}, true
	}
	return Position{}, false
}

// Position is the place of an input record in one lane: the identity of
// everything a processor emits because of it. A processor that restarts
// reads its input again from the last committed offset and emits the same
// records with the same Position; readers apply each Position once.
type Position struct {
	Lane      byte
	Partition int32
	Offset    int64
}

func (p Position) sourceKey() string {
	return string(p.Lane) + strconv.FormatInt(int64(p.Partition), 10)
}

// String is the text form of p, e.g. "c3:1234": lane, partition, offset.
func (p Position) String() string {
	return p.sourceKey() + ":" + strconv.FormatInt(p.Offset, 10)
}

// ParsePosition reverses Position.String: a lane letter (a-z), a partition
// and an offset, both decimal without sign or leading zeros.
func ParsePosition(s string) (Position, error) {
	src, off, ok := strings.Cut(s, ":")
	if !ok || len(src) < 2 || src[0] < 'a' || src[0] > 'z' {
		return Position{}, fmt.Errorf("schemas: position %q: want a lane letter, partition, ':' and offset, e.g. q3:1234", s)
	}
	part, err := parseDecimal(src[1:], 31)
	if err != nil {
		return Position{}, fmt.Errorf("schemas: partition of position %q: %w", s, err)
	}
	o, err := parseDecimal(off, 63)
	if err != nil {
		return Position{}, fmt.Errorf("schemas: offset of position %q: %w", s, err)
	}
	return Position{Lane: src[0], Partition: int32(part), Offset: o}, nil
}

// parseDecimal parses a non-negative decimal of at most bits bits, without
// sign or leading zeros (the form strconv.FormatInt writes).
func parseDecimal(s string, bits int) (int64, error) {
	if s == "" || len(s) > 1 && s[0] == '0' || s[0] < '0' || s[0] > '9' {
		return 0, fmt.Errorf("%q is not a decimal without sign or leading zeros", s)
	}
	v, err := strconv.ParseInt(s, 10, bits+1)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a decimal of %d bits", s, bits)
	}
	return v, nil
}

// IsZero reports whether p is unset (no lane).
func (p Position) IsZero() bool { return p.Lane == 0 }

// MarshalJSON writes p as a string, e.g. "q3:1234".
func (p Position) MarshalJSON() ([]byte, error) {
	if p.IsZero() {
		return []byte(`""`), nil
	}
	if err := p.check(); err != nil {
		return nil, err
	}
	return strconv.AppendQuote(nil, p.String()), nil
}

// check reports a position that ParsePosition would not read back.
func (p Position) check() error {
	if p.Lane < 'a' || p.Lane > 'z' || p.Partition < 0 || p.Offset < 0 {
		return fmt.Errorf("schemas: position %+v: want a lane letter a-z and a partition and offset of 0 or more", p)
	}
	return nil
}

// UnmarshalJSON reads the string form ("" is the zero Position).
func (p *Position) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("schemas: position: %w", err)
	}
	if s == "" {
		*p = Position{}
		return nil
	}
	v, err := ParsePosition(s)
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// Watermarks are a row's replay guard: per source (lane and partition), the
// highest offset applied to the row. A source's records reach a key in
// offset order, and a restarted processor only re-sends a suffix of what it
// sent, so a record at or below its source's mark was applied already.
// The size is bounded by lanes x partitions, whatever the traffic.
// Sorted by source; JSON: {"p0":17,"q3":1234}.
type Watermarks []Position

func (w Watermarks) find(p Position) (int, bool) {
	return slices.BinarySearchFunc(w, p, func(a, b Position) int {
		if a.Lane != b.Lane {
			return int(a.Lane) - int(b.Lane)
		}
		return int(a.Partition) - int(b.Partition)
	})
}

// Applied reports whether p is at or below its source's mark.
func (w Watermarks) Applied(p Position) bool {
	i, ok := w.find(p)
	return ok && p.Offset <= w[i].Offset
}

// Advance raises p's source mark to p.Offset (never lowers it).
func (w *Watermarks) Advance(p Position) {
	i, ok := w.find(p)
	switch {
	case !ok:
		*w = slices.Insert(*w, i, p)
	case p.Offset > (*w)[i].Offset:
		(*w)[i].Offset = p.Offset
	}
}

// MarshalJSON writes an object of source -> offset, sorted by source.
func (w Watermarks) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	for i, p := range w {
		if err := p.check(); err != nil {
			return nil, err
		}
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, p.sourceKey())
		b = append(b, ':')
		b = strconv.AppendInt(b, p.Offset, 10)
	}
	return append(b, '}'), nil
}

// UnmarshalJSON reads the object form. It parses by hand: the stats
// processor decodes a row, watermarks included, for every event.
func (w *Watermarks) UnmarshalJSON(b []byte) error {
	bad := func() error {
		return fmt.Errorf("schemas: watermarks %q: want an object of lane+partition -> offset", b)
	}
	if !json.Valid(b) {
		return bad()
	}
	s := strings.TrimSpace(string(b))
	if s == "null" {
		*w = nil
		return nil
	}
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return bad()
	}
	s = strings.TrimSpace(s[1 : len(s)-1])
	out := make(Watermarks, 0, strings.Count(s, ":"))
	for s != "" {
		if s[0] != '"' {
			return bad()
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return bad()
		}
		src := s[1 : 1+end]
		s = strings.TrimSpace(s[2+end:])
		if s == "" || s[0] != ':' {
			return bad()
		}
		s = strings.TrimSpace(s[1:])
		n := strings.IndexByte(s, ',')
		num := s
		if n >= 0 {
			num, s = s[:n], strings.TrimSpace(s[n+1:])
		} else {
			s = ""
		}
		p, err := ParsePosition(src + ":" + strings.TrimSpace(num))
		if err != nil {
			return bad()
		}
		out.Advance(p)
	}
	*w = out
	return nil
}
