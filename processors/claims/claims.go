// Package claims is the goka group that decides claims: whether a postback
// repeats a visitor's action of the day (anti-cheat) or a customer's event
// id. Each claim is a row of its own, keyed by the claim
// (schemas.VisitorClaimKey, schemas.EventIDClaimKey), so a row's size does
// not depend on the traffic: one owner, one watermark per input source and
// the last decision (schemas.ClaimRow).
//
// Inputs: the postbacks topic (postbacks keyed by their first claim) and the
// claims topic (postbacks the verdicts processor forwards to their next
// claim). The group emits nothing: every applied input rewrites its row
// once, with the decision in ClaimRow.Last, and the table's changelog is the
// exactly-once log of decisions that the verdicts processor reads. A
// redelivered input, or a copy re-sent by the verdicts processor after a
// restart, is at or below its source's watermark and changes nothing.
//
// It does not count and does not emit events: see the verdicts and stats
// packages. Maintenance deletes visitor claims of days that are over and
// event-id claims past their retention.
package claims

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/streamtools/streamtools/processors/internal/gokautil"
	"github.com/streamtools/streamtools/schemas"
)

// Group is the goka group of names.
func Group(n schemas.Names) goka.Group { return goka.Group(n.Group(schemas.GroupClaims)) }

const visitMaintain = "maintain"

// Config configures the claims processor.
type Config struct {
	gokautil.GroupConfig
	// EventIDRetention is how long a sender's event_id stays a duplicate
	// key, in event time. Default (zero) 7 days; at least 1 hour.
	EventIDRetention time.Duration
	// Grace is added to every deletion cutoff of maintenance, so that
	// partitions replaying at different speeds still find the claims they
	// need. Default 2 hours.
	Grace time.Duration
}

