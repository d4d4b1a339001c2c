package sinks

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/schemas"
)

// DefaultConsumer is the name under which the sink stores its offsets.
const DefaultConsumer = "sink"

// Config configures a Sink.
type Config struct {
	// Brokers are the Kafka bootstrap brokers. Required.
	Brokers []string
	// Names gives the topics of Names.Generation: Names.Events() and the
	// stats table changelog, Names.StatsTable(). Required.
	Names schemas.Names
	// DatabaseURL is the PostgreSQL connection string. Required.
	DatabaseURL string
	// Consumer names this sink's offsets in sink_offsets. Two sinks with
	// the same name never write at once (the second waits for the first's
	// lock). Default DefaultConsumer.
	Consumer string
	// BatchSize is the most records written per transaction. Default 10000.
	BatchSize int
	// RetentionDays drops the monthly partitions of events whose days are
	// all older than this many days, and skips such events. 0 (the
	// default) keeps events forever. daily_stats is always kept.
	RetentionDays int
	// RetentionInterval is how often retention runs. Default 1 h.
	RetentionInterval time.Duration
	// MaxBackoff caps the wait between retries while Postgres is down.
	// Default 10 s (retries start at 100 ms and double).
	MaxBackoff time.Duration
	// SkipMigrate does not run the migrations at start.
	SkipMigrate bool
	// Registerer receives the sink's metrics; nil registers none.
	Registerer prometheus.Registerer
	// Log receives the sink's log lines; nil discards them.
	Log *slog.Logger
	// KafkaOpts are added to the Kafka client's options (tests, TLS, SASL).
	KafkaOpts []kgo.Opt
}

// Validate names the field to fix.
func (c *Config) Validate() error {
	switch {
	case len(c.Brokers) == 0:
		return errors.New("sinks: Config.Brokers is empty: set the Kafka bootstrap brokers (--brokers)")
	case c.DatabaseURL == "":
		return errors.New("sinks: Config.DatabaseURL is empty: set a PostgreSQL connection string (--database-url)")
	case c.BatchSize < 0:
		return fmt.Errorf("sinks: Config.BatchSize %d: use 0 (the default, 10000) or more", c.BatchSize)
	case c.RetentionDays < 0:
		return fmt.Errorf("sinks: Config.RetentionDays %d: use 0 (keep forever) or a number of days", c.RetentionDays)
	}
	return c.Names.Validate()
}

