// Package processors runs the StreamTools goka groups together: claims
// (anti-cheat and event-id claims, one small row per claim), verdicts
// (stateless: moves postbacks between claims and emits every verdict to the
// events topic) and stats (absolute counts per day row). Each group lives in
// its own package and can run alone; this package wires them, creates the
// topics they use, and keeps them running through broker outages.
// `streamtools process` and `streamtools dev` run it; any number of
// instances share the partitions through goka's consumer groups.
//
// The design, why it is exact, and the size bound of every row are in
// docs/processors.md.
package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"

	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/processors/claims"
	"github.com/streamtools/streamtools/processors/internal/gokautil"
	"github.com/streamtools/streamtools/processors/internal/procmetrics"
	"github.com/streamtools/streamtools/processors/stats"
	"github.com/streamtools/streamtools/processors/verdicts"
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
	// Partitions of the postbacks topic when it is created here. The
	// processors' own topics take the postbacks topic's count. Default 6.
	Partitions int32
	// EventIDRetention and Grace: see claims.Config.
	EventIDRetention time.Duration
	Grace            time.Duration
	// MaintainEvery is the period of the claims maintenance that deletes
	// visitor claims of past days and expired event ids. Default (zero) 1
	// hour; negative disables the ticker (call Maintain).
	MaintainEvery time.Duration
	// Replication of topics goka creates. Default 1.
	Replication int
	// RestartBackoff is the first wait before the groups are started again
	// after they stopped on an error (a broker outage); it doubles up to 30
	// times itself. Default 1 s.
	RestartBackoff time.Duration
	// Registerer receives the processors' Prometheus metrics (verdicts,
	// applied inputs, dead letters, verdict lag, readiness). Nil: no metrics.
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
	return c.claimsConfig(nil).Validate()
}

func (c Config) claimsConfig(m *procmetrics.Metrics) claims.Config {
	return claims.Config{GroupConfig: c.groupConfig(schemas.GroupClaims, m), EventIDRetention: c.EventIDRetention, Grace: c.Grace}
}

// groupConfig is the configuration of group, with its own state directory.
func (c Config) groupConfig(group string, m *procmetrics.Metrics) gokautil.GroupConfig {
	return gokautil.GroupConfig{Brokers: c.Brokers, Names: c.Names, Log: c.Log,
		StateDir: filepath.Join(c.StateDir, group), Replication: c.Replication, Metrics: m}
}

// Pipeline is one instance of the three groups.
type Pipeline struct {
	cfg     Config
	metrics *procmetrics.Metrics
	// groupsReady: every group of the running instance is ready.
	groupsReady atomic.Bool
	watch       *kafkautil.BrokerWatch

	mu     sync.Mutex // guards claims
	claims *claims.Processor
}

// New creates the topics when missing (goka would create its tables with
// settings that do not fit, and no input topics) and checks the
// configuration. Run starts the groups.
func New(ctx context.Context, cfg Config) (*Pipeline, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaintainEvery == 0 {
		cfg.MaintainEvery = time.Hour
	}
	if cfg.RestartBackoff <= 0 {
		cfg.RestartBackoff = time.Second
	}
	if err := ensureTopics(ctx, cfg); err != nil {
		return nil, err
	}
	m, err := procmetrics.New(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	p := &Pipeline{cfg: cfg, metrics: m}
	p.watch = &kafkautil.BrokerWatch{Log: cfg.Log, DownMessage: "the broker does not answer: processors stalled, not ready",
		OnProbe: func(bool) { m.Ready(p.Ready()) }}
	return p, nil
}

// ensureTopics creates the postbacks topic if missing, then every other
// topic of the processors with the postbacks topic's partition count (goka
// requires co-partitioned inputs).
func ensureTopics(ctx context.Context, cfg Config) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(cfg.Brokers...))
	if err != nil {
		return fmt.Errorf("processors: creating kafka client: %w", err)
	}
	defer cl.Close()
	specs := kafkautil.CoreTopicsRetention(cfg.Names, cfg.Partitions,
		max(kafkautil.DefaultClaimsTableRetention, cfg.claimsConfig(nil).Retention()))
	if err := kafkautil.EnsureTopics(ctx, cl, specs[:1]); err != nil {
		return fmt.Errorf("processors: ensuring topics: %w", err)
	}
	td, err := kadm.NewClient(cl).ListTopics(ctx, cfg.Names.Postbacks())
	if err != nil {
		return fmt.Errorf("processors: reading the partitions of %s: %w", cfg.Names.Postbacks(), err)
	}
	parts := int32(len(td[cfg.Names.Postbacks()].Partitions))
	if parts == 0 {
		return fmt.Errorf("processors: topic %s has no partitions", cfg.Names.Postbacks())
	}
	for i := range specs {
		if specs[i].Partitions > 1 {
			specs[i].Partitions = parts
		}
	}
	if err := kafkautil.EnsureTopics(ctx, cl, specs[1:]); err != nil {
		return fmt.Errorf("processors: ensuring topics: %w", err)
	}
	return nil
}

