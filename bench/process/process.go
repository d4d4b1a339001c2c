// Package process measures the processors on an in-process kfake
// broker: throughput from a pre-filled postbacks topic (a backlog the
// processors find when they start) until the stats table holds every
// postback, against a bare franz-go consumer reading the same topic in the
// same run; for 1,000 influencers (uniform) and for one influencer taking
// everything (hot). For each it counts the records and bytes the broker
// holds per postback, and the peak RSS of the process (broker and
// processors). Then latency from a postback produced to its stats row, at a
// fixed rate. `streamtools bench process` runs it.
package process

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gojson "github.com/goccy/go-json"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/processors"
	"github.com/streamtools/streamtools/schemas"
)

// Options of a run.
type Options struct {
	Events      int           // pre-filled postbacks per scenario; default 100,000
	Keys        int           // influencer keys of the uniform scenario; default 1,000
	Partitions  int32         // default 6
	Rate        int           // latency phase postbacks/s; default 1,000
	LatencyTime time.Duration // latency phase length; default 10 s
	Out         io.Writer
	Log         *slog.Logger
}

// Scenario is the throughput of one backlog shape.
type Scenario struct {
	Name   string
	Events int
	// Baseline: a bare consumer decoding each postback with encoding/json,
	// the baseline the goals were set against; BaselineFast decodes with
	// go-json, as the processors do. Best of two each.
	Baseline, BaselineFast         time.Duration
	Pipeline                       time.Duration // processors start -> stats table complete
	FromFirst                      time.Duration // first stats row -> complete
	BaselineRate, BaselineFastRate float64
	SteadyRate                     float64 // Events / FromFirst
	Ratio, RatioFast               float64 // SteadyRate / BaselineRate, / BaselineFastRate
	// Records and Bytes per postback held by the broker once done, over
	// every topic the postbacks and processors write (the postback itself
	// included), before any compaction.
	RecordsPerPostback, BytesPerPostback float64
	PeakRSS                              int64 // bytes, sampled every 50 ms
}

// Report holds the figures of one run.
type Report struct {
	Uniform, Hot   Scenario
	P50, P99, Max  time.Duration
	LatencySamples int
	// EventP50 and EventP99: postback produced -> event with its verdict
	// visible in the events topic.
	EventP50, EventP99 time.Duration
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

// postback i of a scenario with keys influencers: the same mix whatever
// the keys. Two thirds carry a visitor (anti-cheat on), repeated once
// 39,999 postbacks later (same event type: a duplicate); one in five an
// event id, repeated 50,000 later.
func postback(i, keys int, at time.Time) schemas.Postback {
	pb := schemas.Postback{
		V: schemas.PostbackVersion, ID: fmt.Sprintf("bench-%d-%d", at.UnixNano(), i), ReceivedAt: at,
		CustomerCode: "bench", TimeZone: "UTC", Day: schemas.DayOf(at, time.UTC), AntiCheat: true,
		Attrs: schemas.Attrs{InfluencerID: fmt.Sprintf("influ_%d", i%keys), Product: "product",
			EventType: []string{"reg", "dl", "ftd"}[i%3], Campaign: []string{"", "spring"}[i%2]},
	}
	if i%3 != 0 {
		pb.Visitor = fmt.Sprintf("v-%d", i%39_999)
	}
	if i%5 == 0 {
		pb.EventID = fmt.Sprintf("tx-%d", i%50_000)
	}
	return pb
}

func record(n schemas.Names, pb *schemas.Postback) *kgo.Record {
	b, _ := json.Marshal(pb)
	return &kgo.Record{Topic: n.Postbacks(), Key: []byte(schemas.PostbackKey(pb)), Value: b}
}

// Run runs the uniform and hot scenarios, each on a fresh broker, then the
// latency phase.
func Run(ctx context.Context, o Options) (*Report, error) {
	o.defaults()
	rep := &Report{}
	var err error
	if rep.Uniform, err = runScenario(ctx, o, "uniform", o.Keys); err != nil {
		return nil, err
	}
	if rep.Hot, err = runScenario(ctx, o, "hot", 1); err != nil {
		return nil, err
	}
	if err := runLatency(ctx, o, rep); err != nil {
		return nil, err
	}
	return rep, nil
}

// env is a broker, names, a producing client and the processors' state.
type env struct {
	b   *broker.Broker
	n   schemas.Names
	cl  *kgo.Client
	dir string
}

func newEnv(ctx context.Context, o Options) (*env, error) {
	dir, err := os.MkdirTemp("", "streamtools-bench-process-")
	if err != nil {
		return nil, fmt.Errorf("creating a temporary directory: %w", err)
	}
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Partitions: int(o.Partitions)})
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	e := &env{b: b, dir: dir, n: schemas.NewNames(fmt.Sprintf("bench%d.", time.Now().UnixNano()%1e9))}
	e.cl, err = kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kafkautil.Partitioner()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100_000))
	if err == nil {
		err = kafkautil.EnsureTopics(ctx, e.cl, kafkautil.CoreTopics(e.n, o.Partitions))
	}
	if err != nil {
		e.close()
		return nil, err
	}
	return e, nil
}

