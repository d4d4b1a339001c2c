// Package fanout is the widgetd fan-out benchmark (`streamtools bench
// widgetd`): many websocket clients on one widgetd, one update per second
// per influencer across many influencers, measured against a plain
// fasthttp/websocket broadcast in the same run.
//
// widgetd and the baseline run in the benchmark's process, each in turn;
// the clients run in a child process (the same binary, see RunClients) so
// that the memory measured per connection is the server's alone and each
// process stays under the machine's open-file limit. Latency is measured
// from the moment the update is produced (for widgetd: the stats row
// written to Kafka, so it includes the changelog hop; for the baseline:
// the broadcast call) to the moment a client has read the message. widgetd
// sends no timestamp (a widget message carries only what the page shows),
// so every update's count is its production time in microseconds since the
// epoch: strictly rising per influencer, as real counts are, and the
// client reads the latency from the total (sentAt).
package fanout

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/internal/tenant"
	"github.com/streamtools/streamtools/schemas"
	"github.com/streamtools/streamtools/widgetd"
)

// Config configures a run. Zero values take the defaults in brackets.
type Config struct {
	Clients     int           // websocket clients [10000]
	Influencers int           // influencers the clients spread over [1000]
	Rate        float64       // updates per second per influencer [1]
	Warmup      time.Duration // updates before measuring [3s]
	Duration    time.Duration // measured updates [15s]
	// ClientCommand starts the client process, whose stdin and stdout
	// speak RunClients' protocol. Required.
	ClientCommand []string
	// Out receives the report. Nil means os.Stdout.
	Out io.Writer
	Log *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Clients == 0 {
		c.Clients = 10000
	}
	if c.Influencers == 0 {
		c.Influencers = 1000
	}
	if c.Rate == 0 {
		c.Rate = 1
	}
	if c.Warmup == 0 {
		c.Warmup = 3 * time.Second
	}
	if c.Duration == 0 {
		c.Duration = 15 * time.Second
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}

// Result is one side of the comparison.
type Result struct {
	Name string
	ClientReport
	Expected     int64   // deliveries expected in the measured window
	MemPerConnKB float64 // Go memory (Sys - HeapReleased) per connection
	RSSPerConnKB float64 // resident memory per connection
}

// RaiseFDLimit lifts the soft open-file limit to the hard one.
func RaiseFDLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("fanout: reading the open-file limit: %w", err)
	}
	if lim.Cur < lim.Max {
		lim.Cur = lim.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
			return 0, fmt.Errorf("fanout: raising the open-file limit: %w", err)
		}
	}
	return lim.Cur, nil
}

// Run runs the baseline, then widgetd, prints the report and returns both
// results.
func Run(ctx context.Context, cfg Config) (base, wd Result, err error) {
	cfg.setDefaults()
	if len(cfg.ClientCommand) == 0 {
		return base, wd, errors.New("fanout: ClientCommand is empty: give the command that runs RunClients")
	}
	limit, err := RaiseFDLimit()
	if err != nil {
		return base, wd, err
	}
	if need := uint64(cfg.Clients) + 1000; limit < need {
		return base, wd, fmt.Errorf("fanout: the open-file limit is %d, %d clients need about %d: raise it (ulimit -n) or use fewer --clients", limit, cfg.Clients, need)
	}
	fmt.Fprintf(cfg.Out, "widgetd fan-out: %d clients over %d influencers, %.3g update/s each (%.0f deliveries/s); %v warm-up, %v measured\n",
		cfg.Clients, cfg.Influencers, cfg.Rate, float64(cfg.Clients)*cfg.Rate, cfg.Warmup, cfg.Duration)

	base, err = runBaseline(ctx, cfg)
	if err != nil {
		return base, wd, fmt.Errorf("fanout: baseline: %w", err)
	}
	wd, err = runWidgetd(ctx, cfg)
	if err != nil {
		return base, wd, fmt.Errorf("fanout: widgetd: %w", err)
	}
	report(cfg, base, wd)
	return base, wd, nil
}

