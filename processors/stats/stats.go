// Package stats is the goka group that keeps the absolute counts of every
// day row (customer, product, influencer, campaign, day in the customer's
// time zone), by event type, from the events topic. Its table changelog is
// what the sink writes to daily_stats and what widgetd sums per influencer
// and per campaign.
//
// A row applies each event once: it keeps, per source of the verdicts
// processor (lane and partition), the highest position applied
// (schemas.Watermarks), so a copy emitted again after a restart changes
// nothing. Row size bound: the identity, one entry per event type (at most
// MaxEventTypes), and at most one watermark per source (lanes p, q and r x
// partitions), whatever the traffic.
package stats

import (
	"fmt"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/streamtools/streamtools/processors/internal/gokautil"
	"github.com/streamtools/streamtools/schemas"
)

// MaxEventTypes is the most event types one day row counts; events of
// further types go to the dead-letter topic. It bounds the row's size
// (with the watermarks, under 16 KiB).
const MaxEventTypes = 100

// maxPartitions bounds the partition of an event's src, and so the row's
// watermarks.
const maxPartitions = 1024

// Group is the goka group of names.
func Group(n schemas.Names) goka.Group { return goka.Group(n.Group(schemas.GroupStats)) }

// Config configures the processor.
type Config = gokautil.GroupConfig

// Processor is a running stats group member.
type Processor struct {
	*gokautil.Processor
	cfg Config
}

// New builds the processor. The events and dead-letter topics must exist.
func New(cfg Config) (*Processor, error) {
	if err := cfg.Validate("stats"); err != nil {
		return nil, err
	}
	p := &Processor{cfg: cfg}
	n := cfg.Names
	g := goka.DefineGroup(Group(n),
		goka.Input(goka.Stream(n.Events()), new(codec.Bytes), p.onEvent),
		goka.Persist(newRowCodec()),
		goka.Output(goka.Stream(n.DeadLetter()), schemas.DeadLetterCodec),
	)
	var err error
	p.Processor, err = cfg.NewGroup(g)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (p *Processor) onEvent(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	ev := new(schemas.Event)
	if err := schemas.Unmarshal(raw, ev); err != nil {
		p.DeadLetter(ctx, raw, "decoding event: "+err.Error())
		return
	}
	switch {
	case ev.V < 1 || ev.V > schemas.EventVersion:
		p.DeadLetter(ctx, raw, fmt.Sprintf("event schema version %d: this processor reads 1 to %d", ev.V, schemas.EventVersion))
		return
	case ev.Src.IsZero():
		p.DeadLetter(ctx, raw, "event without src (written by an older processor version): replay under a new --generation")
		return
	case !schemas.KnownLane(ev.Src.Lane) || ev.Src.Partition < 0 || ev.Src.Partition >= maxPartitions:
		p.DeadLetter(ctx, raw, fmt.Sprintf("event src %q is not a position the verdicts processor writes", ev.Src))
		return
	case ctx.Key() != schemas.DayKey(ev.CustomerCode, ev.Product, ev.InfluencerID, ev.Campaign, ev.Day):
		p.DeadLetter(ctx, raw, "record key is not the event's day key (customer/product/influencer/campaign/day)")
		return
	case ev.Verdict != schemas.VerdictCounted && ev.Verdict != schemas.VerdictDuplicate:
		p.DeadLetter(ctx, raw, fmt.Sprintf("unknown verdict %q", ev.Verdict))
		return
	}
	row, _ := ctx.Value().(*schemas.Stats)
	if row == nil {
		row = &schemas.Stats{CustomerCode: ev.CustomerCode, Product: ev.Product, InfluencerID: ev.InfluencerID, Campaign: ev.Campaign, Day: ev.Day}
	} else if row.Applied.Applied(ev.Src) {
		p.Applied(true)
		return // a copy or a redelivery: applied already
	}
	if _, ok := row.ByType[ev.EventType]; !ok && len(row.ByType) >= MaxEventTypes {
		// A sender inventing event types would grow one row without
		// bound, until goka refuses to write it and the group stops.
		p.DeadLetter(ctx, raw, fmt.Sprintf("day row already counts %d event types: the event type %q is not counted", MaxEventTypes, ev.EventType))
		return
	}
	row.V = schemas.StatsVersion
	Apply(row, ev)
	ctx.SetValue(row)
	p.Applied(false)
}

// Apply adds ev to row's absolute counts and raises its watermark. The
// caller checks the replay guard (row.Applied.Applied(ev.Src)).
func Apply(row *schemas.Stats, ev *schemas.Event) {
	if row.ByType == nil {
		row.ByType = map[string]schemas.Counts{}
	}
	c := row.ByType[ev.EventType]
	if ev.Verdict == schemas.VerdictCounted {
		c.Counted++
		row.Total++
	} else {
		if c.Duplicates == nil {
			c.Duplicates = map[string]int64{}
		}
		c.Duplicates[ev.Reason]++
	}
	row.ByType[ev.EventType] = c
	row.Applied.Advance(ev.Src)
	// Event time, not wall clock: a replay rebuilds the same rows. Never
	// backwards: events of one row arrive in no particular time order, and
	// readers (the sink) ignore a row whose updated_at goes back.
	if ev.ReceivedAt.After(row.UpdatedAt) {
		row.UpdatedAt = ev.ReceivedAt
	}
}
