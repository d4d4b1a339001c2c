package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/ingest"
	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/schemas"
)

// Options of a comparison; zero values take the documented defaults.
type Options struct {
	Conns    int           // keep-alive connections; default 256
	Duration time.Duration // per measured run; default 2s
	Warmup   time.Duration // per run, not counted; default 500ms
	Max      int64         // counted requests per run at most; default 5,000,000
	Rounds   int           // baseline/edge pairs; default 5
	// Influencers spreads the bodies over this many influencer ids (and so
	// partition keys); default 64.
	Influencers int
	// Profile, when set, runs around the last edge measurement (e.g. a CPU
	// profile): it starts the profile and returns its stop.
	Profile func() (stop func())
	// ProfileBaseline, likewise, runs around the last baseline measurement.
	ProfileBaseline func() (stop func())
	// Edit, when set, adjusts the edge's configuration (e.g. Linger).
	Edit func(*ingest.Config)
	Out  io.Writer // progress lines
	Log  *slog.Logger
}

// Report holds every run.
type Report struct {
	Baseline, Edge []Result
	Records        int64 // records found in the postbacks topic afterwards
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func rates(rs []Result) []float64 {
	out := make([]float64, len(rs))
	for i, r := range rs {
		out[i] = r.PerSecond()
	}
	return out
}

// BaselinePerSecond and EdgePerSecond are the medians over the rounds.
func (r Report) BaselinePerSecond() float64 { return median(rates(r.Baseline)) }

// EdgePerSecond: see BaselinePerSecond.
func (r Report) EdgePerSecond() float64 { return median(rates(r.Edge)) }

// Ratio is the median of the per-round ratios: each round measures the
// baseline and the edge back to back, so a round's ratio is the least
// disturbed by other load on the machine.
func (r Report) Ratio() float64 {
	var xs []float64
	for i := range min(len(r.Baseline), len(r.Edge)) {
		xs = append(xs, r.Edge[i].PerSecond()/r.Baseline[i].PerSecond())
	}
	return median(xs)
}

// CPURatio is the baseline's median CPU time per postback over the edge's:
// the throughput ratio a machine whose cores are all given to the benchmark
// would show. It is less sensitive to other processes than throughput.
func (r Report) CPURatio() float64 {
	cpu := func(rs []Result) float64 {
		xs := make([]float64, len(rs))
		for i, r := range rs {
			xs[i] = float64(r.CPUPerPostback())
		}
		return median(xs)
	}
	return cpu(r.Baseline) / cpu(r.Edge)
}

const benchKey = "bench-access-key"

// Compare starts kfake on a random port, the edge and the baseline, and
// measures both with the same generator, alternating, Rounds times.
func Compare(ctx context.Context, o Options) (_ Report, err error) {
	if o.Conns == 0 {
		o.Conns = 256
	}
	if o.Duration == 0 {
		o.Duration = 2 * time.Second
	}
	if o.Warmup == 0 {
		o.Warmup = 500 * time.Millisecond
	}
	if o.Max == 0 {
		o.Max = 5_000_000
	}
	if o.Rounds == 0 {
		o.Rounds = 5
	}
	if o.Influencers == 0 {
		o.Influencers = 64
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	var rep Report
	b, err := broker.Start(broker.Config{Addr: "127.0.0.1:0"})
	if err != nil {
		return rep, err
	}
	defer b.Close()
	names := schemas.NewNames("bench.")
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.Addr()), kgo.RecordPartitioner(kafkautil.Partitioner()))
	if err != nil {
		return rep, err
	}
	defer cl.Close()
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := kafkautil.EnsureTopics(setup, cl, kafkautil.CoreTopics(names, schemas.DefaultPartitions)); err != nil {
		return rep, err
	}
	// kfake keeps each partition's log segment in an in-memory file that
	// grows by doubling and copying, up to segment.bytes (kfake's default
	// 100 MiB): at the edge's rate that copying was ~4 % of the process's
	// CPU, an artefact of the stand-in broker that a real Kafka broker (an
	// append to the page cache, on another machine) does not have. 1 MiB
	// segments halve it. Nothing changes for the edge: same acks=all, same
	// records.
	if err := setSegmentBytes(setup, cl, names.Postbacks(), benchSegmentBytes); err != nil {
		return rep, err
	}
	if err := tenant.PutCustomer(setup, cl, names, schemas.Customer{
		Code: "default", TimeZone: "Europe/Paris", AntiCheat: true,
		Products: map[string]schemas.Product{"product": {Code: "product"}},
	}); err != nil {
		return rep, err
	}
	if _, err := tenant.PutKey(setup, cl, names, benchKey, "default", "bench"); err != nil {
		return rep, err
	}

	cfg := ingest.Config{
		Addr: "127.0.0.1:0", Brokers: []string{b.Addr()}, Names: names, Log: o.Log,
		Registerer: prometheus.NewRegistry(),
	}
	if o.Edit != nil {
		o.Edit(&cfg)
	}
	edge, err := ingest.New(cfg)
	if err != nil {
		return rep, err
	}
	ectx, ecancel := context.WithCancel(ctx)
	edone := make(chan error, 1)
	go func() { edone <- edge.Run(ectx) }()
	defer func() {
		ecancel()
		if eerr := <-edone; eerr != nil {
			err = errors.Join(err, fmt.Errorf("the edge: %w", eerr))
		}
	}()
	if err := waitReady(ctx, edge); err != nil {
		return rep, err
	}
	base, err := StartBaseline()
	if err != nil {
		return rep, err
	}
	defer func() { err = errors.Join(err, base.Close()) }()

	bodies := Bodies(o.Influencers)
	load := func(addr, path string) Load {
		return Load{Addr: addr, Path: path, Bodies: bodies, Conns: o.Conns, Duration: o.Duration, Warmup: o.Warmup, Max: o.Max}
	}
	fmt.Fprintf(o.Out, "load: %d keep-alive connections, %v per run after %v warm-up, at most %d postbacks per run, %d rounds\n",
		o.Conns, o.Duration, o.Warmup, o.Max, o.Rounds)
	for round := 1; round <= o.Rounds; round++ {
		var stopBase func()
		if o.ProfileBaseline != nil && round == o.Rounds {
			stopBase = o.ProfileBaseline()
		}
		r, err := Run(ctx, load(base.Addr(), "/"+benchKey))
		if stopBase != nil {
			stopBase()
		}
		if err != nil {
			return rep, fmt.Errorf("measuring the baseline: %w", err)
		}
		rep.Baseline = append(rep.Baseline, r)
		fmt.Fprintf(o.Out, "round %d  bare fasthttp     %9.0f postbacks/s  %6.1f µs CPU/postback  (%d in %v, other statuses %v)\n", round, r.PerSecond(), us(r.CPUPerPostback()), r.Accepted, r.Elapsed.Round(time.Millisecond), r.Other)

		var stop func()
		if o.Profile != nil && round == o.Rounds {
			stop = o.Profile()
		}
		r, err = Run(ctx, load(edge.Addr(), "/"+benchKey))
		if stop != nil {
			stop()
		}
		if err != nil {
			return rep, fmt.Errorf("measuring the edge: %w", err)
		}
		rep.Edge = append(rep.Edge, r)
		fmt.Fprintf(o.Out, "round %d  streamtools edge  %9.0f postbacks/s  %6.1f µs CPU/postback  (%d in %v, other statuses %v)\n", round, r.PerSecond(), us(r.CPUPerPostback()), r.Accepted, r.Elapsed.Round(time.Millisecond), r.Other)
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, names.Postbacks())
	if err != nil {
		return rep, fmt.Errorf("counting the records: %w", err)
	}
	ends.Each(func(o kadm.ListedOffset) { rep.Records += o.Offset })
	return rep, nil
}

// benchSegmentBytes is the segment.bytes of the bench's postbacks topic.
const benchSegmentBytes = 1 << 20

func setSegmentBytes(ctx context.Context, cl *kgo.Client, topic string, n int) error {
	v := strconv.Itoa(n)
	res, err := kadm.NewClient(cl).AlterTopicConfigs(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: &v}}, topic)
	if err == nil {
		for _, r := range res {
			err = cmpErr(err, r.Err)
		}
	}
	if err != nil {
		return fmt.Errorf("setting segment.bytes of %s: %w", topic, err)
	}
	return nil
}

func waitReady(ctx context.Context, s *ingest.Server) error {
	deadline := time.Now().Add(30 * time.Second)
	for !s.Ready() {
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("the edge did not become ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// Bodies returns the README's example postback body for n influencer ids.
func Bodies(n int) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"influencer_id":"influ_%d","product":"product","event_type":"reg","event_name":"registration","campaign":"Jan2024_special_event","medium":"Influencer","source":"twitch","ip":"132.244.%d.%d","country":"FR","user_agent":"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Safari/537.36"}`,
			i, i/250, i%250)
	}
	return out
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
