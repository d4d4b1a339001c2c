package main

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/schemas"
)

func brokerCommand() *cli.Command {
	return &cli.Command{
		Name:  "broker",
		Usage: "run only the embedded Kafka-protocol broker (kfake), to run components as separate processes",
		Flags: flags([]cli.Flag{
			&cli.StringFlag{Name: "listen", Value: "127.0.0.1:9092", Sources: env("broker-listen"),
				Usage: "host:port the broker listens on"},
			flagDataDir(), flagTopicPrefix(), flagGeneration(), flagPartitions(),
		}, logFlags()),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			p, err := newPreamble(cmd)
			if err != nil {
				return err
			}
			b, err := broker.Start(broker.Config{
				Addr:       cmd.String("listen"),
				DataDir:    filepath.Join(cmd.String("data-dir"), "kafka"),
				Partitions: cmd.Int("partitions"),
			})
			if err != nil {
				return err
			}
			defer b.Close()
			if err := createTopics(ctx, []string{b.Addr()}, p.Names, cmd.Int("partitions")); err != nil {
				return err
			}
			p.Log.Info("embedded broker listening", "addr", b.Addr(), "data_dir", cmd.String("data-dir"))
			<-ctx.Done()
			p.Log.Info("embedded broker stopping")
			return nil
		},
	}
}

// createTopics creates the topics every component expects to exist (goka
// creates only its own table and loop topics).
func createTopics(ctx context.Context, brokers []string, names schemas.Names, partitions int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return fmt.Errorf("creating kafka client: %w", err)
	}
	defer cl.Close()
	return kafkautil.EnsureTopics(ctx, cl, kafkautil.CoreTopics(names, int32(partitions)))
}