func (c *Config) defaults() {
	if c.Consumer == "" {
		c.Consumer = DefaultConsumer
	}
	if c.BatchSize == 0 {
		c.BatchSize = 10000
	}
	if c.RetentionInterval == 0 {
		c.RetentionInterval = time.Hour
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 10 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Sink copies the events topic and the stats table changelog into Postgres.
type Sink struct {
	cfg     Config
	metrics *metrics
	dec     decoder

	mu    sync.Mutex // guards total
	total Summary
}

// New checks cfg and registers the metrics; Run does the work.
func New(cfg Config) (*Sink, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.defaults()
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	s := &Sink{cfg: cfg, metrics: m}
	s.dec = decoder{
		eventsTopic: cfg.Names.Events(),
		statsTopic:  cfg.Names.StatsTable(),
	}
	if cfg.RetentionDays > 0 {
		s.dec.cutoff = func() time.Time { return retentionCutoff(time.Now(), cfg.RetentionDays) }
	}
	return s, nil
}

func retentionCutoff(now time.Time, days int) time.Time {
	y, m, d := now.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC).AddDate(0, 0, -days)
}

// Totals is what the sink wrote since it started.
func (s *Sink) Totals() Summary {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}

// errResume ends one run of the sink after a failed write to Postgres: the
// next run resumes from the offsets Postgres holds.
var errResume = errors.New("sinks: resuming from the offsets stored in postgres")

// Run migrates the schema (unless SkipMigrate), resumes from the offsets
// stored in Postgres and writes until ctx ends. It returns nil when ctx
// ends; Postgres outages are retried, never returned.
//
// After a failed write the sink does not trust what it wrote before: it
// reads the stored offsets again and consumes from there. A server that
// crashed may have lost commits it had acknowledged (synchronous_commit
// off, an asynchronous replica promoted): those batches are written again,
// offsets and rows together, so nothing acknowledged by Kafka is lost.
func (s *Sink) Run(ctx context.Context) error {
	migrate := !s.cfg.SkipMigrate
	for {
		err := s.run(ctx, migrate)
		if !errors.Is(err, errResume) {
			return err
		}
		migrate = false
	}
}

func (s *Sink) run(ctx context.Context, migrate bool) error {
	log := s.cfg.Log
	if migrate {
		if err := retry(ctx, log, s.cfg.MaxBackoff, s.metrics, "migrating", func() error {
			_, err := Migrate(ctx, s.cfg.DatabaseURL, log)
			return err
		}); err != nil {
			return nil // ctx ended
		}
	}
	w := &writer{url: s.cfg.DatabaseURL, consumer: s.cfg.Consumer, log: log}
	defer w.close()
	var stored map[topicPartition]int64
	if err := retry(ctx, log, s.cfg.MaxBackoff, s.metrics, "reading stored offsets", func() error {
		if err := w.connect(ctx); err != nil {
			return err
		}
		var err error
		if stored, err = w.offsets(ctx); err != nil {
			w.close()
		}
		return err
	}); err != nil {
		return nil
	}

	admin, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(s.cfg.Brokers...)}, s.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("sinks: creating kafka client: %w", err)
	}
	defer admin.Close()
	wctx, stopWatch := context.WithCancel(ctx)
	watched := make(chan struct{})
	watch := &kafkautil.BrokerWatch{Client: admin, Log: log,
		DownMessage: "the Kafka brokers do not answer: nothing reaches Postgres until they do"}
	go func() { defer close(watched); watch.Run(wctx) }()
	defer func() { stopWatch(); <-watched }() // before admin.Close
	topics := []string{s.dec.eventsTopic, s.dec.statsTopic}
	var opts []kgo.Opt
	if err := retry(ctx, log, s.cfg.MaxBackoff, s.metrics, "listing topic partitions", func() error {
		var err error
		opts, err = startOffsets(ctx, kadm.NewClient(admin), topics, stored)
		return err
	}); err != nil {
		return nil
	}
	opts = append(opts,
		kgo.SeedBrokers(s.cfg.Brokers...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// A topic created later (the processors create the stats changelog
		// when they first start) is found within this time.
		kgo.MetadataMinAge(time.Second),
		kgo.MetadataMaxAge(10*time.Second),
	)
	cl, err := kgo.NewClient(append(opts, s.cfg.KafkaOpts...)...)
	if err != nil {
		return fmt.Errorf("sinks: creating kafka consumer: %w", err)
	}
	defer cl.Close()
	log.Info("sink started", "events_topic", s.dec.eventsTopic, "stats_topic", s.dec.statsTopic,
		"consumer", s.cfg.Consumer, "stored_partitions", len(stored), "retention_days", s.cfg.RetentionDays)

	if s.cfg.RetentionDays > 0 {
		go s.retentionLoop(ctx)
	}
	// One goroutine fetches and decodes the next batch while this one
	// writes the current batch to Postgres.
	type decoded struct {
		b       *batch
		invalid []invalidRecord
	}
	batches := make(chan decoded, 1)
	pctx, stopPolling := context.WithCancel(ctx)
	polled := make(chan struct{})
	defer func() { stopPolling(); <-polled }()
	go func() {
		defer close(polled)
		for {
			fs := cl.PollRecords(pctx, s.cfg.BatchSize)
			if pctx.Err() != nil || fs.IsClientClosed() {
				return
			}
			fs.EachError(func(t string, p int32, err error) {
				if errors.Is(err, kerr.UnknownTopicOrPartition) {
					return // the processors have not created it yet
				}
				log.Warn("fetching", "topic", t, "partition", p, "err", err)
			})
			d := decoded{b: newBatch()}
			fs.EachPartition(func(p kgo.FetchTopicPartition) {
				if len(p.Records) > 0 {
					d.b.hwm[topicPartition{p.Topic, p.Partition}] = p.HighWatermark
				}
				for _, r := range p.Records {
					if reason := s.dec.add(d.b, r); reason != "" {
						d.invalid = append(d.invalid, invalidRecord{r, reason})
					}
				}
			})
			if d.b.empty() {
				continue
			}
			select {
			case batches <- d:
			case <-pctx.Done():
				return
			}
		}
	}()

	lag := make(map[topicPartition]int64)
	for {
		var d decoded
		select {
		case <-ctx.Done():
			return nil
		case d = <-batches:
		}
		b, invalid := d.b, d.invalid
		if len(invalid) > 0 {
			// Dead letters go out before the offsets that pass them are
			// committed: a crash in between sends them twice, never zero times.
			if err := s.deadLetter(ctx, admin, invalid); err != nil {
				return nil // ctx ended
			}
		}
		start := time.Now()
		sum, err := w.write(ctx, b, false)
		if err != nil {
			w.close()
			if ctx.Err() != nil {
				return nil
			}
			s.metrics.retries.WithLabelValues("writing to postgres").Inc()
			log.Warn("writing to postgres failed; resuming from the offsets stored there", "err", err)
			return errResume
		}
		s.metrics.observe(sum, time.Since(start))
		s.mu.Lock()
		s.total.add(sum)
		s.mu.Unlock()
		for tp, next := range b.next {
			if hwm, ok := b.hwm[tp]; ok {
				lag[tp] = max(hwm-next, 0)
			}
		}
		byTopic := map[string]int64{s.dec.eventsTopic: 0, s.dec.statsTopic: 0}
		for tp, l := range lag {
			byTopic[tp.topic] += l
		}
		for t, l := range byTopic {
			s.metrics.lag.WithLabelValues(t).Set(float64(l))
		}
	}
}

