package anticheat

import (
	"encoding/json"
	"net/url"
	"strings"
	"time"

	"github.com/streamtools/streamtools/schemas"
)

// RowVersion is the version of Row and of the loop messages.
const RowVersion = 1

// Row is a value of the anticheat table. One table holds three kinds of
// rows, told apart by their key: influencer rows at the InfluencerKey, and
// claims at "#event_id/..." and "#visitor/..." keys ('#' never starts an
// InfluencerKey, whose parts are path-escaped). Exactly one sub-struct is set.
type Row struct {
	V          int         `json:"v"`
	Influencer *Influencer `json:"influencer,omitempty"`
	EventID    *Claim      `json:"event_id,omitempty"`
	Visitor    *Claim      `json:"visitor,omitempty"`
}

// Influencer is the ordering state of one influencer key: the postbacks
// waiting for their claims, in input order.
type Influencer struct {
	// LastEnqueued is the offset of the last postback enqueued (-1: none).
	// A postback at or below it is a redelivery.
	LastEnqueued int64 `json:"last_enqueued"`
	// LastApplied is the Seq of the last event emitted (-1: none).
	LastApplied int64 `json:"last_applied"`
	// Pending in Seq order. Released entries form a prefix.
	Pending []Pending `json:"pending,omitempty"`
}

// Claim kinds, as bits of Pending.Want and Pending.Got.
const (
	claimEventID uint8 = 1 << iota
	claimVisitor
)

// Pending is a postback waiting for its verdict or for its turn.
type Pending struct {
	Seq int64 `json:"seq"`
	// Event is set only in rows of earlier versions: the encoded
	// schemas.Event without its verdict. Rows now keep the event's fields
	// (Attrs, SeqPartition and the fields below) and encode the event once,
	// with its verdict, into the release message: the row, rewritten to the
	// changelog on every callback of its key, stays small.
	Event        json.RawMessage `json:"event,omitempty"`
	Attrs        schemas.Attrs   `json:"attrs"`
	SeqPartition int32           `json:"seq_partition,omitempty"`
	Verdict      string          `json:"verdict,omitempty"`
	Reason       string          `json:"reason,omitempty"`
	// ID, Customer, Product, EventType and Day name the claims.
	ID        string    `json:"id"`
	Customer  string    `json:"customer"`
	Product   string    `json:"product"`
	EventType string    `json:"event_type"`
	Day       string    `json:"day"`
	EventID   string    `json:"event_id,omitempty"`
	At        time.Time `json:"received_at"`
	// Visitor is kept for the visitor claim; it never reaches an Event.
	Visitor string `json:"visitor,omitempty"`
	Want    uint8  `json:"want,omitempty"` // claims needed
	Got     uint8  `json:"got,omitempty"`  // claims answered
	Dup     uint8  `json:"dup,omitempty"`  // claims answered "duplicate"
	// Released: the release message is sent; the event is emitted when it
	// comes back, in Seq order.
	Released bool `json:"released,omitempty"`
	// ReleasedBy is 1 + the Seq of the entry whose trigger (postback or
	// claim answer) released this one; 0 when unknown (rows of earlier
	// versions). Not in JSON: only binary rows carry it.
	ReleasedBy int64 `json:"-"`
	// enc is this entry's binary encoding as last written or read, reused
	// while the fields that change after enqueue are the same (encState).
	enc *pendingEnc
	// EnqueuedAt (wall clock) lets maintenance re-send stale claims.
	EnqueuedAt time.Time `json:"enqueued_at"`
}

func (p *Pending) decided() bool { return p.Verdict != "" }

// pendingEnc is an entry's encoding and the fields that can change after
// enqueue at the time it was made (the others never change).
type pendingEnc struct {
	state encState
	b     []byte
}

type encState struct {
	got, dup, want  uint8
	verdict, reason string
	released        bool
	releasedBy      int64
	pending         int // len(Event): set only in rows of earlier versions
}

func (p *Pending) encState() encState {
	return encState{got: p.Got, dup: p.Dup, want: p.Want, verdict: p.Verdict, reason: p.Reason,
		released: p.Released, releasedBy: p.ReleasedBy, pending: len(p.Event)}
}

