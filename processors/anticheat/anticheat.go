// Package anticheat is the goka group that gives every postback its verdict
// (counted, or duplicate by visitor or by event_id) and emits it, in input
// order per influencer, to the events topics the stats groups count.
//
// It owns the anticheat table (influencer ordering rows and claims), its
// loop topic, and the maintenance that deletes claims of past days and
// expired event ids. It does not count: see the stats packages. The design,
// and why it gives exact counts under at-least-once delivery, is in
// the README (Verdicts and exact counts).
package anticheat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/streamtools/streamtools/processors/internal/gokautil"
	"github.com/streamtools/streamtools/processors/internal/procmetrics"
	"github.com/streamtools/streamtools/schemas"
)

// Group is the goka group of names.
func Group(n schemas.Names) goka.Group { return goka.Group(n.Group(schemas.GroupAnticheat)) }

// Table is the changelog topic of the group's table.
func Table(n schemas.Names) goka.Table { return goka.Table(n.TableTopic(string(Group(n)))) }

const visitMaintain = "maintain"

// Config configures the anticheat processor.
type Config struct {
	Brokers []string
	Names   schemas.Names
	// StateDir is this instance's local table storage, wiped at start.
	StateDir string
	Log      *slog.Logger
	// EventIDRetention is how long a sender's event_id stays a duplicate
	// key. Default (zero) 7 days; at least 1 hour.
	EventIDRetention time.Duration
	// MaintainEvery is the period of the maintenance visit that deletes
	// claims of past days and expired event ids and re-sends stale claims.
	// Default (zero) 1 hour; negative disables the ticker (call Maintain).
	MaintainEvery time.Duration
	// Grace is added to every deletion cutoff, so that partitions replaying
	// at different speeds still see the claims they need. Default 2 hours.
	Grace time.Duration
	// ResendAfter is how old an undecided pending postback must be before
	// maintenance re-sends its claims. Default 1 minute.
	ResendAfter time.Duration
	// Replication of the table and loop topics. Default 1 (one broker).
	Replication int
	// Metrics records verdicts, re-emitted copies and dead letters; nil
	// records nothing.
	Metrics *procmetrics.Metrics
}

func (c *Config) setDefaults() {
	if c.EventIDRetention == 0 {
		c.EventIDRetention = 7 * 24 * time.Hour
	}
	if c.MaintainEvery == 0 {
		c.MaintainEvery = time.Hour
	}
	if c.Grace == 0 {
		c.Grace = 2 * time.Hour
	}
	if c.ResendAfter == 0 {
		c.ResendAfter = time.Minute
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Validate names the field to fix.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("anticheat: Brokers is empty: list at least one host:port")
	case c.StateDir == "":
		return errors.New("anticheat: StateDir is empty: set a local directory for the table")
	case c.EventIDRetention != 0 && c.EventIDRetention < time.Hour:
		return fmt.Errorf("anticheat: EventIDRetention %v is under 1h: use 1h or more (default 7 days)", c.EventIDRetention)
	case c.Grace < 0:
		return fmt.Errorf("anticheat: Grace %v is negative: use 0 for the default", c.Grace)
	}
	return c.Names.Validate()
}

// Processor is a running anticheat group member.
type Processor struct {
	cfg   Config
	names schemas.Names
	proc  *goka.Processor
	// maxReceived is the latest ReceivedAt seen (unix nanoseconds): the
	// event-time clock of maintenance, so a replay deletes claims only once
	// its own stream has passed them.
	maxReceived atomic.Int64
}

// New builds the processor. The postbacks, events and dead-letter topics
// must exist (kafkautil.EnsureTopics); goka creates the table and loop.
func New(cfg Config) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p := &Processor{cfg: cfg, names: cfg.Names}
	n := cfg.Names
	g := goka.DefineGroup(Group(n),
		goka.Input(goka.Stream(n.Postbacks()), new(codec.Bytes), p.onPostback),
		goka.Loop(loopCodec{}, p.onLoop),
		goka.Persist(rowCodec{cache: newRowCache()}),
		goka.Output(goka.Stream(n.Events()), eventCodec{}),
		goka.Output(goka.Stream(n.EventsByCampaign()), eventCodec{}),
		goka.Output(goka.Stream(n.EventsByDay()), eventCodec{}),
		goka.Output(goka.Stream(n.DeadLetter()), schemas.DeadLetterCodec),
		goka.Visitor(visitMaintain, p.onMaintain),
	)
	opts, err := gokautil.ProcessorOptions(gokautil.Options{
		StateDir: cfg.StateDir, Log: cfg.Log, ClientID: string(Group(n)),
	}, cfg.Replication)
	if err != nil {
		return nil, err
	}
	p.proc, err = goka.NewProcessor(cfg.Brokers, g, opts...)
	if err != nil {
		return nil, fmt.Errorf("anticheat: creating the goka processor: %w", err)
	}
	return p, nil
}

