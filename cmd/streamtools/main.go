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
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"

	"github.com/urfave/cli/v3"
)

func main() {
	os.Exit(runMain(newApp(), os.Args, os.Stderr))
}

// runMain runs app on args and returns the exit status. The first SIGINT or
// SIGTERM cancels the command's context, and the command stops in order;
// the second exits at once, with status 1, saying what was still stopping
// (see stopStatus).
func runMain(app *cli.Command, args []string, stderr io.Writer) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	status := &stopStatus{}
	ctx = context.WithValue(ctx, stopStatusKey{}, status)
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-sigs:
			cancel()
		case <-done:
			return
		}
		select {
		case sig := <-sigs:
			fmt.Fprintf(stderr, "streamtools: %v again: exiting at once%s\n", sig, status.waitingFor())
			os.Exit(1)
		case <-done:
		}
	}()
	if err := app.Run(ctx, args); err != nil {
		fmt.Fprintln(stderr, "streamtools:", err)
		return 1
	}
	return 0
}

// stopStatus is what a command that stops in parts (dev) is waiting for,
// for the message of a second interrupt. runMain puts one in the commands'
// context; stopStatusFrom finds it.
type stopStatus struct {
	mu   sync.Mutex
	part string // guarded by mu; the part being stopped, "" when none
}

type stopStatusKey struct{}

// stopStatusFrom returns the stopStatus of ctx, nil when it has none (a
// command run by a test rather than by main).
func stopStatusFrom(ctx context.Context) *stopStatus {
	s, _ := ctx.Value(stopStatusKey{}).(*stopStatus)
	return s
}

// set records the part being stopped ("" when none); it fits
// supervise.OnStopping.
func (s *stopStatus) set(part string) {
	s.mu.Lock()
	s.part = part
	s.mu.Unlock()
}

// waitingFor is the end of the second interrupt's message.
func (s *stopStatus) waitingFor() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.part == "" {
		return ""
	}
	return ", while " + s.part + " was still stopping"
}

// newApp returns the command tree: every command of the binary, listed
// here. It builds new command and flag values on each call, since
// urfave/cli keeps state in them (parents, help commands, parsed values):
// tests run several apps in one process, some at the same time.
func newApp() *cli.Command { return newAppWith(devParts()) }

// newAppWith is newApp with the given parts of dev (tests change them).
func newAppWith(parts []devPart) *cli.Command {
	app := &cli.Command{
		Name:  "streamtools",
		Usage: "turn brands' postbacks into live counts for streamers' widgets, a dashboard and Postgres",
		Description: "Every flag can also be set with the environment variable shown beside it.\n" +
			"Start with `streamtools dev`: everything in one process, on embedded defaults.",
		Version: version(),
		Commands: []*cli.Command{
			devCommand(parts),
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
		// First, so that every other part finds the topics and the demo
		// customer; last to stop, once nothing uses it.
		{Name: "broker", Start: startDevBroker, Flags: devBrokerFlags()},
		// Before the sink and the dashboard, which need its URL.
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
