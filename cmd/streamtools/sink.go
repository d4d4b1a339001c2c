package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/sinks"
)

func sinkFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "consumer", Value: sinks.DefaultConsumer, Sources: env("consumer"),
			Usage: "name under which the sink stores its offsets in sink_offsets (two sinks with the same name never write at once)"},
		&cli.IntFlag{Name: "batch-size", Value: 10000, Sources: env("batch-size"),
			Usage: "most records written per Postgres transaction"},
		&cli.IntFlag{Name: "retention-days", Value: 0, Sources: env("retention-days"),
			Usage: "drop monthly partitions of events whose days are all older than this many days; 0 keeps events forever (daily_stats is always kept)"},
		&cli.StringFlag{Name: "metrics-listen", Value: "127.0.0.1:9103", Sources: env("metrics-listen"),
			Usage: "host:port serving Prometheus /metrics (streamtools_sink_lag_records, ...); empty disables it"},
	}
}

func sinkCommand() *cli.Command {
	return &cli.Command{
		Name:  "sink",
		Usage: "write the events topic and the stats table changelog into Postgres (the BI schema)",
		Description: "Consumes the events topic and the stats table changelog of --generation and upserts them\n" +
			"into the events and daily_stats tables, storing the consumed offsets in the same transaction:\n" +
			"a restart resumes exactly, and re-reading any topic changes nothing. Migrates the schema at start.\n" +
			"Postgres down: retries with backoff. See docs/postgres.md.",
		Flags:  flags([]cli.Flag{flagDatabaseURL()}, sinkFlags(), kafkaFlags(), logFlags()),
		Action: runSink,
	}
}

func runSink(ctx context.Context, cmd *cli.Command) error {
	p, err := newPreamble(cmd)
	if err != nil {
		return err
	}
	s, err := sinks.New(sinks.Config{
		Brokers: brokersFrom(cmd), Names: p.Names, DatabaseURL: cmd.String("database-url"),
		Consumer: cmd.String("consumer"), BatchSize: cmd.Int("batch-size"), RetentionDays: cmd.Int("retention-days"),
		Registerer: p.Metrics, Log: p.Log,
	})
	if err != nil {
		return err
	}
	return p.run(ctx, cmd, s.Run, nil)
}

func startDevSink(ctx context.Context, env *devEnv) (func(context.Context) error, error) {
	if env.DatabaseURL == "" {
		env.Banner = append(env.Banner, "sink       off: it needs Postgres (see the postgres line)")
		return nil, nil
	}
	log := env.Log.With("component", "sink")
	// Migrate now, so that the parts after this one (the dashboard) find
	// the schema.
	if _, err := sinks.Migrate(ctx, env.DatabaseURL, log); err != nil {
		return nil, err
	}
	s, err := sinks.New(sinks.Config{
		Brokers: env.Brokers, Names: env.Names, DatabaseURL: env.DatabaseURL,
		SkipMigrate: true, Registerer: env.Metrics, Log: log,
	})
	if err != nil {
		return nil, err
	}
	env.Banner = append(env.Banner, fmt.Sprintf("sink       %s + %s -> Postgres tables events, daily_stats (lag: streamtools_sink_lag_records)",
		env.Names.Events(), env.Names.StatsTable()))
	return s.Run, nil
}
