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
const (
	// LanePostbacks: the claims processor reading the postbacks topic.
	LanePostbacks byte = 'p'
	// LaneRouted: the verdicts processor reading the postbacks topic.
	LaneRouted byte = 'r'
	// LaneClaims: the verdicts processor reading the claims table changelog.
	LaneClaims byte = 'c'
)

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

// ParsePosition reverses Position.String.
func ParsePosition(s string) (Position, error) {
	src, off, ok := strings.Cut(s, ":")
	if !ok || len(src) < 2 {
		return Position{}, fmt.Errorf("schemas: position %q: want lane, partition, ':' and offset, e.g. c3:1234", s)
	}
	part, err := strconv.ParseInt(src[1:], 10, 32)
	if err != nil {
		return Position{}, fmt.Errorf("schemas: partition of position %q: %w", s, err)
	}
	o, err := strconv.ParseInt(off, 10, 64)
	if err != nil {
		return Position{}, fmt.Errorf("schemas: offset of position %q: %w", s, err)
	}
	return Position{Lane: src[0], Partition: int32(part), Offset: o}, nil
}

// IsZero reports whether p is unset (no lane).
func (p Position) IsZero() bool { return p.Lane == 0 }

// MarshalJSON writes p as a string, e.g. "c3:1234".
func (p Position) MarshalJSON() ([]byte, error) {
	if p.IsZero() {
		return []byte(`""`), nil
	}
	return strconv.AppendQuote(nil, p.String()), nil
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
// Sorted by source; JSON: {"c3":1234,"p0":17}.
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
		if len(src) < 2 {
			return bad()
		}
		part, err1 := strconv.ParseInt(src[1:], 10, 32)
		off, err2 := strconv.ParseInt(strings.TrimSpace(num), 10, 64)
		if err1 != nil || err2 != nil {
			return bad()
		}
		out.Advance(Position{Lane: src[0], Partition: int32(part), Offset: off})
	}
	*w = out
	return nil
}