func influencer(i int) string { return fmt.Sprintf("infl-%05d", i) }

// memory returns Go's memory in use after a full collection, and the RSS.
func memory() (goMem, rss uint64) {
	runtime.GC()
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	goMem = ms.Sys - ms.HeapReleased
	if b, err := os.ReadFile("/proc/self/statm"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.ParseUint(f[1], 10, 64)
			rss = pages * uint64(os.Getpagesize())
		}
	}
	return goMem, rss
}

// clients is the running client process.
type clients struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Scanner
}

func startClients(ctx context.Context, cfg Config, urls []string, localIP string) (*clients, int, error) {
	cmd := exec.CommandContext(ctx, cfg.ClientCommand[0], cfg.ClientCommand[1:]...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, 0, err
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		return nil, 0, err
	}
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("starting the client process %v: %w", cfg.ClientCommand, err)
	}
	c := &clients{cmd: cmd, in: in, out: bufio.NewScanner(outPipe)}
	b, _ := json.Marshal(ClientConfig{URLs: urls, DialConcurrency: 64, LocalIP: localIP})
	if _, err := fmt.Fprintf(in, "%s\n", b); err != nil {
		c.kill()
		return nil, 0, fmt.Errorf("sending the client config: %w", err)
	}
	var hello struct{ Connected, Failed int }
	if err := c.read(&hello); err != nil {
		c.kill()
		return nil, 0, err
	}
	if hello.Failed > 0 {
		cfg.Log.Warn("some clients did not connect", "failed", hello.Failed)
	}
	return c, hello.Connected, nil
}

func (c *clients) read(v any) error {
	for c.out.Scan() {
		line := c.out.Bytes()
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		return json.Unmarshal(line, v)
	}
	return fmt.Errorf("reading the client process: %w (it exited)", c.out.Err())
}

func (c *clients) send(cmd string) error {
	_, err := fmt.Fprintln(c.in, cmd)
	return err
}

func (c *clients) kill() {
	_ = c.cmd.Process.Kill()
	_ = c.cmd.Wait()
}