// group is what Run needs of each goka group.
type group interface {
	Run(context.Context) error
	WaitForReady(context.Context) error
}

// Run runs the three groups until ctx ends. When they stop on an error (the
// broker unreachable or restarted, a producer fenced), Run marks the
// instance not ready, logs once, waits for the broker to answer and starts
// them again: a restart is a crash recovery, which the groups make exact
// (every row applies each input position once). It returns nil when ctx
// ends, and an error only when the groups cannot be built.
func (p *Pipeline) Run(ctx context.Context) error {
	hctx, stopHealth := context.WithCancel(ctx)
	defer stopHealth()
	go p.probeBroker(hctx)
	backoff := p.cfg.RestartBackoff
	var down time.Time // start of the current outage; zero when running
	for {
		groups, err := p.build()
		if err != nil {
			return err
		}
		started := time.Now()
		err = p.runOnce(ctx, groups, func() {
			if !down.IsZero() {
				p.cfg.Log.Info("processors running again", "outage", time.Since(down).Round(time.Millisecond))
				down = time.Time{}
			}
		})
		p.setReady(false)
		if ctx.Err() != nil {
			return nil
		}
		if down.IsZero() {
			down = time.Now()
			p.cfg.Log.Warn("processors stopped; starting them again once the broker answers", "err", err)
		} else {
			p.cfg.Log.Debug("processors stopped again during the outage", "err", err)
		}
		if time.Since(started) > time.Minute {
			backoff = p.cfg.RestartBackoff
		}
		if !p.waitForBroker(ctx, backoff) {
			return nil
		}
		backoff = min(2*backoff, 30*p.cfg.RestartBackoff)
	}
}

func (p *Pipeline) build() ([]group, error) {
	c, err := claims.New(p.cfg.claimsConfig(p.metrics))
	if err != nil {
		return nil, err
	}
	v, err := verdicts.New(p.cfg.groupConfig(schemas.GroupVerdicts, p.metrics))
	if err != nil {
		return nil, err
	}
	s, err := stats.New(p.cfg.groupConfig(schemas.GroupStats, p.metrics))
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.claims = c
	p.mu.Unlock()
	return []group{c, v, s}, nil
}

// runOnce runs the groups until ctx ends or one stops; then it stops the
// others. onReady runs once every group is ready.
func (p *Pipeline) runOnce(ctx context.Context, groups []group, onReady func()) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, gr := range groups {
		g.Go(func() error {
			if err := gr.Run(gctx); err != nil {
				return err
			}
			if gctx.Err() == nil {
				return errors.New("processors: a group stopped without an error")
			}
			return nil
		})
	}
	g.Go(func() error {
		for _, gr := range groups {
			if err := gr.WaitForReady(gctx); err != nil {
				return nil // stopping
			}
		}
		p.setReady(true)
		onReady()
		return nil
	})
	if p.cfg.MaintainEvery > 0 {
		g.Go(func() error {
			t := time.NewTicker(p.cfg.MaintainEvery)
			defer t.Stop()
			for {
				select {
				case <-gctx.Done():
					return nil
				case <-t.C:
					if err := p.Maintain(gctx); err != nil && gctx.Err() == nil {
						p.cfg.Log.Warn("claims maintenance", "err", err)
					}
				}
			}
		})
	}
	return g.Wait()
}

// waitForBroker waits backoff, then until a broker answers. False: ctx ended.
func (p *Pipeline) waitForBroker(ctx context.Context, backoff time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(backoff):
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.cfg.Brokers...))
	if err != nil {
		return ctx.Err() == nil // a configuration error would have failed New
	}
	defer cl.Close()
	for {
		pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		err := cl.Ping(pctx)
		cancel()
		if err == nil {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
		}
	}
}

// probeBroker watches the broker until ctx ends: while it gets no answer
// the instance is not ready (goka itself only stalls, its producer retrying
// for a long time; it does not say so).
func (p *Pipeline) probeBroker(ctx context.Context) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(p.cfg.Brokers...))
	if err != nil {
		// A configuration error would have failed New: not expected.
		p.cfg.Log.Error("creating the broker probe's client: readiness will not follow the broker", "err", err)
		return
	}
	defer cl.Close()
	p.watch.Client = cl
	p.watch.Run(ctx)
}

func (p *Pipeline) setReady(ok bool) {
	p.groupsReady.Store(ok)
	p.metrics.Ready(p.Ready())
}

// Ready reports whether every group recovered its table and consumes, and
// the broker answers. It is false during start-up and broker outages.
func (p *Pipeline) Ready() bool { return p.groupsReady.Load() && !p.watch.Down() }

// WaitForReady blocks until Ready or ctx ends.
func (p *Pipeline) WaitForReady(ctx context.Context) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !p.Ready() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	return nil
}

// Maintain runs the claims maintenance visit now (it also runs every
// MaintainEvery).
func (p *Pipeline) Maintain(ctx context.Context) error {
	p.mu.Lock()
	c := p.claims
	p.mu.Unlock()
	if c == nil {
		return errors.New("processors: not running")
	}
	return c.Maintain(ctx)
}