func (c *Config) setDefaults() {
	if c.EventIDRetention == 0 {
		c.EventIDRetention = 7 * 24 * time.Hour
	}
	if c.Grace == 0 {
		c.Grace = 2 * time.Hour
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate names the field to fix.
func (c Config) Validate() error {
	switch {
	case c.EventIDRetention != 0 && c.EventIDRetention < time.Hour:
		return fmt.Errorf("claims: EventIDRetention %v is under 1h: use 1h or more (default 7 days)", c.EventIDRetention)
	case c.Grace < 0:
		return fmt.Errorf("claims: Grace %v is negative: use 0 for the default", c.Grace)
	}
	return c.GroupConfig.Validate("claims")
}

// Retention is how long the claims table topic must keep a row (its
// cleanup policy is delete, not compact: see processors.TopicSpecs).
func (c Config) Retention() time.Duration {
	c.setDefaults()
	return c.EventIDRetention + c.Grace + 48*time.Hour
}

// Processor is a running claims group member.
type Processor struct {
	*gokautil.Processor
	cfg Config
	// clocks: per table partition, the latest ReceivedAt applied (unix
	// nanoseconds): the event-time clock of maintenance, so that a replay
	// deletes a partition's claims only once that partition's own input has
	// passed them (partitions replay at different speeds).
	clocksMu sync.Mutex // guards clocks
	clocks   map[int32]int64
}

// New builds the processor. The postbacks, claims and dead-letter topics
// and the table topic must exist (processors.TopicSpecs).
func New(cfg Config) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p := &Processor{cfg: cfg, clocks: map[int32]int64{}}
	n := cfg.Names
	g := goka.DefineGroup(Group(n),
		goka.Input(goka.Stream(n.Postbacks()), new(codec.Bytes), p.onPostback),
		goka.Input(goka.Stream(n.Claims()), new(codec.Bytes), p.onRequest),
		goka.Persist(schemas.ClaimRowCodec),
		goka.Output(goka.Stream(n.DeadLetter()), schemas.DeadLetterCodec),
		goka.Visitor(visitMaintain, p.onMaintain),
	)
	var err error
	p.Processor, err = cfg.NewGroup(g)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// onPostback applies the first claim of a postback keyed by a claim. A
// record keyed otherwise is the verdicts processor's to route or
// dead-letter; this one never decodes it.
func (p *Processor) onPostback(ctx goka.Context, msg any) {
	if schemas.ClaimOfKey(ctx.Key()) == 0 {
		return
	}
	raw, _ := msg.([]byte)
	var pb schemas.Postback
	if err := schemas.Unmarshal(raw, &pb); err != nil {
		p.DeadLetter(ctx, raw, "decoding postback: "+err.Error())
		return
	}
	if reason := schemas.CheckPostback(&pb); reason != "" {
		p.DeadLetter(ctx, raw, reason)
		return
	}
	first := schemas.NextClaim(schemas.WantedClaims(&pb), 0)
	if first == 0 || ctx.Key() != schemas.ClaimKey(&pb, first) {
		p.DeadLetter(ctx, raw, "record key is a claim key but not the postback's first claim: key postbacks with schemas.PostbackKey, or by customer/product/influencer")
		return
	}
	pos := schemas.Position{Lane: schemas.LanePostbacks, Partition: ctx.Partition(), Offset: ctx.Offset()}
	p.apply(ctx, first, pos, pos, &pb, pos, 0)
}

// onRequest applies the claim a forwarded postback needs next.
func (p *Processor) onRequest(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	var req schemas.ClaimRequest
	if err := schemas.Unmarshal(raw, &req); err != nil {
		p.DeadLetter(ctx, raw, "decoding claim request: "+err.Error())
		return
	}
	c := schemas.ClaimOfKey(ctx.Key())
	switch {
	case req.V < 1 || req.V > schemas.ClaimRequestVersion:
		p.DeadLetter(ctx, raw, fmt.Sprintf("claim request version %d: this processor reads 1 to %d", req.V, schemas.ClaimRequestVersion))
		return
	case req.Src.Lane != schemas.LaneForwarded && req.Src.Lane != schemas.LaneForwardedRequest && req.Src.Lane != schemas.LaneRouted:
		p.DeadLetter(ctx, raw, fmt.Sprintf("claim request src %q: want lane f, g or r", req.Src))
		return
	case schemas.CheckPostback(&req.Postback) != "":
		p.DeadLetter(ctx, raw, "claim request: "+schemas.CheckPostback(&req.Postback))
		return
	case c == 0 || ctx.Key() != schemas.ClaimKey(&req.Postback, c):
		p.DeadLetter(ctx, raw, "record key is not the claim key of the postback")
		return
	}
	in := schemas.Position{Lane: schemas.LaneRequests, Partition: ctx.Partition(), Offset: ctx.Offset()}
	p.apply(ctx, c, req.Src, in, &req.Postback, req.PostbackPos, req.Got)
}

// apply decides claim c (the row's) for pb, once per src: the first
// postback to ask holds the claim; an expired event id is free again
// (decided in event time, so a replay decides the same). in is this input's
// own position, the decision's identity downstream.
func (p *Processor) apply(ctx goka.Context, c schemas.Claims, src, in schemas.Position, pb *schemas.Postback, pos schemas.Position, got schemas.Claims) {
	row, _ := ctx.Value().(*schemas.ClaimRow)
	if row == nil {
		row = &schemas.ClaimRow{V: schemas.ClaimRowVersion}
	} else if row.Applied.Applied(src) {
		p.Applied(true)
		return
	}
	row.Applied.Advance(src)
	d := &schemas.ClaimDecision{Pos: in, Postback: *pb, PostbackPos: pos, Got: got | c}
	switch {
	case row.Owner == "",
		c == schemas.ClaimEventID && pb.ReceivedAt.Sub(row.ClaimedAt) >= p.cfg.EventIDRetention:
		row.Owner, row.Day, row.ClaimedAt = pb.ID, pb.Day, pb.ReceivedAt
	case row.Owner == pb.ID:
		// The holder asking again (a second send of the same record by a
		// producer outside StreamTools): the same answer.
	default:
		d.Dup = c
	}
	row.V = schemas.ClaimRowVersion
	row.Last = d
	ctx.SetValue(row)
	p.Applied(false)
	p.clocksMu.Lock()
	if t := pb.ReceivedAt.UnixNano(); t > p.clocks[ctx.Partition()] {
		p.clocks[ctx.Partition()] = t
	}
	p.clocksMu.Unlock()
}

// Maintain visits every row of the partitions this instance owns and
// deletes visitor claims of days over everywhere and event-id claims older
// than the retention (tombstones in the changelog), in each partition's
// event time (capped by the wall clock).
func (p *Processor) Maintain(ctx context.Context) error {
	if err := p.Proc.VisitAll(ctx, visitMaintain, time.Now()); err != nil {
		return fmt.Errorf("claims: visiting the table: %w", err)
	}
	return nil
}

func (p *Processor) onMaintain(ctx goka.Context, meta any) {
	now, _ := meta.(time.Time)
	row, _ := ctx.Value().(*schemas.ClaimRow)
	p.clocksMu.Lock()
	clock := p.clocks[ctx.Partition()]
	p.clocksMu.Unlock()
	if row == nil || clock == 0 {
		return // nothing applied in this partition since start: no clock
	}
	cutoff := time.Unix(0, clock)
	if cutoff.After(now) {
		cutoff = now
	}
	switch schemas.ClaimOfKey(ctx.Key()) {
	case schemas.ClaimVisitor:
		over, ok := dayOverEverywhere(row.Day)
		if !ok || over.Add(p.cfg.Grace).Before(cutoff) {
			ctx.Delete()
		}
	case schemas.ClaimEventID:
		if row.ClaimedAt.Add(p.cfg.EventIDRetention + p.cfg.Grace).Before(cutoff) {
			ctx.Delete()
		}
	}
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
