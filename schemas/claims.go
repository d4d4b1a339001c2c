package schemas

import (
	"fmt"
	"net/url"
	"time"
)

// Claims of a postback, as bits. A postback is checked against its visitor
// claim first (the same visitor, same action, same day, with anti-cheat on),
// then against its event id: a postback takes a claim only while it still
// counts, and the first duplicate decides its verdict.
type Claims uint8

// The claims, in the order they are checked.
const (
	ClaimVisitor Claims = 1 << iota
	ClaimEventID
)

// claimOrder is the order in which a postback's claims are checked.
var claimOrder = [...]Claims{ClaimVisitor, ClaimEventID}

// WantedClaims is what pb needs checked: the visitor claim when anti-cheat
// is on and the edge computed a visitor fingerprint, the event-id claim when
// the sender gave an event_id.
func WantedClaims(pb *Postback) Claims {
	var c Claims
	if pb.AntiCheat && pb.Visitor != "" {
		c |= ClaimVisitor
	}
	if pb.EventID != "" {
		c |= ClaimEventID
	}
	return c
}

// NextClaim is the first claim of want not in got, or 0.
func NextClaim(want, got Claims) Claims {
	for _, c := range claimOrder {
		if want&c != 0 && got&c == 0 {
			return c
		}
	}
	return 0
}

// EventType is pb's event type, DefaultEventType when it names none.
func EventType(pb *Postback) string {
	if pb.EventType == "" {
		return DefaultEventType
	}
	return pb.EventType
}

// Key prefixes of claim rows: '#' never starts an InfluencerKey or DayKey,
// whose parts are path-escaped.
const (
	claimPrefixVisitor = "#visitor/"
	claimPrefixEventID = "#event_id/"
)

// VisitorClaimKey is the key of the claim of a visitor's action on a day.
func VisitorClaimKey(customer, product, eventType, day, visitor string) string {
	return claimPrefixVisitor + joinKey(customer, product, eventType, day, visitor)
}

// EventIDClaimKey is the key of the claim of a customer's event id.
func EventIDClaimKey(customer, eventID string) string {
	return claimPrefixEventID + joinKey(customer, eventID)
}

// ClaimOfKey tells which claim a claims-table key holds (0: not a claim).
func ClaimOfKey(key string) Claims {
	switch {
	case len(key) >= len(claimPrefixVisitor) && key[:len(claimPrefixVisitor)] == claimPrefixVisitor:
		return ClaimVisitor
	case len(key) >= len(claimPrefixEventID) && key[:len(claimPrefixEventID)] == claimPrefixEventID:
		return ClaimEventID
	}
	return 0
}

// ClaimKey is the key of claim c of pb.
func ClaimKey(pb *Postback, c Claims) string {
	if c == ClaimVisitor {
		return VisitorClaimKey(pb.CustomerCode, pb.Product, EventType(pb), pb.Day, pb.Visitor)
	}
	return EventIDClaimKey(pb.CustomerCode, pb.EventID)
}

// PostbackDayKey is the DayKey of pb: its stats row.
func PostbackDayKey(pb *Postback) string {
	return DayKey(pb.CustomerCode, pb.Product, pb.InfluencerID, pb.Campaign, pb.Day)
}

// PostbackKey is the key of pb in the postbacks topic: the key of its first
// claim, or its DayKey when it needs none. So a hot influencer's postbacks
// spread over every partition, and each visitor's postbacks reach its claim
// in the order the edge accepted them. A record keyed otherwise (an older
// producer, kcat) is still processed: the verdicts processor forwards it to
// its claim.
func PostbackKey(pb *Postback) string {
	if c := NextClaim(WantedClaims(pb), 0); c != 0 {
		return ClaimKey(pb, c)
	}
	return PostbackDayKey(pb)
}

// ClaimRequestVersion is the version of ClaimRequest records.
const ClaimRequestVersion = 1

// ClaimRequest is a record of the claims topic (keyed by a claim key),
// written by the verdicts processor: a postback whose next claim is the
// key's, with the claims already decided.
type ClaimRequest struct {
	V int `json:"v"`
	// Src identifies what is forwarded (lane f: the decision it follows;
	// lane r: the postback the verdicts processor read): the claims
	// processor applies each Src once.
	Src      Position `json:"src"`
	Got      Claims   `json:"got,omitempty"`
	Postback Postback `json:"postback"`
	// PostbackPos is the postback's own place in the postbacks topic
	// (Event.SeqPartition and Seq).
	PostbackPos Position `json:"postback_pos"`
}