// Run processes until ctx ends, running maintenance every MaintainEvery.
func (p *Processor) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if p.cfg.MaintainEvery > 0 {
		go func() {
			t := time.NewTicker(p.cfg.MaintainEvery)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					if err := p.Maintain(ctx); err != nil && ctx.Err() == nil {
						p.cfg.Log.Warn("anticheat maintenance", "err", err)
					}
				}
			}
		}()
	}
	if err := p.proc.Run(ctx); err != nil {
		return fmt.Errorf("anticheat: running: %w", err)
	}
	return nil
}

// WaitForReady blocks until the table is recovered and input flows.
func (p *Processor) WaitForReady(ctx context.Context) error { return p.proc.WaitForReadyContext(ctx) }

// maintainMeta is what one maintenance visit decides with.
type maintainMeta struct {
	// Cutoff is the event-time clock: min(wall clock, latest ReceivedAt).
	Cutoff time.Time
	Now    time.Time
}

// Maintain visits every row of the partitions this instance owns: it
// deletes visitor claims of days over everywhere and event-id claims older
// than the retention (tombstones in the changelog), and re-sends the claims
// and releases of pending postbacks older than ResendAfter.
func (p *Processor) Maintain(ctx context.Context) error {
	now := time.Now()
	cutoff := time.Unix(0, p.maxReceived.Load())
	if p.maxReceived.Load() == 0 {
		cutoff = time.Time{}
	}
	if cutoff.After(now) {
		cutoff = now
	}
	if err := p.proc.VisitAll(ctx, visitMaintain, maintainMeta{Cutoff: cutoff, Now: now}); err != nil {
		return fmt.Errorf("anticheat: visiting the table: %w", err)
	}
	return nil
}

func (p *Processor) deadLetter(ctx goka.Context, raw []byte, reason string) {
	p.cfg.Log.Warn("anticheat: dead letter", "topic", ctx.Topic(), "partition", ctx.Partition(), "offset", ctx.Offset(), "reason", reason)
	gokautil.DeadLetter(ctx, goka.Stream(p.names.DeadLetter()), string(Group(p.names)), raw, reason)
	p.cfg.Metrics.DeadLetter(string(Group(p.names)))
}

// validate reports why a postback cannot be processed, or "".
func validate(key string, pb *schemas.Postback) string {
	switch {
	case pb.V < 1:
		return "missing schema version v"
	case pb.V > schemas.PostbackVersion:
		return fmt.Sprintf("schema version %d is newer than this processor's %d: upgrade the processor", pb.V, schemas.PostbackVersion)
	case pb.ID == "":
		return "missing id"
	case pb.CustomerCode == "" || pb.Product == "" || pb.InfluencerID == "":
		return "missing customer_code, product or influencer_id"
	case pb.ReceivedAt.IsZero():
		return "missing received_at"
	case key != schemas.InfluencerKey(pb.CustomerCode, pb.Product, pb.InfluencerID):
		return "record key does not match customer_code/product/influencer_id"
	}
	if _, err := time.Parse(schemas.DayLayout, pb.Day); err != nil {
		return "day is not YYYY-MM-DD"
	}
	return ""
}

