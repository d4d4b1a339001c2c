// Package sink measures the Postgres sink (`streamtools bench sink`):
// rows per second through the sink (Kafka fetch, decode, COPY into a
// temporary table, upsert, offsets, commit) against a plain COPY of the
// same rows into the same table in the same run, and whether the sink keeps
// up with a given input rate (its lag stays bounded).
//
// It starts its own embedded broker and, unless given a database URL, its
// own PostgreSQL cluster in a temporary directory.
package sink

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/internal/pgembed"
	"github.com/streamtools/streamtools/schemas"
	"github.com/streamtools/streamtools/sinks"
)

// Config configures a run.
type Config struct {
	// Events pre-filled for the throughput comparison. Default 200000.
	Events int
	// Rate of the keep-up phase, events per second (plus one stats row per
	// ten events). 0 skips the phase.
	Rate int
	// Duration of the keep-up phase.
	Duration time.Duration
	// DatabaseURL of a scratch database: the benchmark TRUNCATEs events and
	// daily_stats there. Empty: an embedded cluster in a temporary directory.
	DatabaseURL string
	// Rounds of the throughput comparison (alternating COPY and sink; the
	// medians are compared). Default 3.
	Rounds int
	// Durable keeps fsync on in the embedded cluster (default off: the
	// comparison is about the sink's own cost, not the disk).
	Durable bool
	// Out receives the report. Default os.Stdout.
	Out io.Writer
	// Log receives the components' logs; nil discards them.
	Log *slog.Logger
}

// Result holds the figures.
type Result struct {
	Events            int
	CopyRate          float64 // rows/s of a plain COPY into events
	SinkRate          float64 // rows/s through the sink
	Ratio             float64 // SinkRate / CopyRate
	Rate              int     // keep-up phase input rate (events/s)
	Produced          int64
	AchievedRate      float64
	MaxLag            int64
	Drain             time.Duration // from the end of the input until the sink caught up
	KeptUp            bool
	KeepUpPhaseWasRun bool
}

// Run runs the benchmark and prints its report.
func Run(ctx context.Context, cfg Config) (Result, error) {
	var res Result
	if cfg.Events <= 0 {
		cfg.Events = 200000
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if cfg.Out == nil {
		cfg.Out = os.Stdout
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		return res, err
	}
	defer b.Close()
	url := cfg.DatabaseURL
	if url == "" {
		dir, err := os.MkdirTemp("", "streamtools-bench-sink-")
		if err != nil {
			return res, fmt.Errorf("creating a temporary directory: %w", err)
		}
		defer os.RemoveAll(dir)
		c, err := pgembed.Start(ctx, pgembed.Config{Dir: dir, Ephemeral: !cfg.Durable, Database: "bench", Log: cfg.Log})
		if err != nil {
			return res, err
		}
		defer c.Stop()
		url = c.URL("bench")
	}
	if _, err := sinks.Migrate(ctx, url, cfg.Log); err != nil {
		return res, err
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return res, fmt.Errorf("connecting: %w", err)
	}
	defer conn.Close(context.Background())
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kafkautil.Partitioner()),
		kgo.ProducerLinger(5*time.Millisecond), kgo.MaxBufferedRecords(1<<20))
	if err != nil {
		return res, fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()

	// Phase 1: throughput against a plain COPY.
	names := schemas.NewNames("bench1.")
	if err := topics(ctx, cl, names); err != nil {
		return res, err
	}
	evs := make([]schemas.Event, cfg.Events)
	recs := make([]*kgo.Record, cfg.Events)
	for i := range evs {
		evs[i] = event(i)
		v, err := schemas.EventCodec.Encode(evs[i])
		if err != nil {
			return res, err
		}
		recs[i] = &kgo.Record{Topic: names.Events(), Key: []byte(eventKey(evs[i])), Value: v}
	}
	fmt.Fprintf(cfg.Out, "sink throughput: %d events (pre-filled in Kafka), PostgreSQL %s\n", cfg.Events, map[bool]string{true: "durable (fsync on)", false: "fsync off"}[cfg.Durable || cfg.DatabaseURL != ""])
	for i := 0; i < len(recs); i += 10000 {
		if err := cl.ProduceSync(ctx, recs[i:min(i+10000, len(recs))]...).FirstErr(); err != nil {
			return res, fmt.Errorf("pre-filling the events topic: %w", err)
		}
	}
	if _, err := conn.Exec(ctx, "SELECT streamtools_events_partition(d::date) FROM generate_series('2024-01-01'::date, '2024-02-28', interval '1 month') d"); err != nil {
		return res, fmt.Errorf("creating partitions: %w", err)
	}
	// Rounds alternate the baseline and the sink so that both see the same
	// machine load; the medians are compared.
	var copyTimes, sinkTimes []time.Duration
	for round := 0; round < cfg.Rounds; round++ {
		if _, err := conn.Exec(ctx, "TRUNCATE events, daily_stats, sink_offsets"); err != nil {
			return res, fmt.Errorf("truncating: %w", err)
		}
		// Baseline: the same rows, already decoded, in one COPY.
		start := time.Now()
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"events"}, []string{"id", "event_id", "customer_code", "product", "influencer_id", "event_type",
			"event_name", "campaign", "medium", "source", "country", "received_at", "day", "verdict", "reason"},
			pgx.CopyFromSlice(len(evs), func(i int) ([]any, error) {
				e := &evs[i]
				day, err := time.Parse(schemas.DayLayout, e.Day)
				return []any{e.ID, e.EventID, e.CustomerCode, e.Product, e.InfluencerID, e.EventType, e.EventName, e.Campaign,
					e.Medium, e.Source, e.Country, e.ReceivedAt, day, e.Verdict, e.Reason}, err
			}))
		if err != nil {
			return res, fmt.Errorf("copying: %w", err)
		}
		copyTimes = append(copyTimes, time.Since(start))
		res.Events = int(n)
		if _, err := conn.Exec(ctx, "TRUNCATE events, daily_stats, sink_offsets"); err != nil {
			return res, fmt.Errorf("truncating: %w", err)
		}
		took, err := runSinkUntil(ctx, cfg, b.Addr(), names, url, int64(cfg.Events))
		if err != nil {
			return res, err
		}
		sinkTimes = append(sinkTimes, took)
	}
	copyTook, sinkTook := median(copyTimes), median(sinkTimes)
	res.CopyRate = float64(cfg.Events) / copyTook.Seconds()
	res.SinkRate = float64(cfg.Events) / sinkTook.Seconds()
	res.Ratio = res.SinkRate / res.CopyRate
	fmt.Fprintf(cfg.Out, "  (median of %d alternating rounds; copy %v, sink %v)\n", cfg.Rounds, copyTimes, sinkTimes)
	fmt.Fprintf(cfg.Out, "  plain COPY into events      %9.0f rows/s  (%v)\n", res.CopyRate, copyTook.Round(time.Millisecond))
	fmt.Fprintf(cfg.Out, "  streamtools sink            %9.0f rows/s  (%v: fetch, decode, COPY to a temp table, upsert, offsets, commit)\n", res.SinkRate, sinkTook.Round(time.Millisecond))
	fmt.Fprintf(cfg.Out, "  ratio sink / COPY          %9.2f         (goal >= 0.5)\n", res.Ratio)

	if cfg.Rate <= 0 || cfg.Duration <= 0 {
		return res, nil
	}
	if err := keepUp(ctx, cfg, b.Addr(), cl, url, &res); err != nil {
		return res, err
	}
	return res, nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func topics(ctx context.Context, cl *kgo.Client, names schemas.Names) error {
	compact := "compact"
	specs := append(kafkautil.CoreTopics(names, schemas.DefaultPartitions), kafkautil.TopicSpec{
		Name: names.StatsTable(), Partitions: schemas.DefaultPartitions, Configs: map[string]*string{"cleanup.policy": &compact}})
	return kafkautil.EnsureTopics(ctx, cl, specs)
}

