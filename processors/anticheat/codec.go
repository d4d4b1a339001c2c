package anticheat

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/streamtools/streamtools/schemas"
)

// The anticheat table rows and loop messages are internal to this group
// (no other component reads them), so they use a compact binary encoding
// instead of JSON: JSON decoding and encoding of the influencer rows, whose
// pending queue grows while claims are in flight, was 40% of the
// processors' CPU. The first byte tells the encodings apart: binaryMagic,
// or '{' for the JSON of earlier versions, which Decode still reads (a
// changelog or loop topic written by them stays readable).
//
// Binary layout: magic, format version, then the fields in a fixed order:
// integers as varints, strings and byte slices as uvarint length + bytes,
// times as a presence byte + varint Unix nanoseconds (UTC).
const (
	binaryMagic   = 0xB1
	binaryVersion = 1
)

// errShort is returned for a truncated binary value.
var errShort = errors.New("truncated value")

type enc struct{ b []byte }

func (e *enc) byte(v byte)    { e.b = append(e.b, v) }
func (e *enc) int(v int64)    { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) uint(v uint64)  { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) str(s string)   { e.uint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(p []byte) { e.uint(uint64(len(p))); e.b = append(e.b, p...) }
func (e *enc) bool(v bool) {
	if v {
		e.byte(1)
	} else {
		e.byte(0)
	}
}
func (e *enc) time(t time.Time) {
	if t.IsZero() {
		e.byte(0)
		return
	}
	e.byte(1)
	e.int(t.UnixNano())
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = errShort
	}
	d.b = nil
}

