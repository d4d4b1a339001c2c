package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/bench/fanout"
)

func benchWidgetdCommand() *cli.Command {
	return &cli.Command{
		Name:  "widgetd",
		Usage: "fan-out: websocket clients on one widgetd, one update per second per influencer, against a plain fasthttp/websocket broadcast",
		Description: "Runs an embedded broker and widgetd in this process and the clients in a child process (this binary,\n" +
			"`bench widgetd-clients`), so that memory per connection is the server's alone. Prints delivery latency\n" +
			"(update produced -> client read) p50/p99/p99.9 and memory per connection for both servers.\n" +
			"Goals: widgetd p99 <= 100 ms and <= 30 KB per connection.",
		Flags: append([]cli.Flag{
			&cli.IntFlag{Name: "clients", Value: 10000, Usage: "websocket clients (the open-file limit must allow them)"},
			&cli.IntFlag{Name: "influencers", Value: 1000, Usage: "influencers the clients spread over"},
			&cli.FloatFlag{Name: "rate", Value: 1, Usage: "updates per second per influencer"},
			&cli.DurationFlag{Name: "warmup", Value: 3 * time.Second, Usage: "updates before measuring"},
			&cli.DurationFlag{Name: "duration", Value: 15 * time.Second, Usage: "measured updates, per server"},
			&cli.DurationFlag{Name: "timeout", Value: 5 * time.Minute, Usage: "bound on the whole run"},
		}, logFlags()...),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			log, err := loggerFrom(cmd)
			if err != nil {
				return err
			}
			self, err := os.Executable()
			if err != nil {
				return fmt.Errorf("finding this binary for the client process: %w", err)
			}
			ctx, cancel := context.WithTimeout(ctx, cmd.Duration("timeout"))
			defer cancel()
			_, _, err = fanout.Run(ctx, fanout.Config{
				Clients: int(cmd.Int("clients")), Influencers: int(cmd.Int("influencers")), Rate: cmd.Float("rate"),
				Warmup: cmd.Duration("warmup"), Duration: cmd.Duration("duration"),
				ClientCommand: []string{self, "bench", "widgetd-clients"}, Log: log,
			})
			return err
		},
	}
}

// benchWidgetdClientsCommand is the child process of `bench widgetd`.
func benchWidgetdClientsCommand() *cli.Command {
	return &cli.Command{
		Name:   "widgetd-clients",
		Usage:  "the client process of `bench widgetd` (speaks a line protocol on stdin/stdout)",
		Hidden: true,
		Action: func(ctx context.Context, cmd *cli.Command) error {
			return fanout.RunClients(os.Stdin, os.Stdout)
		},
	}
}
