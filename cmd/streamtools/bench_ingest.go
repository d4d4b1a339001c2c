package main

import (
	"context"
	"fmt"
	"os"
	"runtime/pprof"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/bench/load"
	"github.com/streamtools/streamtools/ingest"
)

func benchIngestCommand() *cli.Command {
	return &cli.Command{
		Name:  "ingest",
		Usage: "accepted postbacks/s through the real edge (acks=all to an in-process kfake) against a bare fasthttp JSON handler",
		Description: "Starts kfake on a random loopback port, the edge, and a bare fasthttp server that only parses the\n" +
			"same JSON and answers 202; drives both with the same in-process closed-loop generator over many\n" +
			"keep-alive connections, alternating, and prints both figures and their ratio (goal >= 0.85).",
		Flags: []cli.Flag{
			&cli.IntFlag{Name: "conns", Value: 256, Usage: "concurrent keep-alive connections"},
			&cli.DurationFlag{Name: "duration", Value: 2 * time.Second, Usage: "measured time per run"},
			&cli.DurationFlag{Name: "warmup", Value: 500 * time.Millisecond, Usage: "unmeasured time before each run"},
			&cli.IntFlag{Name: "max", Value: 5_000_000, Usage: "at most this many accepted postbacks per run"},
			&cli.IntFlag{Name: "rounds", Value: 5, Usage: "baseline/edge pairs, run back to back; medians are reported"},
			&cli.DurationFlag{Name: "linger", Usage: "the edge's producer linger (see streamtools ingest --linger)"},
			&cli.StringFlag{Name: "cpuprofile", Usage: "write a CPU profile of the last edge run to this file, and of the last baseline run to this file + .baseline"},
		},
		Action: func(ctx context.Context, cmd *cli.Command) error {
			o := load.Options{
				Conns: cmd.Int("conns"), Duration: cmd.Duration("duration"), Warmup: cmd.Duration("warmup"),
				Max: int64(cmd.Int("max")), Rounds: cmd.Int("rounds"), Out: os.Stdout,
				Edit: func(c *ingest.Config) { c.Linger = cmd.Duration("linger") },
			}
			if path := cmd.String("cpuprofile"); path != "" {
				o.Profile = cpuProfile(path)
				o.ProfileBaseline = cpuProfile(path + ".baseline")
			}
			rep, err := load.Compare(ctx, o)
			if err != nil {
				return err
			}
			fmt.Printf("\nbare fasthttp (parse JSON, answer 202):                 %8.0f postbacks/s (median of %d)\n", rep.BaselinePerSecond(), len(rep.Baseline))
			fmt.Printf("streamtools edge (validate, fingerprint, acks=all produce): %6.0f postbacks/s (median of %d)\n", rep.EdgePerSecond(), len(rep.Edge))
			fmt.Printf("ratio: %.2f (median of the per-round ratios; goal >= 0.85)\n", rep.Ratio())
			fmt.Printf("CPU ratio: %.2f (baseline CPU per postback / edge CPU per postback, medians)\n", rep.CPURatio())
			fmt.Printf("records in the postbacks topic: %d\n", rep.Records)
			return nil
		},
	}
}

// cpuProfile returns a Profile hook that writes a CPU profile to path.
func cpuProfile(path string) func() func() {
	return func() func() {
		f, err := os.Create(path)
		if err != nil {
			fmt.Fprintln(os.Stderr, "creating the CPU profile:", err)
			return func() {}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "starting the CPU profile:", err)
			f.Close()
			return func() {}
		}
		return func() {
			pprof.StopCPUProfile()
			f.Close()
		}
	}
}
