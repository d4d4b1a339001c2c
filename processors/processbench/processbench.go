// Package processbench measures the processors: throughput from a
// pre-filled postbacks topic until the stats tables hold every event,
// against a bare franz-go consumer reading the same topic in the same run;
// and latency from a postback produced to its stats row visible in the
// changelog, at a fixed rate. `streamtools bench process` runs it.
package processbench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/processors"
	"github.com/streamtools/streamtools/schemas"
)

// Options of a run.
type Options struct {
	Events      int           // pre-filled postbacks; default 100,000
	Keys        int           // influencer keys; default 1,000
	Partitions  int32         // default 6
	Rate        int           // latency phase postbacks/s; default 1,000
	LatencyTime time.Duration // latency phase length; default 10 s
	Out         io.Writer
	Log         *slog.Logger
}

// Report holds the figures of one run.
type Report struct {
	Events            int
	Baseline          time.Duration // bare consumer, best of two
	Pipeline          time.Duration // processors start -> all tables complete
	PipelineFromFirst time.Duration // first table change -> all tables complete
	P50, P99, Max     time.Duration
	LatencySamples    int
	// EventP50 and EventP99: postback produced -> event (with its verdict)
	// visible in the events topic, the anticheat part of the latency.
	EventP50, EventP99             time.Duration
	BaselineRate, PipeRate         float64
	SteadyRate, Ratio, RatioSteady float64
}

