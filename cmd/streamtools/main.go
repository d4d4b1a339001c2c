// Command streamtools is the one binary of StreamTools: a subcommand per
// component (ingest, process, sink, widgetd, dashboard, broker), operator
// commands (customers, keys, migrate, replay), benchmarks (bench), and dev,
// which runs everything in one process on embedded defaults.
//
// main only parses options, wires components together and handles signals;
// the components live in their own packages and expose Run(ctx). main.go
// lists every command (newApp) and every part of dev (devParts); each
// command's flags sit beside it in its own file, preamble.go is what every
// component command starts with, and usage.go what every command does with
// a wrong command line.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"github.com/urfave/cli/v3"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := newApp().Run(ctx, os.Args); err != nil {
		fmt.Fprintln(os.Stderr, "streamtools:", err)
		os.Exit(1)
	}
}

// newApp returns the command tree: every command of the binary, listed
// here. It builds new command and flag values on each call, since
// urfave/cli keeps state in them (parents, help commands, parsed values):
// tests run several apps in one process, some at the same time.
func newApp() *cli.Command {
	app := &cli.Command{
		Name:  "streamtools",
		Usage: "turn brands' postbacks into live counts for streamers' widgets, a dashboard and Postgres",
		Description: "Every flag can also be set with the environment variable shown beside it.\n" +
			"Start with `streamtools dev`: everything in one process, on embedded defaults.",
		Version: version(),
		Commands: []*cli.Command{
			devCommand(devParts()),
			// The components, one process each in production.
			brokerCommand(),
			ingestCommand(),
			processCommand(),
			sinkCommand(),
			widgetdCommand(),
			dashboardCommand(),
			// Operators' commands.
			customersCommand(),
			keysCommand(),
			migrateCommand(),
			replayCommand(),
			benchCommand(),
		},
		EnableShellCompletion: true,
	}
	applyUsageRules(app)
	return app
}

// devParts are what `streamtools dev` runs, in start order. They stop
// intake first (the edge: nothing new is accepted while the rest drains),
// then the others in reverse order, each after the one before it returned
// (internal/supervise).
func devParts() []devPart {
	return []devPart{
		// First, so that the sink and the dashboard find its URL.
		{Name: "postgres", Start: startDevPostgres, Flags: devPostgresFlags()},
		{Name: "ingest", Intake: true, Start: startDevIngest, Flags: devIngestFlags()},
		{Name: "process", Start: startDevProcess},
		// Migrates the schema before the dashboard starts.
		{Name: "sink", Start: startDevSink},
		{Name: "widgetd", Start: startDevWidgetd, Flags: devWidgetdFlags()},
		{Name: "dashboard", Start: startDevDashboard, Flags: devDashboardFlags()},
	}
}

// version is the module version and VCS revision the binary was built
// from, as Go recorded them (`go install` of a tagged version, or a build
// in a git checkout).
func version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v += " " + s.Value
		case "vcs.modified":
			if s.Value == "true" {
				v += " (modified)"
			}
		}
	}
	return v + " " + bi.GoVersion
}
