// Command streamtools is the one binary of StreamTools: a subcommand per
// component (ingest, process, sink, widgetd, dashboard, broker), operator
// commands (customers, keys, migrate, replay), benchmarks (bench), and dev,
// which runs everything in one process on embedded defaults.
//
// main only parses options, wires components together and handles signals;
// the components live in their own packages and expose Run(ctx).
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sort"
	"syscall"

	"github.com/urfave/cli/v3"
)

// commands is filled by the init functions of this package's files, one
// file per subcommand, so that every flag of a command sits beside it.
var commands []*cli.Command

func register(c *cli.Command) { commands = append(commands, c) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newApp().Run(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "streamtools:", err)
		os.Exit(1)
	}
}

// newApp returns the command tree; tests run it in process.
func newApp() *cli.Command {
	finishDevFlags()
	sort.Slice(commands, func(i, j int) bool { return commands[i].Name < commands[j].Name })
	return &cli.Command{
		Name:  "streamtools",
		Usage: "turn brands' postbacks into live counts for streamers' widgets, a dashboard and Postgres",
		Description: "Every flag can also be set with the environment variable shown beside it.\n" +
			"Start with `streamtools dev`: everything in one process, on embedded defaults.",
		Commands:              commands,
		EnableShellCompletion: true,
	}
}