// measure runs the update generator for warm-up plus duration and returns
// the clients' report of the measured part.
func measure(ctx context.Context, cfg Config, c *clients, tick func(from, n int)) (ClientReport, error) {
	var rep ClientReport
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	genDone := make(chan struct{})
	go func() {
		defer close(genDone)
		// Every 10 ms, the next slice of influencers gets its update: each
		// influencer once per 1/Rate seconds, spread evenly.
		const step = 10 * time.Millisecond
		perSecond := float64(cfg.Influencers) * cfg.Rate
		t := time.NewTicker(step)
		defer t.Stop()
		start := time.Now()
		sent := 0
		for {
			select {
			case <-ctx.Done():
				return
			case now := <-t.C:
				due := int(now.Sub(start).Seconds() * perSecond)
				if due > sent {
					tick(sent%cfg.Influencers, due-sent)
					sent = due
				}
			}
		}
	}()
	select {
	case <-time.After(cfg.Warmup):
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	if err := c.send("reset"); err != nil {
		return rep, err
	}
	var ack map[string]any
	if err := c.read(&ack); err != nil {
		return rep, err
	}
	select {
	case <-time.After(cfg.Duration):
	case <-ctx.Done():
		return rep, ctx.Err()
	}
	if err := c.send("stop"); err != nil {
		return rep, err
	}
	err := c.read(&rep)
	cancel()
	<-genDone
	_ = c.in.Close()
	_ = c.cmd.Wait()
	return rep, err
}

func urlsFor(cfg Config, prefix string) []string {
	urls := make([]string, cfg.Clients)
	for i := range urls {
		urls[i] = prefix + influencer(i%cfg.Influencers)
	}
	return urls
}

func runBaseline(ctx context.Context, cfg Config) (_ Result, err error) {
	res := Result{Name: "baseline: fasthttp/websocket broadcast"}
	b, err := startBaseline()
	if err != nil {
		return res, err
	}
	defer func() { err = errors.Join(err, b.close()) }()
	mem0, rss0 := memory()
	c, n, err := startClients(ctx, cfg, urlsFor(cfg, "ws://"+b.addr()+"/ws/"), "127.0.0.1")
	if err != nil {
		return res, err
	}
	mem1, rss1 := memory()
	res.MemPerConnKB = perConnKB(mem0, mem1, n)
	res.RSSPerConnKB = perConnKB(rss0, rss1, n)
	counts := make([]int64, cfg.Influencers)
	var buf []byte
	rep, err := measure(ctx, cfg, c, func(from, n int) {
		for k := range n {
			i := (from + k) % cfg.Influencers
			counts[i] = nextCount(counts[i])
			// The same shape and size as widgetd's update.
			buf = fmt.Appendf(buf[:0], `{"type":"update","customer_code":"bench","product":"product","influencer_id":%q,`+
				`"total":%d,"title":"Sign-ups","goal":1000,"color":"#ffffff",`+
				`"bar_color":"#9146ff","bg_color":"rgba(16,16,24,0.78)","font_size":24,"heartbeat_ms":10000}`,
				influencer(i), counts[i])
			b.broadcast(influencer(i), append([]byte(nil), buf...))
		}
	})
	if err != nil {
		c.kill()
		return res, err
	}
	res.ClientReport = rep
	res.Expected = int64(float64(n) * cfg.Rate * cfg.Duration.Seconds())
	return res, nil
}

func runWidgetd(ctx context.Context, cfg Config) (_ Result, err error) {
	res := Result{Name: "widgetd: kafka changelog -> websocket"}
	bk, err := broker.Start(broker.Config{Addr: "127.0.0.1:0", Partitions: 6})
	if err != nil {
		return res, err
	}
	defer bk.Close()
	names := schemas.NewNames("bench.")
	cl, err := kgo.NewClient(kgo.SeedBrokers(bk.Addr()), kgo.RecordPartitioner(kafkautil.Partitioner()),
		kgo.ProducerLinger(0), kgo.MaxBufferedRecords(100000))
	if err != nil {
		return res, err
	}
	defer cl.Close()
	// The core topics include the stats table widgetd reads.
	if err := kafkautil.EnsureTopics(ctx, cl, kafkautil.CoreTopics(names, 6)); err != nil {
		return res, err
	}
	err = tenant.PutCustomer(ctx, cl, names, schemas.Customer{Code: "bench", TimeZone: "UTC",
		Products: map[string]schemas.Product{"product": {Code: "product", Title: "Sign-ups", Goal: 1000}}})
	if err != nil {
		return res, err
	}
	// Each influencer has one day row (no campaign, today), as the stats
	// processor would write it: every update is the row's new absolute
	// count, and widgetd's sum over the influencer's rows is that count.
	table, day := names.StatsTable(), schemas.DayOf(time.Now(), time.UTC)
	counts := make([]int64, cfg.Influencers)
	put := func(i int) *kgo.Record {
		counts[i] = nextCount(counts[i])
		st := schemas.Stats{V: schemas.StatsVersion, CustomerCode: "bench", Product: "product", InfluencerID: influencer(i), Day: day,
			ByType: map[string]schemas.Counts{"reg": {Counted: counts[i]}}, Total: counts[i], UpdatedAt: time.Now().UTC()}
		v, _ := schemas.StatsCodec.Encode(st)
		return &kgo.Record{Topic: table, Key: []byte(schemas.DayKey("bench", "product", influencer(i), "", day)), Value: v}
	}
	for i := range cfg.Influencers {
		cl.Produce(ctx, put(i), nil)
	}
	if err := cl.Flush(ctx); err != nil {
		return res, err
	}

	srv, err := widgetd.New(widgetd.Config{Addr: "127.0.0.1:0", Brokers: []string{bk.Addr()}, Names: names,
		Registerer: prometheus.NewRegistry(), MaxConnections: cfg.Clients + 1000, Log: cfg.Log})
	if err != nil {
		return res, err
	}
	sctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- srv.Run(sctx) }()
	stopped := false // done was read
	defer func() {
		stop()
		if !stopped {
			if werr := <-done; werr != nil {
				err = errors.Join(err, fmt.Errorf("widgetd: %w", werr))
			}
		}
	}()
	select {
	case <-srv.Ready():
	case err := <-done:
		stopped = true
		return res, fmt.Errorf("widgetd stopped: %w", err)
	case <-time.After(60 * time.Second):
		return res, errors.New("widgetd not ready after 60s")
	}

	mem0, rss0 := memory()
	// A second loopback address: the baseline's client ports may still be
	// in TIME_WAIT.
	c, n, err := startClients(ctx, cfg, urlsFor(cfg, "ws://"+srv.Addr()+"/ws/bench/product/"), "127.0.0.2")
	if err != nil {
		return res, err
	}
	mem1, rss1 := memory()
	res.MemPerConnKB = perConnKB(mem0, mem1, n)
	res.RSSPerConnKB = perConnKB(rss0, rss1, n)
	produceErr := make(chan error, 1)
	rep, err := measure(ctx, cfg, c, func(from, n int) {
		for k := range n {
			cl.Produce(ctx, put((from+k)%cfg.Influencers), func(_ *kgo.Record, err error) {
				if err != nil {
					select {
					case produceErr <- err:
					default:
					}
				}
			})
		}
	})
	if err != nil {
		c.kill()
		return res, err
	}
	select {
	case err := <-produceErr:
		return res, fmt.Errorf("producing stats rows: %w", err)
	default:
	}
	res.ClientReport = rep
	res.Expected = int64(float64(n) * cfg.Rate * cfg.Duration.Seconds())
	return res, nil
}

