package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/schemas"
)

// ReplayConfig configures Replay.
type ReplayConfig struct {
	// Brokers, Names and DatabaseURL as in Config. Required.
	Brokers     []string
	Names       schemas.Names
	DatabaseURL string
	// Customer limits the rebuild to one customer code; empty: all.
	Customer string
	// From and To (YYYY-MM-DD, inclusive) limit the rebuild to a range of
	// days; empty: open.
	From, To string
	// DryRun writes each batch in a transaction that is rolled back: the
	// summary says what would change, nothing changes.
	DryRun bool
	// BatchSize as in Config. Default 10000.
	BatchSize int
	// IdleTimeout ends the replay when no record arrived for this long
	// before every partition reached the end offset taken at start (a
	// compacted topic may lack its last offsets). Default 5 s.
	IdleTimeout time.Duration
	// Progress, when set, is called after every batch with the records read
	// so far and the records to read in all.
	Progress func(done, total int64)
	// Log receives log lines; nil discards them.
	Log *slog.Logger
	// KafkaOpts are added to the Kafka client's options.
	KafkaOpts []kgo.Opt
}

// Validate names the field to fix.
func (c *ReplayConfig) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("sinks: ReplayConfig.Brokers is empty: set the Kafka bootstrap brokers (--brokers)")
	case c.DatabaseURL == "":
		return errors.New("sinks: ReplayConfig.DatabaseURL is empty: set a PostgreSQL connection string (--database-url)")
	}
	if _, err := c.scope(); err != nil {
		return err
	}
	return c.Names.Validate()
}

func (c *ReplayConfig) scope() (scope, error) {
	sc := scope{customer: c.Customer}
	var err error
	if c.From != "" {
		if sc.from, err = time.Parse(schemas.DayLayout, c.From); err != nil {
			return sc, fmt.Errorf("sinks: From %q: use YYYY-MM-DD (--from)", c.From)
		}
	}
	if c.To != "" {
		if sc.to, err = time.Parse(schemas.DayLayout, c.To); err != nil {
			return sc, fmt.Errorf("sinks: To %q: use YYYY-MM-DD (--to)", c.To)
		}
	}
	if !sc.from.IsZero() && !sc.to.IsZero() && sc.to.Before(sc.from) {
		return sc, fmt.Errorf("sinks: To %s is before From %s: swap them (--from, --to)", c.To, c.From)
	}
	return sc, nil
}

// Replay rebuilds events and daily_stats (all of them, or the scope given by
// Customer, From and To) from the start of the topics up to their end at
// the time Replay starts, and returns what changed. It upserts like the
// sink and never touches the sink's stored offsets, so it can run while the
// sink runs; a stats row never goes back to an older value (updated_at).
// Rows that exist in Postgres but in no topic are left alone.
func Replay(ctx context.Context, cfg ReplayConfig) (Summary, error) {
	var sum Summary
	if err := cfg.Validate(); err != nil {
		return sum, err
	}
	sc, _ := cfg.scope() // checked by Validate
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 10000
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 5 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if !cfg.DryRun {
		if _, err := Migrate(ctx, cfg.DatabaseURL, log); err != nil {
			return sum, err
		}
	}
	dec := decoder{eventsTopic: cfg.Names.Events(), statsTopic: cfg.Names.StatsTable(), scope: sc}
	topics := []string{dec.eventsTopic, dec.statsTopic}

	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...)}, cfg.KafkaOpts...)...)
	if err != nil {
		return sum, fmt.Errorf("sinks: creating kafka client: %w", err)
	}
	defer admin.Close()
	adm := kadm.NewClient(admin)
	starts, err := adm.ListStartOffsets(ctx, topics...)
	if err != nil {
		return sum, fmt.Errorf("sinks: listing start offsets: %w", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return sum, fmt.Errorf("sinks: listing end offsets: %w", err)
	}
	// remaining: the partitions with records to read, and where they end.
	remaining := make(map[topicPartition]int64)
	pinned := make(map[string]map[int32]kgo.Offset)
	startAt := make(map[topicPartition]int64)
	var total int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Partition < 0 || o.Err != nil {
			return
		}
		st, ok := starts.Lookup(o.Topic, o.Partition)
		if !ok || st.Err != nil || st.Offset >= o.Offset {
			return // empty
		}
		tp := topicPartition{o.Topic, o.Partition}
		remaining[tp] = o.Offset
		startAt[tp] = st.Offset
		total += o.Offset - st.Offset
		if pinned[o.Topic] == nil {
			pinned[o.Topic] = make(map[int32]kgo.Offset)
		}
		pinned[o.Topic][o.Partition] = kgo.NewOffset().At(st.Offset)
	})
	for _, t := range topics {
		if pinned[t] == nil {
			log.Info("replay: topic is empty or missing", "topic", t)
		}
	}
	if cfg.Progress != nil {
		cfg.Progress(0, total)
	}
	if len(remaining) == 0 {
		return sum, nil
	}
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(cfg.Brokers...), kgo.ConsumePartitions(pinned)}, cfg.KafkaOpts...)...)
	if err != nil {
		return sum, fmt.Errorf("sinks: creating kafka consumer: %w", err)
	}
	defer cl.Close()

	w := &writer{url: cfg.DatabaseURL, log: log}
	defer w.close()
	read := make(map[topicPartition]int64)
	var done int64
	for len(remaining) > 0 {
		pctx, cancel := context.WithTimeout(ctx, cfg.IdleTimeout)
		fs := cl.PollRecords(pctx, cfg.BatchSize)
		cancel()
		if ctx.Err() != nil {
			return sum, ctx.Err()
		}
		if pctx.Err() != nil && fs.NumRecords() == 0 {
			log.Warn("replay: no record for a while before the end offsets; stopping", "partitions_left", len(remaining))
			break
		}
		var fetchErr error
		fs.EachError(func(t string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				fetchErr = fmt.Errorf("sinks: fetching %s/%d: %w", t, p, err)
			}
		})
		if fetchErr != nil {
			return sum, fetchErr
		}
		b := newBatch()
		fs.EachRecord(func(r *kgo.Record) {
			tp := topicPartition{r.Topic, r.Partition}
			end, ok := remaining[tp]
			if !ok || r.Offset >= end {
				return // written after the replay started: the sink's job
			}
			if reason := dec.add(b, r); reason != "" {
				b.sum.Invalid++
				log.Debug("replay: skipping an invalid record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "reason", reason)
			}
			read[tp] = r.Offset + 1
			if r.Offset+1 >= end {
				delete(remaining, tp)
			}
		})
		if !b.empty() {
			s, err := w.write(ctx, b, cfg.DryRun)
			if err != nil {
				return sum, fmt.Errorf("sinks: replaying: %w", err)
			}
			sum.add(s)
		}
		done = 0
		for tp, next := range read {
			done += next - startAt[tp]
		}
		if cfg.Progress != nil {
			cfg.Progress(done, total)
		}
	}
	return sum, nil
}