// encodeEvent encodes the decided entry's schemas.Event, with its verdict.
func (p *Pending) encodeEvent() ([]byte, error) {
	if len(p.Event) > 0 { // a row of an earlier version
		var ev schemas.Event
		if err := json.Unmarshal(p.Event, &ev); err != nil {
			return nil, err
		}
		ev.Verdict, ev.Reason = p.Verdict, p.Reason
		return json.Marshal(&ev)
	}
	return json.Marshal(&schemas.Event{
		V: schemas.EventVersion, ID: p.ID, ReceivedAt: p.At, CustomerCode: p.Customer, Day: p.Day,
		Attrs: p.Attrs, Verdict: p.Verdict, Reason: p.Reason, SeqPartition: p.SeqPartition, Seq: p.Seq,
	})
}

// decide sets the verdict once every wanted claim answered. A repeated
// event_id wins over a repeated visitor as the reason.
func (p *Pending) decide() {
	if p.decided() || p.Got&p.Want != p.Want {
		return
	}
	switch {
	case p.Dup&claimEventID != 0:
		p.Verdict, p.Reason = schemas.VerdictDuplicate, schemas.ReasonDuplicateEventID
	case p.Dup&claimVisitor != 0:
		p.Verdict, p.Reason = schemas.VerdictDuplicate, schemas.ReasonDuplicateVisitor
	default:
		p.Verdict, p.Reason = schemas.VerdictCounted, ""
	}
}

// Claim is the first claimer of an event id or of a visitor's action on a
// day. Claims are idempotent: the same postback asking again gets the same
// answer.
type Claim struct {
	Owner string `json:"owner"` // Postback.ID
	Day   string `json:"day,omitempty"`
	// ClaimedAt is the owner's ReceivedAt (event time, so a replay decides
	// expiry the same way).
	ClaimedAt time.Time `json:"claimed_at"`
}

// Loop message kinds.
const (
	kindClaim   = "claim"   // K -> claim key: claim this for postback Seq
	kindAnswer  = "answer"  // claim key -> K: the claim's answer
	kindRelease = "release" // K -> K: emit this event now (Seq order)
)

// loopMsg is the one record type of the loop topic.
type loopMsg struct {
	V    int    `json:"v"`
	Kind string `json:"kind"`
	// Claim and answer.
	Claim      uint8     `json:"claim,omitempty"`
	Origin     string    `json:"origin,omitempty"` // the influencer key
	Seq        int64     `json:"seq"`
	PostbackID string    `json:"postback_id,omitempty"`
	Day        string    `json:"day,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	Duplicate  bool      `json:"duplicate,omitempty"`
	// Release.
	// Event is the encoded schemas.Event with its verdict (in messages of
	// earlier versions, JSON ones, without it: see legacy).
	Event   json.RawMessage `json:"event,omitempty"`
	Verdict string          `json:"verdict,omitempty"`
	Reason  string          `json:"reason,omitempty"`
	// CampaignKey and DayKey are the event's keys in the events-by-campaign
	// and events-by-day topics (binary messages only).
	CampaignKey string `json:"-"`
	DayKey      string `json:"-"`
	// legacy: decoded from JSON (earlier versions): Event lacks its verdict
	// and the keys are absent.
	legacy bool
}

// Key prefixes of claim rows.
const (
	prefixEventID = "#event_id/"
	prefixVisitor = "#visitor/"
)

func escapeJoin(parts ...string) string {
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

// EventIDKey is the row key of the claim of a customer's event id.
func EventIDKey(customer, eventID string) string {
	return prefixEventID + escapeJoin(customer, eventID)
}

// VisitorKey is the row key of the claim of a visitor's action on a day.
func VisitorKey(customer, product, eventType, day, visitor string) string {
	return prefixVisitor + escapeJoin(customer, product, eventType, day, visitor)
}

func claimKey(kind uint8, p *Pending) string {
	if kind == claimEventID {
		return EventIDKey(p.Customer, p.EventID)
	}
	return VisitorKey(p.Customer, p.Product, p.EventType, p.Day, p.Visitor)
}

// dayOverEverywhere is when day (YYYY-MM-DD) has ended in every time zone:
// midnight after it at UTC-12, the last zone to leave a day.
func dayOverEverywhere(day string) (time.Time, bool) {
	d, err := time.Parse(schemas.DayLayout, day)
	if err != nil {
		return time.Time{}, false
	}
	return d.Add(36 * time.Hour), true
}