// ClaimRowVersion is the version of ClaimRow records.
const ClaimRowVersion = 1

// ClaimRow is a row of the claims table, keyed by a claim key. Every input
// the claims processor applies rewrites the row once, with Last holding that
// input's decision: the table's changelog is the exactly-once log of claim
// decisions that the verdicts processor reads. Size bound: one postback plus
// a watermark per source (3 lanes x partitions), whatever the traffic.
type ClaimRow struct {
	V int `json:"v"`
	// Owner is the id of the postback holding the claim; Day and ClaimedAt
	// (its event time) let maintenance delete the row when it is over.
	Owner     string    `json:"owner"`
	Day       string    `json:"day"`
	ClaimedAt time.Time `json:"claimed_at"`
	// Applied: the replay guard (see Watermarks).
	Applied Watermarks `json:"applied"`
	// Last is the decision of the input this write applied.
	Last *ClaimDecision `json:"last,omitempty"`
}

// ClaimDecision is a postback after one of its claims was decided.
type ClaimDecision struct {
	// Pos is the claims processor's input position that this decision
	// applied (lane p or q): the identity of everything emitted from it.
	Pos         Position `json:"pos"`
	Postback    Postback `json:"postback"`
	PostbackPos Position `json:"postback_pos"`
	// Got holds the claims decided so far; Dup the one that was a
	// duplicate (the postback stops there), 0 if none.
	Got Claims `json:"got"`
	Dup Claims `json:"dup,omitempty"`
}

// Verdict is the verdict and reason of a postback whose claims are decided:
// a duplicate of the claim in dup, else counted.
func Verdict(dup Claims) (verdict, reason string) {
	switch {
	case dup&ClaimVisitor != 0:
		return VerdictDuplicate, ReasonDuplicateVisitor
	case dup&ClaimEventID != 0:
		return VerdictDuplicate, ReasonDuplicateEventID
	}
	return VerdictCounted, ""
}

// NewEvent is the Event of pb with its verdict, emitted because of the input
// at src.
func NewEvent(pb *Postback, pos, src Position, dup Claims) Event {
	verdict, reason := Verdict(dup)
	attrs := pb.Attrs
	attrs.EventType = EventType(pb)
	return Event{
		V: EventVersion, ID: pb.ID, ReceivedAt: pb.ReceivedAt, CustomerCode: pb.CustomerCode, Day: pb.Day,
		Attrs: attrs, Verdict: verdict, Reason: reason, SeqPartition: pos.Partition, Seq: pos.Offset, Src: src,
	}
}

// CheckPostback reports why the processors cannot process pb, or "".
func CheckPostback(pb *Postback) string {
	switch {
	case pb.V < 1:
		return "missing schema version v"
	case pb.V > PostbackVersion:
		return fmt.Sprintf("schema version %d is newer than this processor's %d: upgrade the processor", pb.V, PostbackVersion)
	case pb.ID == "":
		return "missing id"
	case pb.CustomerCode == "" || pb.Product == "" || pb.InfluencerID == "":
		return "missing customer_code, product or influencer_id"
	case pb.ReceivedAt.IsZero():
		return "missing received_at"
	}
	if _, err := time.Parse(DayLayout, pb.Day); err != nil {
		return "day is not YYYY-MM-DD"
	}
	return ""
}

// AppendPostbackKey appends PostbackKey(pb) to b without building the
// intermediate strings of the parts that need no escaping (the edge calls
// it once per postback).
func AppendPostbackKey(b []byte, pb *Postback) []byte {
	var parts [5]string
	var n int
	switch firstClaim(pb) {
	case ClaimVisitor:
		b = append(b, claimPrefixVisitor...)
		parts, n = [5]string{pb.CustomerCode, pb.Product, EventType(pb), pb.Day, pb.Visitor}, 5
	case ClaimEventID:
		b = append(b, claimPrefixEventID...)
		parts, n = [5]string{pb.CustomerCode, pb.EventID}, 2
	default:
		parts, n = [5]string{pb.CustomerCode, pb.Product, pb.InfluencerID, pb.Campaign, pb.Day}, 5
	}
	for i, p := range parts[:n] {
		if i > 0 {
			b = append(b, '/')
		}
		b = appendEscaped(b, p)
	}
	return b
}

func firstClaim(pb *Postback) Claims { return NextClaim(WantedClaims(pb), 0) }

// appendEscaped appends url.PathEscape(s), copying s as is when nothing
// needs escaping (the common case).
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~') {
			return append(b, url.PathEscape(s)...)
		}
	}
	return append(b, s...)
}