// runSinkUntil runs a sink until it has written want records and returns
// how long that took.
func runSinkUntil(ctx context.Context, cfg Config, addr string, names schemas.Names, url string, want int64) (time.Duration, error) {
	s, err := sinks.New(sinks.Config{Brokers: []string{addr}, Names: names, DatabaseURL: url, SkipMigrate: true, Log: cfg.Log})
	if err != nil {
		return 0, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.Run(sctx) }()
	for s.Totals().Records < want {
		select {
		case err := <-done:
			return 0, errors.Join(errors.New("the sink stopped early"), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	took := time.Since(start)
	cancel()
	return took, <-done
}

// keepUp produces at cfg.Rate for cfg.Duration while a sink runs, and
// samples the sink's lag (records produced and acknowledged, minus records
// the sink committed to Postgres).
func keepUp(ctx context.Context, cfg Config, addr string, cl *kgo.Client, url string, res *Result) error {
	res.KeepUpPhaseWasRun, res.Rate = true, cfg.Rate
	names := schemas.NewNames("bench2.")
	if err := topics(ctx, cl, names); err != nil {
		return err
	}
	s, err := sinks.New(sinks.Config{Brokers: []string{addr}, Names: names, DatabaseURL: url, SkipMigrate: true, Log: cfg.Log, Consumer: "bench-keepup"})
	if err != nil {
		return err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.Run(sctx) }()

	var acked, failed atomic.Int64
	var produced int64
	tick := 10 * time.Millisecond
	start := time.Now()
	next := start
	stats := make(map[int]int64)
	for time.Since(start) < cfg.Duration {
		// Produce what the schedule says is due by now.
		due := int64(float64(cfg.Rate) * time.Since(start).Seconds())
		for ; produced < due; produced++ {
			i := 1_000_000 + int(produced)
			e := event(i)
			v, _ := schemas.EventCodec.Encode(e) // a plain struct: cannot fail
			r := &kgo.Record{Topic: names.Events(), Key: []byte(eventKey(e)), Value: v}
			cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
				if err != nil {
					failed.Add(1)
					return
				}
				acked.Add(1)
			})
			if produced%10 == 9 {
				k := int(produced/10) % 500
				stats[k]++
				st := statsRow(k, stats[k])
				sv, _ := schemas.StatsCodec.Encode(st) // a plain struct: cannot fail
				cl.Produce(ctx, &kgo.Record{Topic: names.StatsTable(),
					Key: []byte(schemas.DayKey(st.CustomerCode, st.Product, st.InfluencerID, st.Campaign, st.Day)), Value: sv},
					func(_ *kgo.Record, err error) {
						if err != nil {
							failed.Add(1)
							return
						}
						acked.Add(1)
					})
			}
		}
		if lag := acked.Load() - s.Totals().Records; lag > res.MaxLag {
			res.MaxLag = lag
		}
		next = next.Add(tick)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-done:
			return errors.Join(errors.New("the sink stopped early"), err)
		case <-time.After(time.Until(next)):
		}
	}
	if err := cl.Flush(ctx); err != nil {
		return fmt.Errorf("flushing the producer: %w", err)
	}
	inputEnd := time.Now()
	elapsed := inputEnd.Sub(start)
	if f := failed.Load(); f > 0 {
		return fmt.Errorf("%d records were not produced", f)
	}
	total := acked.Load()
	for s.Totals().Records < total {
		if lag := total - s.Totals().Records; lag > res.MaxLag {
			res.MaxLag = lag
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-done:
			return errors.Join(errors.New("the sink stopped early"), err)
		case <-time.After(2 * time.Millisecond):
		}
	}
	res.Drain = time.Since(inputEnd)
	res.Produced = total
	res.AchievedRate = float64(produced) / elapsed.Seconds()
	// Kept up: the input rate was met, and the backlog never exceeded one
	// second of input and drained within a second of the input stopping.
	res.KeptUp = res.AchievedRate >= 0.95*float64(cfg.Rate) && res.MaxLag <= int64(cfg.Rate) && res.Drain <= time.Second
	verdict := "keeps up (lag stays bounded)"
	if !res.KeptUp {
		verdict = "does NOT keep up"
	}
	fmt.Fprintf(cfg.Out, "keep-up: %d events/s + %d stats rows/s for %v (achieved %.0f events/s, %d records)\n",
		cfg.Rate, cfg.Rate/10, cfg.Duration, res.AchievedRate, total)
	fmt.Fprintf(cfg.Out, "  max lag %d records (%.0f ms of input), drained %v after the input stopped: %s\n",
		res.MaxLag, 1000*float64(res.MaxLag)/float64(cfg.Rate)/1.1, res.Drain.Round(time.Millisecond), verdict)
	cancel()
	return <-done
}

