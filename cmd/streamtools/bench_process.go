package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/bench/process"
)

func benchProcessCommand() *cli.Command {
	return &cli.Command{
		Name:  "process",
		Usage: "processors throughput on a backlog (1,000 influencers, then one hot influencer) against a bare franz-go consumer; records, bytes and RSS per postback; produce -> stats row latency at a fixed rate",
		Description: "Starts kfake on a random loopback port, pre-fills the postbacks topic (--events postbacks over\n" +
			"--keys influencers, then the same mix to one influencer), reads it with a bare franz-go consumer\n" +
			"(best of two), then runs the processors until the stats table holds every postback, and prints\n" +
			"both rates and their ratio (goal >= 0.15), the hot/uniform ratio (goal >= 0.8), the records and\n" +
			"bytes the broker holds per postback (goal <= 2 KiB) and the peak RSS. Then produces at --rate and\n" +
			"prints p50/p99 of postback produced -> stats row visible to a changelog reader (goal p99 <= 10 ms).\n" +
			"See docs/processors.md.",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "events", Value: 100_000, Usage: "pre-filled postbacks"},
			&cli.IntFlag{Name: "keys", Value: 1000, Usage: "influencer keys"},
			&cli.IntFlag{Name: "partitions", Value: 6, Usage: "partitions of the topics"},
			&cli.IntFlag{Name: "rate", Value: 1000, Usage: "postbacks per second of the latency phase"},
			&cli.DurationFlag{Name: "latency-duration", Value: 10 * time.Second, Usage: "length of the latency phase"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the whole run to this file"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if path := cmd.String("cpuprofile"); path != "" {
				f, err := os.Create(path)
				if err != nil {
					return fmt.Errorf("creating --cpuprofile: %w", err)
				}
				defer f.Close()
				if err := pprof.StartCPUProfile(f); err != nil {
					return fmt.Errorf("starting the CPU profile: %w", err)
				}
				defer pprof.StopCPUProfile()
			}
			loadBefore := loadAverage()
			r, err := process.Run(ctx, process.Options{
				Events: cmd.Int("events"), Keys: cmd.Int("keys"), Partitions: int32(cmd.Int("partitions")),
				Rate: cmd.Int("rate"), LatencyTime: cmd.Duration("latency-duration"), Out: os.Stderr,
			})
			if err != nil {
				return err
			}
			for _, sc := range []process.Scenario{r.Uniform, r.Hot} {
				fmt.Printf("\n%s backlog of %d postbacks:\n", sc.Name, sc.Events)
				fmt.Printf("  bare franz-go consumer, encoding/json: %9.0f postbacks/s\n", sc.BaselineRate)
				fmt.Printf("  bare franz-go consumer, go-json:       %9.0f postbacks/s\n", sc.BaselineFastRate)
				fmt.Printf("  processors, first row -> complete:     %9.0f postbacks/s  ratio %.3f (goal >= 0.15); %.3f vs go-json\n", sc.SteadyRate, sc.Ratio, sc.RatioFast)
				fmt.Printf("  broker holds per postback:             %9.2f records, %.0f bytes (goal <= 2048)\n", sc.RecordsPerPostback, sc.BytesPerPostback)
				fmt.Printf("  peak RSS (broker + processors):        %9d MiB\n", sc.PeakRSS>>20)
			}
			fmt.Printf("\nhot vs uniform, same run: %.2f (goal >= 0.8)\n", r.Hot.SteadyRate/r.Uniform.SteadyRate)
			fmt.Printf("latency postback produced -> stats row visible at %d/s: p50 %v  p99 %v  max %v  (%d samples; goal p99 <= 10ms)\n",
				cmd.Int("rate"), r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond), r.LatencySamples)
			fmt.Printf("  of which produced -> event with its verdict visible: p50 %v  p99 %v\n",
				r.EventP50.Round(10*time.Microsecond), r.EventP99.Round(10*time.Microsecond))
			if loadBefore != "" {
				fmt.Printf("machine: %d CPUs, load average (1 5 15 min) %s before, %s after\n", runtime.NumCPU(), loadBefore, loadAverage())
			}
			return nil
		},
	}
}

// loadAverage is the 1, 5 and 15 minute load average of the machine
// (Linux), "" where unknown: the figures depend on what else runs.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}
