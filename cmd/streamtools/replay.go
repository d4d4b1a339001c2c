package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/sinks"
)

func replayCommand() *cli.Command {
	return &cli.Command{
		Name:  "replay",
		Usage: "rebuild the Postgres tables (all, one customer, or a date range) from the topics",
		Description: "Reads the events topic and the stats table changelog of --generation from their start up to their\n" +
			"end at start time, and upserts every row in scope, like the sink. Prints what changed\n" +
			"(inserted, updated, unchanged). Safe while the sink runs. See docs/postgres.md (Replay for data teams).",
		// Like the other operator commands, it finds dev's broker and
		// database through --data-dir. No --partitions: replay creates no
		// topic.
		Flags: flags([]cli.Flag{flagDatabaseURL(), flagOperatorBrokers(), flagTopicPrefix(), flagGeneration(),
			flagDevDataDir("data directory of streamtools dev: without --brokers (or STREAMTOOLS_BROKERS) and --database-url (or STREAMTOOLS_DATABASE_URL), the broker and database of the dev running there"),
			&cli.StringFlag{Name: "customer", Usage: "rebuild only this customer code"},
			&cli.StringFlag{Name: "from", Usage: "first day to rebuild, YYYY-MM-DD (the customer's day)"},
			&cli.StringFlag{Name: "to", Usage: "last day to rebuild, YYYY-MM-DD, inclusive"},
			&cli.BoolFlag{Name: "dry-run", Usage: "say what would change, change nothing"},
			&cli.IntFlag{Name: "batch-size", Value: 10000, Usage: "most records per transaction"},
		}, logFlags()),
		Action: runReplay,
	}
}

func runReplay(ctx context.Context, cmd *cli.Command) error {
	p, err := newPreamble(cmd)
	if err != nil {
		return err
	}
	names := p.Names
	brokers, err := operatorBrokers(cmd)
	if err != nil {
		return err
	}
	dbURL, _, err := operatorDatabaseURL(cmd)
	if err != nil {
		return err
	}
	cfg := sinks.ReplayConfig{
		Brokers: brokers.addrs, Names: names, DatabaseURL: dbURL,
		Customer: cmd.String("customer"), From: cmd.String("from"), To: cmd.String("to"),
		DryRun: cmd.Bool("dry-run"), BatchSize: cmd.Int("batch-size"), Log: p.Log,
	}
	var bar *progressbar.ProgressBar
	if isatty.IsTerminal(os.Stderr.Fd()) {
		cfg.Progress = func(done, total int64) {
			if bar == nil {
				bar = progressbar.NewOptions64(total, progressbar.OptionSetWriter(os.Stderr),
					progressbar.OptionSetDescription("replaying"), progressbar.OptionShowCount(),
					progressbar.OptionShowIts(),
					progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionFullWidth())
			}
			_ = bar.Set64(done) // writes to a terminal: nothing to do on error
		}
	} else {
		var last time.Time
		cfg.Progress = func(done, total int64) {
			if time.Since(last) >= 2*time.Second || done == total {
				last = time.Now()
				fmt.Fprintf(os.Stderr, "replaying: %d/%d records\n", done, total)
			}
		}
	}
	start := time.Now()
	sum, err := sinks.Replay(ctx, cfg)
	if bar != nil {
		_ = bar.Finish()
		fmt.Fprintln(os.Stderr)
	}
	if err != nil {
		return err
	}
	what := "changed"
	if cfg.DryRun {
		what = "would change (dry run: nothing was written)"
	}
	fmt.Printf("replay of %s and %s %s in %v:\n", names.Events(), names.StatsTable(), what, time.Since(start).Round(time.Millisecond))
	fmt.Printf("  records read %d (out of scope %d, past retention %d, invalid %d)\n", sum.Records, sum.Filtered, sum.Expired, sum.Invalid)
	fmt.Printf("  %-12s inserted %d, updated %d, unchanged %d\n", "events", sum.Events.Inserted, sum.Events.Updated, sum.Events.Unchanged)
	fmt.Printf("  %-12s inserted %d, updated %d, unchanged %d, deleted %d\n", "daily_stats",
		sum.DailyStats.Inserted, sum.DailyStats.Updated, sum.DailyStats.Unchanged, sum.DailyStats.Deleted)
	return nil
}