func (p *Processor) onPostback(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	pb := new(schemas.Postback)
	if err := json.Unmarshal(raw, pb); err != nil {
		p.deadLetter(ctx, raw, "decoding postback: "+err.Error())
		return
	}
	if reason := validate(ctx.Key(), pb); reason != "" {
		p.deadLetter(ctx, raw, reason)
		return
	}
	if t := pb.ReceivedAt.UnixNano(); t > p.maxReceived.Load() {
		p.maxReceived.Store(t) // a benign race between partitions: it only moves maintenance
	}
	row := p.influencerRow(ctx)
	inf := row.Influencer
	seq := ctx.Offset()
	if seq <= inf.LastEnqueued {
		// A redelivery (crash or rebalance before the commit): re-send what
		// this postback may have failed to send; claims and releases are
		// idempotent.
		p.resendOwn(ctx, inf, seq)
		return
	}
	if pb.EventType == "" {
		pb.EventType = schemas.DefaultEventType
	}
	e := Pending{
		Seq: seq, Attrs: pb.Attrs, SeqPartition: ctx.Partition(), ID: pb.ID, Customer: pb.CustomerCode,
		Product: pb.Product, EventType: pb.EventType, Day: pb.Day, EventID: pb.EventID, At: pb.ReceivedAt,
		EnqueuedAt: time.Now().UTC(),
	}
	if pb.EventID != "" {
		e.Want |= claimEventID
	}
	if pb.AntiCheat && pb.Visitor != "" {
		e.Want |= claimVisitor
		e.Visitor = pb.Visitor
	}
	e.decide() // no claim needed: counted at once
	inf.Pending = append(inf.Pending, e)
	inf.LastEnqueued = seq
	p.sendClaims(ctx, &inf.Pending[len(inf.Pending)-1])
	p.releaseReady(ctx, inf, seq)
	ctx.SetValue(row)
}

// influencerRow returns the row at ctx.Key(), new if absent.
func (p *Processor) influencerRow(ctx goka.Context) *Row {
	row, _ := ctx.Value().(*Row)
	if row == nil || row.Influencer == nil {
		row = &Row{V: RowVersion, Influencer: &Influencer{LastEnqueued: -1, LastApplied: -1}}
	}
	return row
}

func (p *Processor) sendClaims(ctx goka.Context, e *Pending) {
	for _, kind := range []uint8{claimEventID, claimVisitor} {
		if e.Want&kind == 0 || e.Got&kind != 0 {
			continue
		}
		ctx.Loopback(claimKey(kind, e), &loopMsg{
			V: RowVersion, Kind: kindClaim, Claim: kind, Origin: ctx.Key(), Seq: e.Seq,
			PostbackID: e.ID, Day: e.Day, ReceivedAt: e.At,
		})
	}
}

func (p *Processor) sendRelease(ctx goka.Context, e *Pending) {
	ev, err := e.encodeEvent()
	if err != nil {
		ctx.Fail(fmt.Errorf("anticheat: encoding an event: %w", err))
	}
	ctx.Loopback(ctx.Key(), &loopMsg{V: RowVersion, Kind: kindRelease, Seq: e.Seq, Event: ev, Verdict: e.Verdict, Reason: e.Reason,
		ReceivedAt: e.At, CampaignKey: schemas.CampaignKey(e.Customer, e.Product, e.Attrs.InfluencerID, e.Attrs.Campaign),
		DayKey: schemas.DayKey(e.Customer, e.Product, e.Attrs.InfluencerID, e.Attrs.Campaign, e.Day)})
}

// releaseReady releases, in Seq order, every decided entry after the
// released prefix, stopping at the first undecided one. by is the Seq of
// the entry whose claim answer (or postback) this callback handles: the
// entries record it, so that a redelivery of that trigger re-sends exactly
// the releases its first delivery sent (resendOwn).
func (p *Processor) releaseReady(ctx goka.Context, inf *Influencer, by int64) {
	for i := range inf.Pending {
		e := &inf.Pending[i]
		if e.Released {
			continue
		}
		if !e.decided() {
			return
		}
		e.Released = true
		e.ReleasedBy = by + 1
		p.sendRelease(ctx, e)
	}
}

// resendFrom re-sends, for the entries from seq on, the claims still
// unanswered and the releases already decided. Used when a release finds
// an earlier entry unapplied (possible only after a crash), and by
// resendOwn for rows of earlier versions.
func (p *Processor) resendFrom(ctx goka.Context, inf *Influencer, seq int64) {
	for i := range inf.Pending {
		e := &inf.Pending[i]
		if e.Seq < seq {
			continue
		}
		if e.Released {
			p.sendRelease(ctx, e)
			continue
		}
		if e.Seq == seq {
			p.sendClaims(ctx, e)
		}
	}
}

