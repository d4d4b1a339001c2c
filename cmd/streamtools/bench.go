package main

import (
	"github.com/urfave/cli/v3"
)

// benchCommand is `streamtools bench`: one subcommand per benchmark, each
// printing its figure against a baseline measured in the same run. The
// harnesses live in bench/.
func benchCommand() *cli.Command {
	return &cli.Command{
		Name:  "bench",
		Usage: "benchmarks: each prints its throughput or latency against a baseline measured in the same run",
		Commands: []*cli.Command{
			benchAllCommand(),
			benchE2ECommand(),
			benchIngestCommand(),
			benchProcessCommand(),
			benchSinkCommand(),
			benchWidgetdCommand(),
			benchWidgetdClientsCommand(),
		},
	}
}