func (e *env) close() {
	if e.cl != nil {
		e.cl.Close()
	}
	e.b.Close()
	os.RemoveAll(e.dir)
}

// startProcessors runs the processors until stop. done receives what Run
// returned if it returns before stop; stop returns it either way (nil for
// a Run that stopped because stop cancelled it).
func (e *env) startProcessors(ctx context.Context, o Options) (stop func() error, done <-chan error, err error) {
	p, err := processors.New(ctx, processors.Config{
		Brokers: []string{e.b.Addr()}, Names: e.n, StateDir: e.dir, Partitions: o.Partitions, Log: o.Log,
	})
	if err != nil {
		return nil, nil, err
	}
	pctx, cancel := context.WithCancel(ctx)
	ch := make(chan error, 1)
	exited := make(chan struct{})
	var runErr error // read once exited is closed
	go func() {
		runErr = p.Run(pctx)
		ch <- runErr
		close(exited)
	}()
	var once sync.Once
	return func() error {
		once.Do(func() { cancel(); <-exited })
		if errors.Is(runErr, context.Canceled) {
			return nil
		}
		return runErr
	}, ch, nil
}

func runScenario(ctx context.Context, o Options, name string, keys int) (Scenario, error) {
	s := Scenario{Name: name, Events: o.Events}
	e, err := newEnv(ctx, o)
	if err != nil {
		return s, err
	}
	defer e.close()
	fmt.Fprintf(o.Out, "%s: pre-filling %s with %d postbacks over %d influencer keys...\n", name, e.n.Postbacks(), o.Events, keys)
	start := time.Now().UTC().Add(-time.Hour)
	for i := 0; i < o.Events; i += 5000 {
		var recs []*kgo.Record
		for j := i; j < min(i+5000, o.Events); j++ {
			pb := postback(j, keys, start.Add(time.Duration(j)*time.Millisecond/100))
			recs = append(recs, record(e.n, &pb))
		}
		if err := e.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
			return s, fmt.Errorf("pre-filling: %w", err)
		}
	}
	for range 2 {
		d, err := bareConsume(ctx, e.b.Addr(), e.n.Postbacks(), o.Events, json.Unmarshal)
		if err != nil {
			return s, err
		}
		if s.Baseline == 0 || d < s.Baseline {
			s.Baseline = d
		}
		if d, err = bareConsume(ctx, e.b.Addr(), e.n.Postbacks(), o.Events, gojson.Unmarshal); err != nil {
			return s, err
		}
		if s.BaselineFast == 0 || d < s.BaselineFast {
			s.BaselineFast = d
		}
	}
	fmt.Fprintf(o.Out, "%s: bare franz-go consumer %v for %d records (%v decoding with go-json)\n", name,
		s.Baseline.Round(time.Millisecond), o.Events, s.BaselineFast.Round(time.Millisecond))

	tail, err := newTail(e.b.Addr(), e.n)
	if err != nil {
		return s, err
	}
	defer tail.close()
	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	go tail.run(tctx)

	var peak atomic.Int64
	rctx, rcancel := context.WithCancel(ctx)
	go sampleRSS(rctx, &peak)
	t0 := time.Now()
	stop, done, err := e.startProcessors(ctx, o)
	if err != nil {
		rcancel()
		return s, err
	}
	first, err := tail.waitAll(ctx, int64(o.Events), done)
	rcancel()
	if err != nil {
		return s, errors.Join(err, stop())
	}
	s.Pipeline, s.FromFirst = time.Since(t0), time.Since(first)
	s.PeakRSS = peak.Load()
	s.BaselineRate = float64(o.Events) / s.Baseline.Seconds()
	s.SteadyRate = float64(o.Events) / s.FromFirst.Seconds()
	s.Ratio = s.SteadyRate / s.BaselineRate
	s.BaselineFastRate = float64(o.Events) / s.BaselineFast.Seconds()
	s.RatioFast = s.SteadyRate / s.BaselineFastRate
	// Let the last writes land, then count what the broker holds.
	time.Sleep(time.Second)
	if err := stop(); err != nil {
		return s, fmt.Errorf("stopping the processors: %w", err)
	}
	recs, bytes, err := e.brokerHolds(ctx)
	if err != nil {
		return s, err
	}
	s.RecordsPerPostback = float64(recs) / float64(o.Events)
	s.BytesPerPostback = float64(bytes) / float64(o.Events)
	fmt.Fprintf(o.Out, "%s: stats table complete %v after start (%v after the first row); %.2f records, %.0f bytes per postback; peak RSS %d MiB\n",
		name, s.Pipeline.Round(time.Millisecond), s.FromFirst.Round(time.Millisecond), s.RecordsPerPostback, s.BytesPerPostback, s.PeakRSS>>20)
	return s, nil
}

