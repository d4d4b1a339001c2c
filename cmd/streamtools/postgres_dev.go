package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/urfave/cli/v3"

	"github.com/streamtools/streamtools/internal/pgembed"
)

// devPostgresFlags are dev's flags for its embedded PostgreSQL.
func devPostgresFlags() []cli.Flag {
	return []cli.Flag{
		&cli.IntFlag{Name: "postgres-port", Value: 54320, Sources: env("postgres-port"),
			Usage: "port of dev's embedded PostgreSQL on 127.0.0.1 (unused with --database-url)"},
		&cli.StringFlag{Name: "postgres-bin-dir", Sources: env("postgres-bin-dir"),
			Usage: "directory holding initdb and postgres for dev's embedded PostgreSQL (default: PATH, then /usr/lib/postgresql/*/bin and the usual places)"},
	}
}

// startDevPostgres starts a PostgreSQL cluster in <data-dir>/postgres from
// the installed server binaries, unless --database-url names a server. With
// neither, dev runs without the parts that need Postgres.
func startDevPostgres(ctx context.Context, env *devEnv) (func(context.Context) error, error) {
	if env.DatabaseURL != "" {
		env.Banner = append(env.Banner, "postgres   --database-url (an external server)")
		return nil, nil
	}
	dir := filepath.Join(env.DataDir, "postgres")
	c, err := pgembed.Start(ctx, pgembed.Config{
		Dir: dir, Port: env.Cmd.Int("postgres-port"), BinDir: env.Cmd.String("postgres-bin-dir"), Database: "streamtools",
		Log: env.Log.With("component", "postgres"),
	})
	if errors.Is(err, pgembed.ErrNoBinaries) {
		env.Log.Warn("no PostgreSQL server binaries found, so the sink and the dashboard are off: install them (apt-get install postgresql) or pass --database-url")
		// The sink's and the dashboard's lines point here.
		env.Banner = append(env.Banner, "postgres   off: no PostgreSQL server binaries found (apt-get install postgresql, or pass --database-url)")
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("starting the embedded PostgreSQL in %s (or pass --database-url): %w", dir, err)
	}
	env.DatabaseURL = c.URL("streamtools")
	env.Banner = append(env.Banner, fmt.Sprintf("postgres   %s (embedded, data in %s; try: psql '%s')", env.DatabaseURL, dir, env.DatabaseURL))
	return func(ctx context.Context) error {
		<-ctx.Done()
		return c.Stop()
	}, nil
}