// resendOwn handles the redelivery of a trigger of entry seq (its postback
// or one of its claim answers), whose first delivery's sends may have been
// lost in a crash: it re-sends the entry's unanswered claims and the
// releases that a trigger of this entry sent (ReleasedBy), in Seq order.
// Releases sent by other triggers are theirs to re-send: re-sending every
// release behind seq, as earlier versions did, made each redelivered
// trigger of a long queue re-send the whole queue, and every copy is
// emitted again (measured: 243,352 copies for 4,000 postbacks after two
// hard kills).
func (p *Processor) resendOwn(ctx goka.Context, inf *Influencer, seq int64) {
	for i := range inf.Pending {
		e := &inf.Pending[i]
		switch {
		case e.Seq < seq:
		case e.Released && e.ReleasedBy == 0:
			// A row of an earlier version: who released it is unknown.
			p.resendFrom(ctx, inf, seq)
			return
		case e.Released:
			if e.ReleasedBy == seq+1 {
				p.sendRelease(ctx, e)
			}
		case e.Seq == seq:
			p.sendClaims(ctx, e)
		}
	}
}

func (p *Processor) onLoop(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	m, err := decodeLoop(raw)
	if err != nil {
		p.deadLetter(ctx, raw, "decoding loop message: "+err.Error())
		return
	}
	if m.V > RowVersion {
		p.deadLetter(ctx, raw, fmt.Sprintf("loop message version %d is newer than this processor's %d: upgrade the processor", m.V, RowVersion))
		return
	}
	switch m.Kind {
	case kindClaim:
		p.onClaim(ctx, m)
	case kindAnswer:
		p.onAnswer(ctx, m)
	case kindRelease:
		if len(m.Event) == 0 {
			p.deadLetter(ctx, raw, "release without event")
			return
		}
		p.onRelease(ctx, m)
	default:
		p.deadLetter(ctx, raw, fmt.Sprintf("unknown loop message kind %q", m.Kind))
	}
}

// onClaim runs at a claim key: the first postback to claim it owns it.
func (p *Processor) onClaim(ctx goka.Context, m *loopMsg) {
	row, _ := ctx.Value().(*Row)
	if row == nil {
		row = &Row{V: RowVersion}
	}
	slot := &row.EventID
	if m.Claim == claimVisitor {
		slot = &row.Visitor
	}
	c := *slot
	dup := false
	switch {
	case c == nil,
		// an expired event id is free again (decided in event time)
		m.Claim == claimEventID && m.ReceivedAt.Sub(c.ClaimedAt) >= p.cfg.EventIDRetention:
		*slot = &Claim{Owner: m.PostbackID, Day: m.Day, ClaimedAt: m.ReceivedAt}
		ctx.SetValue(row)
	case c.Owner == m.PostbackID:
		// the same postback asking again: the same answer
	default:
		dup = true
	}
	ctx.Loopback(m.Origin, &loopMsg{V: RowVersion, Kind: kindAnswer, Claim: m.Claim, Seq: m.Seq, Duplicate: dup})
}

// onAnswer runs at the influencer key: it records a claim's answer and
// releases what became ready.
func (p *Processor) onAnswer(ctx goka.Context, m *loopMsg) {
	row, _ := ctx.Value().(*Row)
	if row == nil || row.Influencer == nil {
		return // the postback's redelivery will claim again
	}
	inf := row.Influencer
	for i := range inf.Pending {
		e := &inf.Pending[i]
		if e.Seq != m.Seq {
			continue
		}
		if e.Got&m.Claim != 0 {
			if e.Released {
				p.resendOwn(ctx, inf, e.Seq) // a redelivered answer
			}
			return
		}
		e.Got |= m.Claim
		if m.Duplicate {
			e.Dup |= m.Claim
		}
		e.decide()
		p.releaseReady(ctx, inf, e.Seq)
		ctx.SetValue(row)
		return
	}
	// Not pending: already applied (its release handles re-emission), or
	// not enqueued in the stored row (the postback's redelivery re-claims).
}