// brokerHolds sums the records (end offsets) and log bytes of every topic
// the postbacks and the processors write.
func (e *env) brokerHolds(ctx context.Context) (records, bytes int64, err error) {
	topics := []string{e.n.Postbacks(), e.n.Claims(), e.n.ClaimsTable(), e.n.Events(), e.n.StatsTable()}
	adm := kadm.NewClient(e.cl)
	ends, err := adm.ListEndOffsets(ctx, topics...)
	if err != nil {
		return 0, 0, fmt.Errorf("listing end offsets: %w", err)
	}
	ends.Each(func(o kadm.ListedOffset) { records += o.Offset })
	dirs, err := adm.DescribeAllLogDirs(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("describing log dirs: %w", err)
	}
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) {
			if slices.Contains(topics, p.Topic) {
				bytes += p.Size
			}
		})
	})
	return records, bytes, nil
}

// sampleRSS keeps the largest resident set size of the process seen every
// 50 ms in peak, until ctx ends.
func sampleRSS(ctx context.Context, peak *atomic.Int64) {
	t := time.NewTicker(50 * time.Millisecond)
	defer t.Stop()
	for {
		if rss := RSS(); rss > peak.Load() {
			peak.Store(rss)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// RSS is the resident set size of this process in bytes (Linux), 0 where
// unknown.
func RSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// runLatency produces at Rate and measures produce -> stats row visible.
func runLatency(ctx context.Context, o Options, rep *Report) (err error) {
	e, err := newEnv(ctx, o)
	if err != nil {
		return err
	}
	defer e.close()
	tail, err := newTail(e.b.Addr(), e.n)
	if err != nil {
		return err
	}
	defer tail.close()
	tctx, tcancel := context.WithCancel(ctx)
	defer tcancel()
	go tail.run(tctx)
	stop, done, err := e.startProcessors(ctx, o)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stop()) }()
	// Warm up: one postback through every group before measuring.
	warm := postback(0, o.Keys, time.Now().UTC())
	if err := e.cl.ProduceSync(ctx, record(e.n, &warm)).FirstErr(); err != nil {
		return err
	}
	if _, err := tail.waitAll(ctx, 1, done); err != nil {
		return err
	}
	// ReceivedAt is the produce time and each stats row carries the
	// ReceivedAt of the latest event it applied (UpdatedAt), so the tail
	// measures produce -> row visible.
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
		pb := postback(sent+1, o.Keys, time.Now().UTC())
		pb.Visitor, pb.EventID = fmt.Sprintf("lat-%d", sent), fmt.Sprintf("lat-tx-%d", sent) // both claims, every one counts
		e.cl.Produce(ctx, record(e.n, &pb), func(_ *kgo.Record, err error) {
			if err != nil {
				o.Log.Warn("producing", "err", err)
			}
		})
		sent++
	}
	if _, err := tail.waitAll(ctx, int64(1+sent), done); err != nil {
		return err
	}
	lat, evLat := tail.latencies()
	if len(lat) == 0 || len(evLat) == 0 {
		return fmt.Errorf("no latency samples")
	}
	slices.Sort(evLat)
	rep.EventP50, rep.EventP99 = evLat[len(evLat)/2], evLat[len(evLat)*99/100]
	slices.Sort(lat)
	rep.LatencySamples = len(lat)
	rep.P50, rep.P99, rep.Max = lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1]
	return nil
}

// bareConsume reads want records of topic from the start with a plain
// franz-go consumer, decoding each postback with decode.
func bareConsume(ctx context.Context, addr, topic string, want int, decode func([]byte, any) error) (time.Duration, error) {
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
			if decode(r.Value, &pb) == nil {
				got++
			}
		})
	}
	return time.Since(t0), nil
}
