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

	"github.com/streamtools/streamtools/processors/processbench"
)

func init() {
	registerBench(&cli.Command{
		Name:  "process",
		Usage: "processors throughput (pre-filled postbacks until every stats table holds every event) against a bare franz-go consumer, and produce -> table latency at a fixed rate",
		Description: "Starts kfake on a random loopback port, pre-fills the postbacks topic, reads it with a bare\n" +
			"franz-go consumer (best of two), then runs the four goka groups until the three stats tables\n" +
			"hold every event, and prints both figures and their ratio (goal >= 0.4). Then produces at\n" +
			"--rate and prints p50/p99 of postback produced -> stats row visible to a changelog reader\n" +
			"(goal p99 <= 10 ms).",
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
			r, err := processbench.Run(ctx, processbench.Options{
				Events: cmd.Int("events"), Keys: cmd.Int("keys"), Partitions: int32(cmd.Int("partitions")),
				Rate: cmd.Int("rate"), LatencyTime: cmd.Duration("latency-duration"), Out: os.Stderr,
			})
			if err != nil {
				return err
			}
			fmt.Printf("\nbare franz-go consumer (decode JSON):        %9.0f postbacks/s\n", r.BaselineRate)
			fmt.Printf("processors, start -> every table complete:  %9.0f postbacks/s  ratio %.2f (includes group join)\n", r.PipeRate, r.Ratio)
			fmt.Printf("processors, first table change -> complete: %9.0f postbacks/s  ratio %.2f (goal >= 0.4)\n", r.SteadyRate, r.RatioSteady)
			fmt.Printf("latency postback produced -> stats row visible at %d/s: p50 %v  p99 %v  max %v  (%d samples; goal p99 <= 10ms)\n",
				cmd.Int("rate"), r.P50.Round(10*time.Microsecond), r.P99.Round(10*time.Microsecond), r.Max.Round(10*time.Microsecond), r.LatencySamples)
			fmt.Printf("  of which produced -> event with its verdict visible (anticheat): p50 %v  p99 %v\n",
				r.EventP50.Round(10*time.Microsecond), r.EventP99.Round(10*time.Microsecond))
			if loadBefore != "" {
				fmt.Printf("machine: %d CPUs, load average (1 5 15 min) %s before, %s after\n", runtime.NumCPU(), loadBefore, loadAverage())
			}
			return nil
		},
	})
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
