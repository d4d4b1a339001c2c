package main

import (
	"sort"

	"github.com/urfave/cli/v3"
)

// benchCommands are the subcommands of `streamtools bench`, one per
// component benchmark. Files add theirs with registerBench from an init();
// each prints its figure against a baseline measured in the same run.
var benchCommands []*cli.Command

// benchCmd is initialised before any init() runs (package-level variables
// come first), so registerBench may be called from any file's init.
var benchCmd = &cli.Command{
	Name:  "bench",
	Usage: "benchmarks: each prints its throughput or latency against a baseline measured in the same run",
}

func init() { register(benchCmd) }

// registerBench adds a `streamtools bench <name>` subcommand.
func registerBench(c *cli.Command) {
	benchCommands = append(benchCommands, c)
	sort.Slice(benchCommands, func(i, j int) bool { return benchCommands[i].Name < benchCommands[j].Name })
	benchCmd.Commands = benchCommands
}