// startOffsets pins every existing partition of topics at its stored
// offset (or the start), and consumes topics that do not exist yet from
// their start once they appear.
func startOffsets(ctx context.Context, adm *kadm.Client, topics []string, stored map[topicPartition]int64) ([]kgo.Opt, error) {
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return nil, fmt.Errorf("listing partitions: %w", err)
	}
	pinned := make(map[string]map[int32]kgo.Offset)
	var missing []string
	for _, t := range topics {
		ps := ends[t]
		for p, lo := range ps {
			if p < 0 || lo.Err != nil {
				continue
			}
			if pinned[t] == nil {
				pinned[t] = make(map[int32]kgo.Offset)
			}
			if off, ok := stored[topicPartition{t, p}]; ok {
				pinned[t][p] = kgo.NewOffset().At(off)
			} else {
				pinned[t][p] = kgo.NewOffset().AtStart()
			}
		}
		if pinned[t] == nil {
			missing = append(missing, t)
		}
	}
	var opts []kgo.Opt
	if len(pinned) > 0 {
		opts = append(opts, kgo.ConsumePartitions(pinned))
	}
	if len(missing) > 0 {
		opts = append(opts, kgo.ConsumeTopics(missing...))
	}
	return opts, nil
}

func (s *Sink) deadLetter(ctx context.Context, cl *kgo.Client, invalid []invalidRecord) error {
	recs := make([]*kgo.Record, 0, len(invalid))
	for _, in := range invalid {
		s.cfg.Log.Warn("record sent to the dead-letter topic", "topic", in.rec.Topic, "partition", in.rec.Partition,
			"offset", in.rec.Offset, "reason", in.reason)
		v, err := schemas.DeadLetterCodec.Encode(schemas.DeadLetter{
			V: schemas.DeadLetterVersion, Topic: in.rec.Topic, Partition: in.rec.Partition, Offset: in.rec.Offset,
			Key: in.rec.Key, Value: in.rec.Value, Reason: in.reason, Processor: "sink", RecordedAt: time.Now().UTC(),
		})
		if err != nil {
			return err // cannot happen: a plain struct
		}
		recs = append(recs, &kgo.Record{Topic: s.cfg.Names.DeadLetter(), Key: in.rec.Key, Value: v})
	}
	return retry(ctx, s.cfg.Log, s.cfg.MaxBackoff, s.metrics, "producing dead letters", func() error {
		pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := cl.ProduceSync(pctx, recs...).FirstErr(); err != nil {
			return err
		}
		s.metrics.deadLetters.Add(float64(len(recs)))
		return nil
	})
}

func (s *Sink) retentionLoop(ctx context.Context) {
	t := time.NewTicker(s.cfg.RetentionInterval)
	defer t.Stop()
	for {
		if err := s.applyRetention(ctx); err != nil && ctx.Err() == nil {
			s.cfg.Log.Warn("applying retention; will try again", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// applyRetention drops the partitions of events older than RetentionDays.
// It runs on its own connection: DROP TABLE waits for readers.
func (s *Sink) applyRetention(ctx context.Context) error {
	w := &writer{url: s.cfg.DatabaseURL}
	if err := w.connect(ctx); err != nil {
		return err
	}
	defer w.close()
	cutoff := retentionCutoff(time.Now(), s.cfg.RetentionDays)
	var n int
	if err := w.conn.QueryRow(ctx, "SELECT streamtools_drop_events_before($1)", cutoff).Scan(&n); err != nil {
		return fmt.Errorf("dropping old events partitions: %w", err)
	}
	if n > 0 {
		s.cfg.Log.Info("retention dropped events partitions", "partitions", n, "before", cutoff.Format(schemas.DayLayout))
	}
	return nil
}

// retry calls fn until it succeeds or ctx ends, waiting 100 ms, 200 ms, ...
// up to maxWait (with jitter) between attempts. It returns ctx's error.
func retry(ctx context.Context, log *slog.Logger, maxWait time.Duration, m *metrics, what string, fn func() error) error {
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := fn()
		if err == nil {
			if attempt > 1 {
				log.Info(what+": recovered", "attempts", attempt)
			}
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		m.retries.WithLabelValues(what).Inc()
		level := slog.LevelWarn
		if attempt > 1 && attempt%10 != 0 {
			level = slog.LevelDebug // one line, then one every ten attempts
		}
		log.Log(ctx, level, what+": retrying", "attempt", attempt, "in", wait, "err", err)
		jitter := time.Duration(rand.Int64N(int64(wait)/5 + 1))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(wait + jitter):
		}
		wait = min(wait*2, maxWait)
	}
}
