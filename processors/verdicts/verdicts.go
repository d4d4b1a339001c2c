// Package verdicts is the stateless goka group that moves postbacks between
// claims and emits every postback's verdict to the events topic.
//
// Inputs: the postbacks topic, and the changelog of the claims table (the
// log of claim decisions). For each input it emits at most one record:
//   - a postback that needs no claim: its event, counted;
//   - a postback that needs a claim but is not keyed by one (an older or
//     outside producer keyed it by influencer): a claim request to its
//     first claim (postbacks keyed by a claim are the claims processor's);
//   - a claim decision: the event (a duplicate, or counted when no claim is
//     left), or a claim request to the next claim.
//
// Every emitted record carries the position of the input it came from
// (schemas.Position). After a restart the group reads its inputs again from
// the last committed offset and emits the same records with the same
// positions; the claims and stats rows apply each position once. It holds
// no table: nothing here grows with traffic.
package verdicts

import (
	"fmt"

	json "github.com/goccy/go-json"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/streamtools/streamtools/processors/internal/gokautil"
	"github.com/streamtools/streamtools/schemas"
)

// Group is the goka group of names.
func Group(n schemas.Names) goka.Group { return goka.Group(n.Group(schemas.GroupVerdicts)) }

// Config configures the processor.
type Config = gokautil.GroupConfig

// Processor is a running verdicts group member.
type Processor struct {
	*gokautil.Processor
	cfg Config
}

// New builds the processor. Its input and output topics must exist
// (processors.TopicSpecs).
func New(cfg Config) (*Processor, error) {
	if err := cfg.Validate("verdicts"); err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg}
	n := cfg.Names
	g := goka.DefineGroup(Group(n),
		goka.Input(goka.Stream(n.Postbacks()), new(codec.Bytes), p.onPostback),
		goka.Input(goka.Stream(n.ClaimsTable()), new(codec.Bytes), p.onDecision),
		goka.Output(goka.Stream(n.Claims()), new(codec.Bytes)),
		goka.Output(goka.Stream(n.Events()), new(codec.Bytes)),
		goka.Output(goka.Stream(n.DeadLetter()), schemas.DeadLetterCodec),
	)
	var err error
	p.Processor, err = cfg.NewGroup(g)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// onPostback routes a postback keyed by anything but a claim (those are the
// claims processor's, which reads them where they are).
func (p *Processor) onPostback(ctx goka.Context, msg any) {
	if schemas.ClaimOfKey(ctx.Key()) != 0 {
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
	pos := schemas.Position{Lane: schemas.LanePostbacks, Partition: ctx.Partition(), Offset: ctx.Offset()}
	src := schemas.Position{Lane: schemas.LaneRouted, Partition: ctx.Partition(), Offset: ctx.Offset()}
	first := schemas.NextClaim(schemas.WantedClaims(&pb), 0)
	if first == 0 {
		p.emitEvent(ctx, &pb, pos, src, 0)
		return
	}
	p.forward(ctx, first, &pb, pos, src, 0)
}

// onDecision reads one record of the claims table's changelog: one applied
// claim input. Tombstones (maintenance deletes) carry no decision.
func (p *Processor) onDecision(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	if len(raw) == 0 {
		return
	}
	var row schemas.ClaimRow
	if err := schemas.Unmarshal(raw, &row); err != nil {
		p.DeadLetter(ctx, raw, "decoding claim row: "+err.Error())
		return
	}
	if row.V > schemas.ClaimRowVersion {
		p.DeadLetter(ctx, raw, fmt.Sprintf("claim row version %d is newer than this processor's %d: upgrade the processor", row.V, schemas.ClaimRowVersion))
		return
	}
	d := row.Last
	if d == nil {
		return
	}
	if d.Pos.Lane != schemas.LanePostbacks && d.Pos.Lane != schemas.LaneRequests {
		p.DeadLetter(ctx, raw, fmt.Sprintf("claim decision position %q: want lane p or q", d.Pos))
		return
	}
	// The decision's own input position identifies what it emits: the
	// same decision written twice emits the same records.
	if d.Dup == 0 {
		if next := schemas.NextClaim(schemas.WantedClaims(&d.Postback), d.Got); next != 0 {
			src, _ := schemas.ForwardedFrom(d.Pos)
			p.forward(ctx, next, &d.Postback, d.PostbackPos, src, d.Got)
			return
		}
	}
	p.emitEvent(ctx, &d.Postback, d.PostbackPos, d.Pos, d.Dup)
}

func (p *Processor) forward(ctx goka.Context, c schemas.Claims, pb *schemas.Postback, pos, src schemas.Position, got schemas.Claims) {
	b, err := json.Marshal(&schemas.ClaimRequest{V: schemas.ClaimRequestVersion, Src: src, Got: got, Postback: *pb, PostbackPos: pos})
	if err != nil {
		ctx.Fail(fmt.Errorf("verdicts: encoding a claim request: %w", err))
	}
	ctx.Emit(goka.Stream(p.cfg.Names.Claims()), schemas.ClaimKey(pb, c), b)
}

func (p *Processor) emitEvent(ctx goka.Context, pb *schemas.Postback, pos, src schemas.Position, dup schemas.Claims) {
	ev := schemas.NewEvent(pb, pos, src, dup)
	b, err := json.Marshal(&ev)
	if err != nil {
		ctx.Fail(fmt.Errorf("verdicts: encoding an event: %w", err))
	}
	ctx.Emit(goka.Stream(p.cfg.Names.Events()), schemas.PostbackDayKey(pb), b)
	p.cfg.Metrics.Verdict(ev.Verdict, ev.Reason, ev.ReceivedAt)
}
