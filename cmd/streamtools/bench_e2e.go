package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fasthttp/websocket"
	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/bench/load"
	"github.com/streamtools/streamtools/internal/freeport"
	"github.com/streamtools/streamtools/internal/pgembed"
)

func benchE2ECommand() *cli.Command {
	return &cli.Command{
		Name:  "e2e",
		Usage: "the whole dev system under HTTP load: 202 -> counted in Postgres, for 1,000 influencers and for one, against a bare fasthttp parse-and-202 handler; 202 -> widget frame latency",
		Description: "Runs `streamtools dev` as a child process (kfake, embedded PostgreSQL, every component) on free\n" +
			"loopback ports, drives a bare fasthttp handler that parses the JSON and answers 202 (the\n" +
			"baseline), then the dev edge with the same closed-loop generator: --max distinct postbacks over\n" +
			"1,000 influencers, then --max to one influencer. For each it prints accepted postbacks per second\n" +
			"from the first request until Postgres daily_stats holds every one (goal >= 0.25 of the baseline),\n" +
			"the broker bytes per postback and the peak RSS of the process. Then it sends --rate postbacks/s\n" +
			"to one influencer with its widget open and prints p50/p99 of 202 -> widget frame.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "conns", Value: 64, Usage: "concurrent keep-alive connections of the load"},
			&cli.IntFlag{Name: "max", Value: 100_000, Usage: "postbacks per scenario"},
			&cli.DurationFlag{Name: "duration", Value: 30 * time.Second, Usage: "longest load time per scenario"},
			&cli.IntFlag{Name: "rate", Value: 1000, Usage: "postbacks per second of the widget latency phase"},
			&cli.DurationFlag{Name: "latency-duration", Value: 5 * time.Second, Usage: "length of the widget latency phase"},
		},
		Action: runBenchE2E,
	}
}

// e2eBodies are n distinct postbacks (one visitor each) over influencers
// named tag_<i>.
func e2eBodies(n, influencers int, tag string) [][]byte {
	out := make([][]byte, n)
	for i := range out {
		out[i] = fmt.Appendf(nil, `{"influencer_id":"%s_%d","product":"product","event_type":"reg","campaign":"e2e","ip":"10.%d.%d.%d","user_agent":"bench/%s"}`,
			tag, i%influencers, i>>16&255, i>>8&255, i&255, tag)
	}
	return out
}

