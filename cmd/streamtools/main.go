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
	"runtime/debug"
	"sort"
	"strings"
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
		Version:               version(),
		Commands:              commands,
		EnableShellCompletion: true,
		// Without it, an unknown command printed "No help topic for ..."
		// and nothing else.
		Action: func(ctx context.Context, cmd *cli.Command) error {
			if cmd.Args().Len() == 0 {
				return cli.ShowAppHelp(cmd)
			}
			var names []string
			for _, c := range cmd.VisibleCommands() {
				names = append(names, c.Name)
			}
			return fmt.Errorf("unknown command %q; the commands are %s (streamtools --help says what each does)",
				cmd.Args().First(), strings.Join(names, ", "))
		},
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