// onRelease runs at the influencer key: it emits the head event. Releases
// come back in Seq order; one that overtakes an unapplied earlier entry
// (possible only after a crash) re-sends the releases in order instead.
func (p *Processor) onRelease(ctx goka.Context, m *loopMsg) {
	row, _ := ctx.Value().(*Row)
	if row == nil || row.Influencer == nil {
		return
	}
	inf := row.Influencer
	if m.Seq <= inf.LastApplied {
		// A redelivery: emit again, since the first emits may be lost.
		// Consumers drop events at or below the Seq they applied.
		p.emit(ctx, m, false)
		return
	}
	if len(inf.Pending) == 0 {
		return
	}
	head := &inf.Pending[0]
	if head.Seq == m.Seq && head.Released {
		inf.Pending = inf.Pending[1:]
		inf.LastApplied = m.Seq
		p.emit(ctx, m, true)
		ctx.SetValue(row)
		return
	}
	for i := range inf.Pending {
		e := &inf.Pending[i]
		if e.Seq == m.Seq && e.Released {
			p.resendFrom(ctx, inf, head.Seq)
			return
		}
	}
	// Not released in the stored row: the trigger's redelivery releases it.
}

// emit writes the released event to the three events topics, in the same
// order for every event, so that each topic sees a key's events in Seq
// order. The release carries the event encoded with its verdict, and the
// keys (eventCodec passes the bytes); only releases of earlier versions
// (JSON, the event without its verdict) are decoded and encoded again.
func (p *Processor) emit(ctx goka.Context, m *loopMsg, first bool) {
	b, campaignKey, dayKey := []byte(m.Event), m.CampaignKey, m.DayKey
	if m.legacy {
		var ev schemas.Event
		if err := json.Unmarshal(m.Event, &ev); err != nil {
			ctx.Fail(fmt.Errorf("anticheat: decoding a released event: %w", err))
		}
		ev.Verdict, ev.Reason = m.Verdict, m.Reason
		var err error
		if b, err = json.Marshal(&ev); err != nil {
			ctx.Fail(fmt.Errorf("anticheat: encoding an event: %w", err))
		}
		campaignKey = schemas.CampaignKey(ev.CustomerCode, ev.Product, ev.InfluencerID, ev.Campaign)
		dayKey = schemas.DayKey(ev.CustomerCode, ev.Product, ev.InfluencerID, ev.Campaign, ev.Day)
	}
	n := p.names
	ctx.Emit(goka.Stream(n.Events()), ctx.Key(), b)
	ctx.Emit(goka.Stream(n.EventsByCampaign()), campaignKey, b)
	ctx.Emit(goka.Stream(n.EventsByDay()), dayKey, b)
	if first {
		p.cfg.Metrics.Verdict(m.Verdict, m.Reason, m.ReceivedAt)
	} else {
		p.cfg.Metrics.Reemitted()
	}
}

// eventCodec encodes Events, passing already encoded bytes through.
type eventCodec struct{}

func (eventCodec) Encode(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return schemas.EventCodec.Encode(v)
}
func (eventCodec) Decode(b []byte) (any, error) { return schemas.EventCodec.Decode(b) }

// onMaintain is the visitor: delete expired claims, re-send stale work.
func (p *Processor) onMaintain(ctx goka.Context, meta any) {
	mm, _ := meta.(maintainMeta)
	row, _ := ctx.Value().(*Row)
	if row == nil {
		return
	}
	key := ctx.Key()
	switch {
	case strings.HasPrefix(key, prefixVisitor):
		if row.Visitor == nil {
			return
		}
		over, ok := dayOverEverywhere(row.Visitor.Day)
		if !mm.Cutoff.IsZero() && (!ok || over.Add(p.cfg.Grace).Before(mm.Cutoff)) {
			ctx.Delete()
		}
	case strings.HasPrefix(key, prefixEventID):
		if row.EventID == nil {
			return
		}
		if !mm.Cutoff.IsZero() && row.EventID.ClaimedAt.Add(p.cfg.EventIDRetention+p.cfg.Grace).Before(mm.Cutoff) {
			ctx.Delete()
		}
	case row.Influencer != nil:
		inf := row.Influencer
		if len(inf.Pending) == 0 || !inf.Pending[0].EnqueuedAt.Add(p.cfg.ResendAfter).Before(mm.Now) {
			return
		}
		// Stale: something was lost (a claim, answer or release whose
		// trigger got committed anyway). Re-send everything in order.
		for i := range inf.Pending {
			e := &inf.Pending[i]
			if e.Released {
				p.sendRelease(ctx, e)
			} else {
				p.sendClaims(ctx, e)
			}
		}
	}
}