func (d *dec) byte() byte {
	if len(d.b) < 1 {
		d.fail()
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) int() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) uint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) raw() []byte {
	n := d.uint()
	if n > uint64(len(d.b)) {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string { return string(d.raw()) }

// bytes copies: the decoded value must not alias goka's buffer.
func (d *dec) bytes() []byte {
	r := d.raw()
	if len(r) == 0 {
		return nil
	}
	return append([]byte(nil), r...)
}

func (d *dec) bool() bool { return d.byte() != 0 }

func (d *dec) time() time.Time {
	if d.byte() == 0 {
		return time.Time{}
	}
	n := d.int()
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

// rowCodec is the goka codec of the anticheat table. With a cache, it
// keeps the rows it encodes with a pending queue, decoded, keyed by their
// encoding: decoding an influencer row costs in proportion to its queue,
// which a backlog makes long, and every callback of the key decodes it
// again (measured: 20% of the CPU with 100 postbacks per key in flight).
type rowCodec struct{ cache *rowCache }

// RowCodec encodes and decodes Row values of the table (binary; Decode
// also reads the JSON rows of earlier versions).
var RowCodec rowCodec

// rowCache maps the encoding of a row to a private copy of the row it was
// encoded from. Keyed by content, it can never hand out anything but what
// decoding those bytes would give, whoever wrote them and whatever happened
// to the partition since (rebalance, recovery from the changelog): nothing
// to invalidate. take removes the entry, so the copy handed out (which the
// callback may change) is never handed out again; put stores a copy, so a
// change made after ctx.SetValue cannot reach the cache.
type rowCache struct {
	mu    sync.Mutex
	rows  map[string]*Row
	bytes int
}

// rowCacheBytes bounds the encodings held; the cache is emptied when full
// (rows of idle keys are never taken).
const rowCacheBytes = 16 << 20

func newRowCache() *rowCache { return &rowCache{rows: map[string]*Row{}} }

func (c *rowCache) put(b []byte, r *Row) {
	if r.Influencer == nil || len(r.Influencer.Pending) == 0 {
		return // cheap to decode
	}
	cp := *r
	inf := *r.Influencer
	inf.Pending = append([]Pending(nil), inf.Pending...)
	cp.Influencer = &inf
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.bytes+len(b) > rowCacheBytes {
		clear(c.rows)
		c.bytes = 0
	}
	if _, ok := c.rows[string(b)]; !ok {
		c.bytes += len(b)
	}
	c.rows[string(b)] = &cp
}

func (c *rowCache) take(b []byte) *Row {
	c.mu.Lock()
	defer c.mu.Unlock()
	r, ok := c.rows[string(b)]
	if ok {
		delete(c.rows, string(b))
		c.bytes -= len(b)
	}
	return r
}

// Row flags: which sub-structs follow.
const (
	rowInfluencer = 1 << iota
	rowEventID
	rowVisitor
)

func (c rowCodec) Encode(value any) ([]byte, error) {
	var r *Row
	switch v := value.(type) {
	case *Row:
		r = v
	case Row:
		r = &v
	default:
		return nil, fmt.Errorf("anticheat: encoding %T with the row codec", value)
	}
	b := appendRow(nil, r)
	if c.cache != nil {
		c.cache.put(b, r)
	}
	return b, nil
}

func (c rowCodec) Decode(data []byte) (any, error) {
	if c.cache != nil {
		if r := c.cache.take(data); r != nil {
			return r, nil
		}
	}
	r, err := decodeRow(data)
	if err != nil {
		return nil, fmt.Errorf("anticheat: decoding a table row: %w", err)
	}
	return r, nil
}

func appendRow(b []byte, r *Row) []byte {
	size := 16
	if r.Influencer != nil {
		for i := range r.Influencer.Pending {
			if p := &r.Influencer.Pending[i]; p.enc != nil {
				size += len(p.enc.b)
			} else {
				size += 200 + len(p.Event)
			}
		}
	}
	if b == nil {
		b = make([]byte, 0, size)
	}
	e := enc{b: b}
	e.byte(binaryMagic)
	e.byte(binaryVersion)
	e.int(int64(r.V))
	var flags byte
	if r.Influencer != nil {
		flags |= rowInfluencer
	}
	if r.EventID != nil {
		flags |= rowEventID
	}
	if r.Visitor != nil {
		flags |= rowVisitor
	}
	e.byte(flags)
	if inf := r.Influencer; inf != nil {
		e.int(inf.LastEnqueued)
		e.int(inf.LastApplied)
		e.uint(uint64(len(inf.Pending)))
		for i := range inf.Pending {
			p := &inf.Pending[i]
			st := p.encState()
			if p.enc != nil && p.enc.state == st {
				e.b = append(e.b, p.enc.b...)
				continue
			}
			start := len(e.b)
			appendPending(&e, p)
			p.enc = &pendingEnc{state: st, b: e.b[start:len(e.b):len(e.b)]}
		}
	}
	for _, c := range []*Claim{r.EventID, r.Visitor} {
		if c != nil {
			e.str(c.Owner)
			e.str(c.Day)
			e.time(c.ClaimedAt)
		}
	}
	return e.b
}

func appendPending(e *enc, p *Pending) {
	e.int(p.Seq)
	e.bytes(p.Event)
	appendAttrs(e, &p.Attrs)
	e.int(int64(p.SeqPartition))
	e.str(p.Verdict)
	e.str(p.Reason)
	e.str(p.ID)
	e.str(p.Customer)
	// Product, EventType and EventID are Attrs' (rows of earlier versions
	// have no Attrs): written only when they differ.
	e.str(unlessEqual(p.Product, p.Attrs.Product))
	e.str(unlessEqual(p.EventType, p.Attrs.EventType))
	e.str(unlessEqual(p.EventID, p.Attrs.EventID))
	e.str(p.Day)
	e.time(p.At)
	e.str(p.Visitor)
	e.byte(p.Want)
	e.byte(p.Got)
	e.byte(p.Dup)
	e.bool(p.Released)
	e.time(p.EnqueuedAt)
	e.int(p.ReleasedBy)
}

func unlessEqual(s, other string) string {
	if s == other {
		return ""
	}
	return s
}

func orElse(s, other string) string {
	if s == "" {
		return other
	}
	return s
}

func appendAttrs(e *enc, a *schemas.Attrs) {
	for _, s := range []string{a.InfluencerID, a.Product, a.EventType, a.EventName, a.Campaign, a.Medium, a.Source, a.Country, a.EventID} {
		e.str(s)
	}
}

func decodeAttrs(d *dec, a *schemas.Attrs) {
	for _, s := range []*string{&a.InfluencerID, &a.Product, &a.EventType, &a.EventName, &a.Campaign, &a.Medium, &a.Source, &a.Country, &a.EventID} {
		*s = d.str()
	}
}

func decodeRow(data []byte) (*Row, error) {
	r := new(Row)
	if len(data) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, r); err != nil {
			return nil, err
		}
		return r, nil
	}
	d := dec{b: data}
	if m := d.byte(); m != binaryMagic && d.err == nil {
		return nil, fmt.Errorf("unknown encoding (first byte %#x)", m)
	}
	if v := d.byte(); v > binaryVersion && d.err == nil {
		return nil, fmt.Errorf("binary format %d is newer than this processor's %d: upgrade the processor", v, binaryVersion)
	}
	r.V = int(d.int())
	flags := d.byte()
	if flags&rowInfluencer != 0 {
		inf := &Influencer{LastEnqueued: d.int(), LastApplied: d.int()}
		n := d.uint()
		if n > uint64(len(d.b)) {
			d.fail()
		} else if n > 0 {
			inf.Pending = make([]Pending, n)
			for i := range inf.Pending {
				p := &inf.Pending[i]
				start := d.b
				decodePending(&d, p)
				if d.err == nil {
					b := start[: len(start)-len(d.b) : len(start)-len(d.b)]
					p.enc = &pendingEnc{state: p.encState(), b: append([]byte(nil), b...)}
				}
			}
		}
		r.Influencer = inf
	}
	if flags&rowEventID != 0 {
		r.EventID = &Claim{Owner: d.str(), Day: d.str(), ClaimedAt: d.time()}
	}
	if flags&rowVisitor != 0 {
		r.Visitor = &Claim{Owner: d.str(), Day: d.str(), ClaimedAt: d.time()}
	}
	if d.err != nil {
		return nil, d.err
	}
	return r, nil
}

func decodePending(d *dec, p *Pending) {
	p.Seq = d.int()
	p.Event = d.bytes()
	decodeAttrs(d, &p.Attrs)
	p.SeqPartition = int32(d.int())
	p.Verdict = d.str()
	p.Reason = d.str()
	p.ID = d.str()
	p.Customer = d.str()
	p.Product = orElse(d.str(), p.Attrs.Product)
	p.EventType = orElse(d.str(), p.Attrs.EventType)
	p.EventID = orElse(d.str(), p.Attrs.EventID)
	p.Day = d.str()
	p.At = d.time()
	p.Visitor = d.str()
	p.Want = d.byte()
	p.Got = d.byte()
	p.Dup = d.byte()
	p.Released = d.bool()
	p.EnqueuedAt = d.time()
	p.ReleasedBy = d.int()
}

// loopCodec encodes loop messages (binary) and decodes nothing: the
// callback decodes (decodeLoop), so that a bad message goes to the
// dead-letter topic instead of stopping the processor (goka stops on a
// codec error).
type loopCodec struct{}

func (loopCodec) Encode(v any) ([]byte, error) {
	m, ok := v.(*loopMsg)
	if !ok {
		return nil, fmt.Errorf("anticheat: encoding %T with the loop codec", v)
	}
	e := enc{b: make([]byte, 0, 64+len(m.Event)+len(m.Origin)+len(m.PostbackID))}
	e.byte(binaryMagic)
	e.byte(binaryVersion)
	e.int(int64(m.V))
	e.str(m.Kind)
	e.byte(m.Claim)
	e.str(m.Origin)
	e.int(m.Seq)
	e.str(m.PostbackID)
	e.str(m.Day)
	e.time(m.ReceivedAt)
	e.bool(m.Duplicate)
	e.bytes(m.Event)
	e.str(m.Verdict)
	e.str(m.Reason)
	e.str(m.CampaignKey)
	e.str(m.DayKey)
	return e.b, nil
}

func (loopCodec) Decode(b []byte) (any, error) { return b, nil }

// decodeLoop decodes a loop message, binary or (earlier versions) JSON.
func decodeLoop(data []byte) (*loopMsg, error) {
	m := new(loopMsg)
	if len(data) > 0 && data[0] == '{' {
		if err := json.Unmarshal(data, m); err != nil {
			return nil, err
		}
		m.legacy = true
		return m, nil
	}
	d := dec{b: data}
	if b := d.byte(); b != binaryMagic && d.err == nil {
		return nil, fmt.Errorf("unknown encoding (first byte %#x)", b)
	}
	if v := d.byte(); v > binaryVersion && d.err == nil {
		return nil, fmt.Errorf("binary format %d is newer than this processor's %d: upgrade the processor", v, binaryVersion)
	}
	m.V = int(d.int())
	m.Kind = d.str()
	m.Claim = d.byte()
	m.Origin = d.str()
	m.Seq = d.int()
	m.PostbackID = d.str()
	m.Day = d.str()
	m.ReceivedAt = d.time()
	m.Duplicate = d.bool()
	m.Event = d.bytes()
	m.Verdict = d.str()
	m.Reason = d.str()
	m.CampaignKey = d.str()
	m.DayKey = d.str()
	if d.err != nil {
		return nil, d.err
	}
	return m, nil
}