func runBenchE2E(ctx context.Context, cmd *cli.Command) error {
	if _, err := pgembed.FindBinDir(); err != nil {
		return fmt.Errorf("bench e2e needs the PostgreSQL server binaries (apt-get install postgresql): %w", err)
	}
	ports := map[string]int{}
	for _, name := range []string{"broker", "ingest", "widgetd", "dashboard", "postgres"} {
		p, err := freeport.Get()
		if err != nil {
			return err
		}
		ports[name] = p
	}
	dir, err := os.MkdirTemp("", "streamtools-bench-e2e-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	if err := os.Chmod(dir, 0o755); err != nil { // the embedded PostgreSQL runs as the postgres user
		return err
	}
	// dev runs as a child process, as a user runs it: its peak RSS is its
	// own, and it stops on SIGINT like under Ctrl-C.
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.Create(filepath.Join(dir, "dev.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	dev := exec.Command(self, "dev", "--data-dir", dir, "--log-level", "warn",
		"--broker-listen", fmt.Sprintf("127.0.0.1:%d", ports["broker"]),
		"--ingest-listen", fmt.Sprintf("127.0.0.1:%d", ports["ingest"]),
		"--widgetd-listen", fmt.Sprintf("127.0.0.1:%d", ports["widgetd"]),
		"--dashboard-listen", fmt.Sprintf("127.0.0.1:%d", ports["dashboard"]),
		"--postgres-port", fmt.Sprint(ports["postgres"]))
	dev.Stdout, dev.Stderr = logf, logf
	if err := dev.Start(); err != nil {
		return fmt.Errorf("starting dev: %w", err)
	}
	devDone := make(chan struct{}) // closed when dev exits
	var devExit error              // how dev exited; read it once devDone is closed
	go func() { devExit = dev.Wait(); close(devDone) }()
	defer func() {
		if err := dev.Process.Signal(os.Interrupt); err != nil && !errors.Is(err, os.ErrProcessDone) {
			fmt.Fprintln(os.Stderr, "stopping dev:", err)
		}
		select {
		case <-devDone:
		case <-time.After(30 * time.Second):
			fmt.Fprintln(os.Stderr, "dev did not stop within 30s of SIGINT: killing it")
			if err := dev.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
				fmt.Fprintln(os.Stderr, "killing dev:", err)
			}
			<-devDone
		}
		if devExit != nil {
			fmt.Fprintf(os.Stderr, "dev exited: %v (its log: %s)\n", devExit, logf.Name())
		}
	}()
	fmt.Printf("dev started (pid %d, log %s)\n", dev.Process.Pid, logf.Name())
	for _, svc := range []string{"ingest", "widgetd"} {
		if err := waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[svc]), devDone); err != nil {
			return fmt.Errorf("waiting for dev's %s: %w", svc, err)
		}
	}
	db, err := pgx.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/streamtools?sslmode=disable", ports["postgres"]))
	if err != nil {
		return fmt.Errorf("connecting to dev's Postgres: %w", err)
	}
	defer db.Close(context.Background())
	loadBefore := loadAverage()

	conns, maxN := cmd.Int("conns"), cmd.Int("max")
	base, err := load.StartBaseline()
	if err != nil {
		return err
	}
	bres, err := load.Run(ctx, load.Load{Addr: base.Addr(), Path: "/test-access-key", Bodies: e2eBodies(maxN, 1000, "base"),
		Conns: conns, Duration: cmd.Duration("duration"), Max: int64(maxN)})
	if err := errors.Join(err, base.Close()); err != nil {
		return err
	}
	fmt.Printf("bare fasthttp (parse JSON, answer 202): %8.0f postbacks/s\n", bres.PerSecond())

	ingestAddr := fmt.Sprintf("127.0.0.1:%d", ports["ingest"])
	var lastBytes int64
	for _, sc := range []struct {
		name        string
		influencers int
	}{{"uniform", 1000}, {"hot", 1}} {
		tag := "e2e" + sc.name
		t0 := time.Now()
		res, err := load.Run(ctx, load.Load{Addr: ingestAddr, Path: "/test-access-key", Bodies: e2eBodies(maxN, sc.influencers, tag),
			Conns: conns, Duration: cmd.Duration("duration"), Max: int64(maxN)})
		if err != nil {
			return err
		}
		accepted := res.Accepted
		var counted int64
		deadline := time.Now().Add(5 * time.Minute)
		for counted < accepted {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: Postgres holds %d of %d accepted postbacks after 5 minutes", sc.name, counted, accepted)
			}
			time.Sleep(20 * time.Millisecond)
			if err := db.QueryRow(ctx, `SELECT coalesce(sum(counted + duplicates), 0) FROM daily_stats WHERE influencer_id LIKE $1`, tag+`\_%`).Scan(&counted); err != nil {
				return fmt.Errorf("reading daily_stats: %w", err)
			}
		}
		elapsed := time.Since(t0)
		bytes, err := brokerBytes(ctx, fmt.Sprintf("127.0.0.1:%d", ports["broker"]))
		if err != nil {
			return err
		}
		rate := float64(accepted) / elapsed.Seconds()
		fmt.Printf("%-7s %d postbacks to %d influencer(s): 202 -> counted in Postgres %8.0f postbacks/s, ratio %.2f (goal >= 0.25); edge alone %0.f/s; other statuses %v\n",
			sc.name, accepted, sc.influencers, rate, rate/bres.PerSecond(), res.PerSecond(), res.Other)
		fmt.Printf("        broker bytes per postback (every topic) %.0f; peak RSS of dev so far %d MiB (PostgreSQL, its own processes, not included)\n",
			float64(bytes-lastBytes)/float64(counted), peakRSS(dev.Process.Pid)>>20)
		lastBytes = bytes
	}

	p50, p99, n, err := widgetLatency(ctx, ingestAddr, fmt.Sprintf("127.0.0.1:%d", ports["widgetd"]), cmd.Int("rate"), cmd.Duration("latency-duration"))
	if err != nil {
		return err
	}
	fmt.Printf("latency HTTP 202 -> widget frame at %d/s: p50 %v  p99 %v  (%d postbacks)\n", cmd.Int("rate"), p50.Round(10*time.Microsecond), p99.Round(10*time.Microsecond), n)
	if loadBefore != "" {
		fmt.Printf("machine: %d CPUs, load average (1 5 15 min) %s before, %s after\n", runtime.NumCPU(), loadBefore, loadAverage())
	}
	return nil
}