var base = time.Date(2024, 1, 20, 12, 0, 0, 0, time.UTC)

// event i: 3 customers, 50 influencers, 2 event types, days across two
// months, a quarter of them duplicates.
func event(i int) schemas.Event {
	at := base.Add(time.Duration(i%20) * 24 * time.Hour).Add(time.Duration(i) * time.Millisecond)
	e := schemas.Event{
		V: schemas.EventVersion, ID: fmt.Sprintf("01bench-%012d", i), ReceivedAt: at,
		CustomerCode: fmt.Sprintf("brand%d", i%3), Day: at.Format(schemas.DayLayout),
		Attrs: schemas.Attrs{
			InfluencerID: fmt.Sprintf("influencer_%02d", i%50), Product: "product", EventType: []string{"reg", "dep"}[i%2],
			EventName: "registration", Campaign: []string{"", "Jan2024_special_event"}[i%2], Medium: "Influencer",
			Source: "twitch", Country: "FR",
		},
		Verdict: schemas.VerdictCounted,
		Src:     schemas.Position{Lane: schemas.LaneRequests, Partition: int32(i % schemas.DefaultPartitions), Offset: int64(i)},
	}
	if i%4 == 3 {
		e.Verdict, e.Reason = schemas.VerdictDuplicate, schemas.ReasonDuplicateVisitor
	}
	return e
}

// eventKey is the key of e on the events topic, as the verdicts processor
// writes it.
func eventKey(e schemas.Event) string {
	return schemas.DayKey(e.CustomerCode, e.Product, e.InfluencerID, e.Campaign, e.Day)
}

func statsRow(k int, v int64) *schemas.Stats {
	return &schemas.Stats{
		V: schemas.StatsVersion, CustomerCode: fmt.Sprintf("brand%d", k%3), Product: "product",
		InfluencerID: fmt.Sprintf("influencer_%02d", k%50), Campaign: []string{"", "Jan2024_special_event"}[k%2],
		Day: base.AddDate(0, 0, k%10).Format(schemas.DayLayout),
		ByType: map[string]schemas.Counts{
			"reg": {Counted: 3 * v, Duplicates: map[string]int64{schemas.ReasonDuplicateVisitor: v}},
			"dep": {Counted: v},
		},
		// The processors' replay guard, as a real row carries it (the sink
		// ignores it).
		Applied:   schemas.Watermarks{{Lane: schemas.LaneRequests, Partition: int32(k % schemas.DefaultPartitions), Offset: v}},
		UpdatedAt: time.Now().UTC(),
	}
}
