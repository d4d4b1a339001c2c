// Package processors runs the StreamTools goka groups together: anticheat
// (verdicts, in input order per influencer) and the three stats groups
// (absolute counts per influencer, per campaign and per day). Each group
// lives in its own package and can run alone; this package only wires them
// and creates the topics they read. `streamtools process` and
// `streamtools dev` run it; any number of instances share the partitions
// through goka's consumer groups.
package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/processors/anticheat"
	"github.com/streamtools/streamtools/processors/internal/procmetrics"
	"github.com/streamtools/streamtools/processors/internal/statscore"
	"github.com/streamtools/streamtools/processors/statscampaign"
	"github.com/streamtools/streamtools/processors/statsday"
	"github.com/streamtools/streamtools/processors/statsinfluencer"
	"github.com/streamtools/streamtools/schemas"
)

// Config configures one instance of the processors.
type Config struct {
	Brokers []string
	Names   schemas.Names
	// StateDir is this instance's local state (one LevelDB per group under
	// it), wiped at start: the table changelogs are the source of truth.
	// Two instances on one machine need two directories.
	StateDir string
	Log      *slog.Logger
	// Partitions of the topics created when missing. Default 6.
	Partitions int32
	// EventIDRetention, MaintainEvery and Grace: see anticheat.Config.
	EventIDRetention time.Duration
	MaintainEvery    time.Duration
	Grace            time.Duration
	// Replication of goka's table and loop topics. Default 1.
	Replication int
	// Registerer receives the processors' Prometheus metrics (postbacks by
	// verdict, re-emitted events, dead letters, stats applied, verdict lag).
	// Nil: no metrics.
	Registerer prometheus.Registerer
}

// Validate names the field to fix.
func (c Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("processors: Brokers is empty: list at least one host:port")
	case c.StateDir == "":
		return errors.New("processors: StateDir is empty: set a local directory for the tables")
	}
	return c.Names.Validate()
}

// Pipeline is one instance of the four groups.
type Pipeline struct {
	cfg       Config
	anticheat *anticheat.Processor
	stats     []*statscore.Processor
}

// New creates the input topics when missing (goka creates only its table
// and loop topics) and builds the four processors.
func New(ctx context.Context, cfg Config) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		return nil, fmt.Errorf("processors: creating kafka client: %w", err)
	}
	err = kafkautil.EnsureTopics(ctx, cl, kafkautil.CoreTopics(cfg.Names, cfg.Partitions))
	cl.Close()
	if err != nil {
		return nil, fmt.Errorf("processors: ensuring topics: %w", err)
	}
	m, err := procmetrics.New(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg}
	p.anticheat, err = anticheat.New(anticheat.Config{
		Brokers: cfg.Brokers, Names: cfg.Names, Log: cfg.Log,
		StateDir:         filepath.Join(cfg.StateDir, schemas.GroupAnticheat),
		EventIDRetention: cfg.EventIDRetention, MaintainEvery: cfg.MaintainEvery, Grace: cfg.Grace,
		Replication: cfg.Replication, Metrics: m,
	})
	if err != nil {
		return nil, err
	}
	for _, s := range []struct {
		name string
		new  func(statscore.Config) (*statscore.Processor, error)
	}{
		{schemas.GroupStatsInfluencer, statsinfluencer.New},
		{schemas.GroupStatsCampaign, statscampaign.New},
		{schemas.GroupStatsDay, statsday.New},
	} {
		sp, err := s.new(statscore.Config{
			Brokers: cfg.Brokers, Names: cfg.Names, Log: cfg.Log,
			StateDir: filepath.Join(cfg.StateDir, s.name), Replication: cfg.Replication, Metrics: m,
		})
		if err != nil {
			return nil, err
		}
		p.stats = append(p.stats, sp)
	}
	return p, nil
}

// Run runs the four groups until ctx ends or one fails (then it stops the
// others and returns the error).
func (p *Pipeline) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.anticheat.Run(gctx) })
	for _, s := range p.stats {
		g.Go(func() error { return s.Run(gctx) })
	}
	err := g.Wait()
	if ctx.Err() != nil {
		// Stopped on request. goka reports a stop during its start-up
		// (table recovery) as an error that does not wrap context.Canceled;
		// either way nothing uncommitted is lost: it is consumed again.
		return nil
	}
	return err
}

// WaitForReady blocks until every group recovered its table and consumes.
func (p *Pipeline) WaitForReady(ctx context.Context) error {
	if err := p.anticheat.WaitForReady(ctx); err != nil {
		return err
	}
	for _, s := range p.stats {
		if err := s.WaitForReady(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Maintain runs the anticheat maintenance visit now (it also runs every
// MaintainEvery).
func (p *Pipeline) Maintain(ctx context.Context) error { return p.anticheat.Maintain(ctx) }