func waitHTTP(ctx context.Context, url string, done <-chan struct{}) error {
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("dev stopped: see its log")
		case <-ctx.Done():
			return ctx.Err()
		default:
		}
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s not ready within 2 minutes", url)
}

// brokerBytes is the size of every partition the broker holds.
func brokerBytes(ctx context.Context, addr string) (int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(addr))
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	dirs, err := kadm.NewClient(cl).DescribeAllLogDirs(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("describing the broker's log dirs: %w", err)
	}
	var sum int64
	dirs.Each(func(d kadm.DescribedLogDir) {
		d.Topics.Each(func(p kadm.DescribedLogDirPartition) { sum += p.Size })
	})
	return sum, nil
}

// widgetLatency opens the widget of one influencer, sends rate postbacks/s
// to it for d, and measures, for each postback, from its 202 to the first
// widget frame whose total includes it.
func widgetLatency(ctx context.Context, ingestAddr, widgetAddr string, rate int, d time.Duration) (p50, p99 time.Duration, n int, err error) {
	const infl = "e2e_latency"
	ws, _, err := websocket.DefaultDialer.DialContext(ctx, fmt.Sprintf("ws://%s/ws/%s/product/%s", widgetAddr, "default", infl), nil)
	if err != nil {
		return 0, 0, 0, fmt.Errorf("opening the widget websocket: %w", err)
	}
	defer ws.Close()
	var mu sync.Mutex // guards acks
	var acks []time.Time
	var frames []struct {
		at    time.Time
		total int64
	}
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		for {
			_, b, err := ws.ReadMessage()
			if err != nil {
				return
			}
			now := time.Now()
			var m struct {
				Type  string `json:"type"`
				Total int64  `json:"total"`
			}
			if json.Unmarshal(b, &m) == nil && (m.Type == "update" || m.Type == "snapshot") {
				mu.Lock()
				frames = append(frames, struct {
					at    time.Time
					total int64
				}{now, m.Total})
				mu.Unlock()
			}
		}
	}()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 32}}
	interval := time.Second / time.Duration(rate)
	next := time.Now()
	end := next.Add(d)
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := 0; time.Now().Before(end); i++ {
		if w := time.Until(next); w > 0 {
			time.Sleep(w)
		}
		next = next.Add(interval)
		body := fmt.Sprintf(`{"influencer_id":"%s","product":"product","event_type":"reg","ip":"10.200.%d.%d","user_agent":"latency"}`, infl, i>>8&255, i&255)
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			resp, err := client.Post("http://"+ingestAddr+"/test-access-key", "application/json", strings.NewReader(body))
			if err != nil {
				return
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusAccepted {
				mu.Lock()
				acks = append(acks, time.Now())
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		done := len(frames) > 0 && frames[len(frames)-1].total >= int64(len(acks))
		mu.Unlock()
		if done || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	ws.Close()
	<-readDone
	mu.Lock()
	defer mu.Unlock()
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	// The k-th postback acknowledged is in the widget once a frame's total
	// reaches k; acknowledgements and verdicts may come in different orders
	// under concurrency, so this measures the k-th 202 to the k-th count.
	var lat []time.Duration
	f := 0
	for k, at := range acks {
		for f < len(frames) && frames[f].total < int64(k+1) {
			f++
		}
		if f == len(frames) {
			break
		}
		lat = append(lat, max(frames[f].at.Sub(at), 0))
	}
	if len(lat) == 0 {
		return 0, 0, 0, errors.New("no widget frame counted the postbacks")
	}
	slices.Sort(lat)
	return lat[len(lat)/2], lat[len(lat)*99/100], len(lat), nil
}

// peakRSS is the peak resident set size (VmHWM) of process pid in bytes
// (Linux), 0 where unknown.
func peakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}
