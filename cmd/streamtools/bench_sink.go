package main

import (
	"context"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/bench/sink"
)

func benchSinkCommand() *cli.Command {
	return &cli.Command{
		Name:  "sink",
		Usage: "rows/s through the Postgres sink against a plain COPY of the same rows, and whether the sink keeps up with an input rate",
		Description: "Starts an embedded broker and (unless --database-url) a PostgreSQL cluster in a temporary directory,\n" +
			"pre-fills the events topic, times a plain COPY of the same rows into events, then the sink, and prints\n" +
			"the ratio (goal >= 0.5). Then produces --rate events/s for --duration while the sink runs and reports\n" +
			"its largest lag and how fast it drains. See docs/benchmark-notes.md (The sink).",
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "events", Value: 200000, Usage: "events pre-filled for the throughput comparison"},
			&cli.IntFlag{Name: "rate", Value: 10000, Usage: "input rate of the keep-up phase, events/s (plus one stats row per ten events); 0 skips the phase"},
			&cli.DurationFlag{Name: "duration", Value: 10 * time.Second, Usage: "length of the keep-up phase"},
			&cli.BoolFlag{Name: "durable", Usage: "keep fsync on in the embedded PostgreSQL"},
			&cli.IntFlag{Name: "rounds", Value: 3, Usage: "alternating rounds of COPY and sink; the medians are compared"},
			&cli.StringFlag{Name: "database-url", Usage: "a SCRATCH database to use instead of an embedded cluster: the benchmark truncates events, daily_stats and sink_offsets there"},
		}, logFlags()...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			log, err := loggerFrom(cmd)
			if err != nil {
				return err
			}
			_, err = sink.Run(ctx, sink.Config{
				Events: cmd.Int("events"), Rate: cmd.Int("rate"), Duration: cmd.Duration("duration"),
				Durable: cmd.Bool("durable"), Rounds: cmd.Int("rounds"), DatabaseURL: cmd.String("database-url"), Log: log.With("component", "bench"),
			})
			return err
		},
	}
}
