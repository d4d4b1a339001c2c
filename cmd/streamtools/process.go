package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/processors"
	"github.com/streamtools/streamtools/schemas"
)

func processFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "state-dir", Sources: env("state-dir"),
			Usage: "local directory of this instance's goka tables, wiped at start (the changelogs are the source of truth); default a temporary directory removed at exit"},
		&cli.DurationFlag{Name: "event-id-retention", Value: 7 * 24 * time.Hour, Sources: env("event-id-retention"),
			Usage: "how long a sender's event_id stays a duplicate key (at least 1h)"},
		&cli.DurationFlag{Name: "maintain-every", Value: time.Hour, Sources: env("maintain-every"),
			Usage: "period of the claims maintenance that deletes past days' visitor claims and expired event ids"},
		&cli.IntFlag{Name: "replication", Value: 1, Sources: env("replication"),
			Usage: "replication factor of topics goka creates (1 on a single broker; 3 on a production cluster)"},
		&cli.StringFlag{Name: "metrics-listen", Value: "127.0.0.1:9102", Sources: env("metrics-listen"),
			Usage: "host:port serving Prometheus /metrics (streamtools_processor_postbacks_total, ..._ready, ...) and /readyz (503 while starting or while the broker does not answer); empty disables it"},
	}
}

func processCommand() *cli.Command {
	return &cli.Command{
		Name:  "process",
		Usage: "run the goka processors: claims (anti-cheat, event ids), verdicts and the stats table per day row",
		Description: "Reads the postbacks topic, gives every postback a verdict (counted, duplicate_visitor,\n" +
			"duplicate_event_id) into the events topic, and keeps exact absolute counts in the stats table.\n" +
			"Run any number of instances: they share the partitions through goka's consumer groups. A broker\n" +
			"outage stalls them (not ready) and they resume on their own. Bump --generation to rebuild every\n" +
			"table from the start of postbacks. See docs/processors.md.",
		Flags:  flags(processFlags(), kafkaFlags(), logFlags()),
		Action: runProcess,
	}
}

func runProcess(ctx context.Context, cmd *cli.Command) error {
	pre, err := newPreamble(cmd)
	if err != nil {
		return err
	}
	dir := cmd.String("state-dir")
	if dir == "" {
		if dir, err = os.MkdirTemp("", "streamtools-process-"); err != nil {
			return fmt.Errorf("creating a temporary --state-dir: %w", err)
		}
		defer os.RemoveAll(dir)
	}
	setup, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	p, err := processors.New(setup, processors.Config{
		Brokers: brokersFrom(cmd), Names: pre.Names, StateDir: dir, Log: pre.Log,
		Partitions:       int32(cmd.Int("partitions")),
		EventIDRetention: cmd.Duration("event-id-retention"),
		MaintainEvery:    cmd.Duration("maintain-every"),
		Replication:      cmd.Int("replication"),
		Registerer:       pre.Metrics,
	})
	if err != nil {
		return fmt.Errorf("starting the processors (is Kafka at --brokers %s?): %w", cmd.String("brokers"), err)
	}
	pre.Log.Info("processors starting", "generation", pre.Names.Generation, "state_dir", dir)
	return pre.run(ctx, cmd, p.Run, p.Ready)
}

func startDevProcess(ctx context.Context, env *devEnv) (func(context.Context) error, error) {
	dir := filepath.Join(env.DataDir, "processors")
	p, err := processors.New(ctx, processors.Config{
		Brokers: env.Brokers, Names: env.Names, StateDir: dir,
		Log: env.Log.With("component", "process"), Partitions: int32(env.Partitions),
		Registerer: env.Metrics,
	})
	if err != nil {
		return nil, err
	}
	env.Banner = append(env.Banner, fmt.Sprintf("process    goka groups %s, %s, %s (generation %d, local state in %s)",
		env.Names.Group(schemas.GroupClaims), env.Names.Group(schemas.GroupVerdicts), env.Names.Group(schemas.GroupStats),
		env.Names.Generation, dir))
	return p.Run, nil
}
