package main

import (
	"context"
	"fmt"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/sinks"
)

func migrateCommand() *cli.Command {
	return &cli.Command{
		Name:  "migrate",
		Usage: "apply the Postgres schema migrations (the sink also applies them at start)",
		Description: "Applies every pending migration embedded in the binary (sinks/migrations) to --database-url.\n" +
			"Safe to run at any time and from several places at once. See docs/postgres.md (Commands).",
		Flags: flags([]cli.Flag{flagDatabaseURL(),
			&cli.BoolFlag{Name: "status", Usage: "list the migrations and whether each ran, change nothing"},
			&cli.BoolFlag{Name: "down", Usage: "roll back the most recent migration (drops its tables and data)"},
		}, logFlags()),
		Action: func(ctx context.Context, cmd *cli.Command) error {
			p, err := newPreamble(cmd)
			if err != nil {
				return err
			}
			url := cmd.String("database-url")
			if url == "" {
				return fmt.Errorf("--database-url is empty: set a PostgreSQL connection string (or STREAMTOOLS_DATABASE_URL)")
			}
			switch {
			case cmd.Bool("status"):
				st, err := sinks.MigrationStatus(ctx, url)
				if err != nil {
					return err
				}
				for _, s := range st {
					applied := "pending"
					if !s.AppliedAt.IsZero() {
						applied = "applied " + s.AppliedAt.Format("2006-01-02 15:04:05")
					}
					fmt.Printf("%05d  %-40s %s\n", s.Source.Version, s.Source.Path, applied)
				}
				return nil
			case cmd.Bool("down"):
				r, err := sinks.MigrateDown(ctx, url)
				if err != nil {
					return err
				}
				fmt.Printf("rolled back %05d %s\n", r.Version, r.Source)
				return nil
			}
			res, err := sinks.Migrate(ctx, url, p.Log)
			if err != nil {
				return err
			}
			if len(res) == 0 {
				fmt.Println("schema is up to date")
			}
			for _, r := range res {
				fmt.Printf("applied %05d %s\n", r.Version, r.Source)
			}
			return nil
		},
	}
}
