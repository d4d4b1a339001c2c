// Package statscore is the one implementation behind the three stats groups
// (per influencer, per campaign, per day): a goka group table of
// schemas.Stats rows with absolute counts, fed by an events topic. Each
// group's own package names its group, input and key.
package statscore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"

	"github.com/streamtools/streamtools/processors/internal/gokautil"
	"github.com/streamtools/streamtools/processors/internal/procmetrics"
	"github.com/streamtools/streamtools/schemas"
)

// Spec is what tells the three stats groups apart.
type Spec struct {
	Group goka.Group
	Input goka.Stream
	// Key is the row key of an event, and Identity fills a new row's
	// identity fields (customer, product, influencer, campaign, day).
	Key      func(ev *schemas.Event) string
	Identity func(ev *schemas.Event) schemas.Stats
}

// Config configures a stats processor.
type Config struct {
	Brokers []string
	Names   schemas.Names
	// StateDir is this instance's local table storage, wiped at start.
	StateDir string
	Log      *slog.Logger
	// Replication of the table topic. Default 1 (one broker).
	Replication int
	// Metrics records events applied and dead letters; nil records nothing.
	Metrics *procmetrics.Metrics
}

// Validate names the field to fix.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("stats: Brokers is empty: list at least one host:port")
	case c.StateDir == "":
		return errors.New("stats: StateDir is empty: set a local directory for the table")
	}
	return c.Names.Validate()
}

// Processor is a running stats group member.
type Processor struct {
	spec Spec
	cfg  Config
	proc *goka.Processor
}

// New builds a stats processor. Its input and the dead-letter topic must
// exist; goka creates the table topic.
func New(spec Spec, cfg Config) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	p := &Processor{spec: spec, cfg: cfg}
	g := goka.DefineGroup(spec.Group,
		goka.Input(spec.Input, new(codec.Bytes), p.onEvent),
		goka.Persist(schemas.StatsCodec),
		goka.Output(goka.Stream(cfg.Names.DeadLetter()), schemas.DeadLetterCodec),
	)
	opts, err := gokautil.ProcessorOptions(gokautil.Options{
		StateDir: cfg.StateDir, Log: cfg.Log, ClientID: string(spec.Group),
	}, cfg.Replication)
	if err != nil {
		return nil, err
	}
	p.proc, err = goka.NewProcessor(cfg.Brokers, g, opts...)
	if err != nil {
		return nil, fmt.Errorf("stats %s: creating the goka processor: %w", spec.Group, err)
	}
	return p, nil
}

// Run processes until ctx ends.
func (p *Processor) Run(ctx context.Context) error {
	if err := p.proc.Run(ctx); err != nil {
		return fmt.Errorf("stats %s: running: %w", p.spec.Group, err)
	}
	return nil
}

// WaitForReady blocks until the table is recovered and input flows.
func (p *Processor) WaitForReady(ctx context.Context) error { return p.proc.WaitForReadyContext(ctx) }

func (p *Processor) deadLetter(ctx goka.Context, raw []byte, reason string) {
	p.cfg.Log.Warn("stats: dead letter", "group", p.spec.Group, "topic", ctx.Topic(), "offset", ctx.Offset(), "reason", reason)
	gokautil.DeadLetter(ctx, goka.Stream(p.cfg.Names.DeadLetter()), string(p.spec.Group), raw, reason)
	p.cfg.Metrics.DeadLetter(string(p.spec.Group))
}

func (p *Processor) onEvent(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	ev := new(schemas.Event)
	if err := json.Unmarshal(raw, ev); err != nil {
		p.deadLetter(ctx, raw, "decoding event: "+err.Error())
		return
	}
	switch {
	case ev.V < 1 || ev.V > schemas.EventVersion:
		p.deadLetter(ctx, raw, fmt.Sprintf("event schema version %d: this processor reads 1 to %d", ev.V, schemas.EventVersion))
		return
	case ctx.Key() != p.spec.Key(ev):
		p.deadLetter(ctx, raw, "record key does not match the event")
		return
	case ev.Verdict != schemas.VerdictCounted && ev.Verdict != schemas.VerdictDuplicate:
		p.deadLetter(ctx, raw, fmt.Sprintf("unknown verdict %q", ev.Verdict))
		return
	}
	row, _ := ctx.Value().(*schemas.Stats)
	if row == nil {
		r := p.spec.Identity(ev)
		row = &r
		row.V = schemas.StatsVersion
	} else if ev.Seq <= row.LastSeq {
		p.cfg.Metrics.Applied(string(p.spec.Group), true)
		return // a replay or redelivery: already applied
	}
	Apply(row, ev)
	ctx.SetValue(row)
	p.cfg.Metrics.Applied(string(p.spec.Group), false)
}

// Apply adds ev to row's absolute counts. The caller checks the replay
// guard (ev.Seq > row.LastSeq, or a new row).
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
	row.LastSeq = ev.Seq
	// Event time, not wall clock: a replay rebuilds identical rows. Never
	// backwards: two edges' clocks, or two requests racing to the broker, can
	// apply a later Seq with an earlier receive time, and readers (the sink)
	// ignore a row whose updated_at goes back.
	if ev.ReceivedAt.After(row.UpdatedAt) {
		row.UpdatedAt = ev.ReceivedAt
	}
}