func (o *Options) defaults() {
	if o.Events == 0 {
		o.Events = 100_000
	}
	if o.Keys == 0 {
		o.Keys = 1000
	}
	if o.Partitions == 0 {
		o.Partitions = schemas.DefaultPartitions
	}
	if o.Rate == 0 {
		o.Rate = 1000
	}
	if o.LatencyTime == 0 {
		o.LatencyTime = 10 * time.Second
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
}

// postback i: a realistic mix. Two thirds carry a visitor (anti-cheat on),
// one in five an event id; some repeat.
func postback(i, keys int, at time.Time) schemas.Postback {
	k := i % keys
	pb := schemas.Postback{
		V: schemas.PostbackVersion, ID: fmt.Sprintf("bench-%d-%d", at.UnixNano(), i), ReceivedAt: at,
		CustomerCode: "bench", TimeZone: "Europe/Paris", Day: schemas.DayOf(at, time.UTC), AntiCheat: true,
		Attrs: schemas.Attrs{InfluencerID: fmt.Sprintf("influ_%d", k), Product: "product",
			EventType: []string{"reg", "dl", "ftd"}[i%3], Campaign: []string{"", "spring"}[i%2]},
	}
	if i%3 != 0 {
		pb.Visitor = fmt.Sprintf("v-%d-%d", k, (i/keys)%50)
	}
	if i%5 == 0 {
		pb.EventID = fmt.Sprintf("tx-%d-%d", k, (i/keys)%100)
	}
	return pb
}

func record(n schemas.Names, pb *schemas.Postback) *kgo.Record {
	b, _ := json.Marshal(pb)
	return &kgo.Record{Topic: n.Postbacks(), Key: []byte(schemas.PostbackKey(pb)), Value: b}
}

// Run runs both phases on an in-process broker.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	dir, err := os.MkdirTemp("", "streamtools-bench-process-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory: %w", err)
	}
	defer os.RemoveAll(dir)
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Partitions: int(o.Partitions)})
	if err != nil {
		return nil, err
	}
	defer b.Close()
	n := schemas.NewNames(fmt.Sprintf("bench%d.", time.Now().UnixNano()%1e9))
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kafkautil.Partitioner()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return nil, fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	if err := kafkautil.EnsureTopics(ctx, cl, kafkautil.CoreTopics(n, o.Partitions)); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Out, "pre-filling %s with %d postbacks over %d influencer keys...\n", n.Postbacks(), o.Events, o.Keys)
	start := time.Now().UTC().Add(-time.Hour)
	for i := 0; i < o.Events; i += 5000 {
		var recs []*kgo.Record
		for j := i; j < min(i+5000, o.Events); j++ {
			pb := postback(j, o.Keys, start.Add(time.Duration(j)*time.Millisecond/100))
			recs = append(recs, record(n, &pb))
		}
		if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return nil, fmt.Errorf("pre-filling: %w", err)
		}
	}
	rep := &Report{Events: o.Events}

	for range 2 {
		d, err := bareConsume(ctx, b.Addr(), n.Postbacks(), o.Events)
		if err != nil {
			return nil, err
		}
		if rep.Baseline == 0 || d < rep.Baseline {
			rep.Baseline = d
		}
	}
	fmt.Fprintf(o.Out, "bare franz-go consumer: %v for %d records\n", rep.Baseline.Round(time.Millisecond), o.Events)

	// Tail the three stats changelogs before the processors start.
	tail, err := newTail(b.Addr(), n)
	if err != nil {
		return nil, err
	}
	defer tail.close()
	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	go tail.run(tctx)

	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	t0 := time.Now()
	p, err := processors.New(ctx, processors.Config{
		Brokers: []string{b.Addr()}, Names: n, StateDir: dir, Partitions: o.Partitions, Log: o.Log,
	})
	if err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(pctx) }()
	first, err := tail.waitAll(ctx, int64(o.Events), done)
	if err != nil {
		return nil, err
	}
	rep.Pipeline = time.Since(t0)
	rep.PipelineFromFirst = time.Since(first)
	rep.BaselineRate = float64(o.Events) / rep.Baseline.Seconds()
	rep.PipeRate = float64(o.Events) / rep.Pipeline.Seconds()
	rep.SteadyRate = float64(o.Events) / rep.PipelineFromFirst.Seconds()
	rep.Ratio = rep.PipeRate / rep.BaselineRate
	rep.RatioSteady = rep.SteadyRate / rep.BaselineRate
	fmt.Fprintf(o.Out, "processors: every table complete %v after start (%v after the first table change)\n",
		rep.Pipeline.Round(time.Millisecond), rep.PipelineFromFirst.Round(time.Millisecond))

	// Latency at a fixed rate: ReceivedAt is the produce time, and each
	// stats-influencer row carries the ReceivedAt of the event it applied
	// last (UpdatedAt), so the tail measures produce -> row visible.
	fmt.Fprintf(o.Out, "latency phase: %d postbacks/s for %v...\n", o.Rate, o.LatencyTime)
	tail.startLatency()
	interval := time.Second / time.Duration(o.Rate)
	next := time.Now()
	sent := 0
	end := next.Add(o.LatencyTime)
	for time.Now().Before(end) {
		if d := time.Until(next); d > 0 {
			time.Sleep(d)
		}
		next = next.Add(interval)
		pb := postback(o.Events+sent, o.Keys, time.Now().UTC())
		pb.Visitor, pb.EventID = fmt.Sprintf("lat-%d", sent), "" // every one counts
		cl.Produce(ctx, record(n, &pb), func(_ *kgo.Record, err error) {
			if err != nil {
				o.Log.Warn("producing", "err", err)
			}
		})
		sent++
	}
	if _, err := tail.waitAll(ctx, int64(o.Events+sent), done); err != nil {
		return nil, err
	}
	lat, evLat := tail.latencies()
	pcancel()
	<-done
	if len(lat) == 0 || len(evLat) == 0 {
		return nil, fmt.Errorf("no latency samples")
	}
	slices.Sort(evLat)
	rep.EventP50, rep.EventP99 = evLat[len(evLat)/2], evLat[len(evLat)*99/100]
	slices.Sort(lat)
	rep.LatencySamples = len(lat)
	rep.P50, rep.P99, rep.Max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	return rep, nil
}

func bareConsume(ctx context.Context, addr, topic string, want int) (time.Duration, error) {
	t0 := time.Now()
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	got := 0
	var pb schemas.Postback
	for got < want {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		fs.EachRecord(func(r *kgo.Record) {
			// decode, as the processors do
			if json.Unmarshal(r.Value, &pb) == nil {
				got++
			}
		})
	}
	return time.Since(t0), nil
}