// nextCount is an influencer's next count: now in microseconds since the
// epoch (see the package comment), at least one more than the last.
func nextCount(last int64) int64 { return max(time.Now().UnixMicro(), last+1) }

func perConnKB(before, after uint64, n int) float64 {
	if n == 0 || after < before {
		return 0
	}
	return float64(after-before) / float64(n) / 1024
}

func report(cfg Config, base, wd Result) {
	w := cfg.Out
	fmt.Fprintf(w, "\n%-40s %9s %9s %9s %9s %9s %10s %12s %12s\n", "", "conns", "p50 ms", "p99 ms", "p99.9 ms", "max ms", "delivered", "Go KB/conn", "RSS KB/conn")
	for _, r := range []Result{base, wd} {
		delivered := 0.0
		if r.Expected > 0 {
			delivered = float64(r.Updates) / float64(r.Expected) * 100
		}
		fmt.Fprintf(w, "%-40s %9d %9.2f %9.2f %9.2f %9.1f %9.1f%% %12.1f %12.1f\n", r.Name, r.Connected,
			r.P50MS, r.P99MS, r.P999MS, r.MaxMS, delivered, r.MemPerConnKB, r.RSSPerConnKB)
		if r.Failed > 0 || r.Closed > 0 {
			fmt.Fprintf(w, "  %s: %d clients failed to connect, %d were closed (%s)\n", r.Name, r.Failed, r.Closed, r.FirstErr)
		}
	}
	ratio := 0.0
	if base.P99MS > 0 {
		ratio = wd.P99MS / base.P99MS
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	fmt.Fprintf(w, "\nwidgetd/baseline p99 ratio: %.2f; memory ratio: %.2f\n", ratio, wd.MemPerConnKB/max(base.MemPerConnKB, 0.001))
	fmt.Fprintf(w, "goals: widgetd p99 <= 100 ms: %s (%.2f ms); <= 30 KB per connection: %s (%.1f KB Go, %.1f KB RSS)\n",
		verdict(wd.P99MS <= 100), wd.P99MS, verdict(max(wd.MemPerConnKB, wd.RSSPerConnKB) <= 30), wd.MemPerConnKB, wd.RSSPerConnKB)
}
