package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

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
	port, binDir := env.Cmd.Int("postgres-port"), env.Cmd.String("postgres-bin-dir")
	err := checkPostgresPort(port, binDir)
	var c *pgembed.Cluster
	if err == nil {
		c, err = pgembed.Start(ctx, pgembed.Config{
			Dir: dir, Port: port, BinDir: binDir, Database: "streamtools",
			Log: env.Log.With("component", "postgres"),
		})
	}
	if errors.Is(err, pgembed.ErrNoBinaries) {
		env.Log.Warn("no PostgreSQL server binaries found, so the sink and the dashboard are off: install them (apt-get install postgresql) or pass --database-url")
		// The sink's and the dashboard's lines point here.
		env.Banner = append(env.Banner, "postgres   off: no PostgreSQL server binaries found (apt-get install postgresql, or pass --database-url)")
		return nil, nil
	}
	var le *listenError
	if errors.As(err, &le) {
		return nil, err
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

// checkPostgresPort returns a listenError when port is in use on 127.0.0.1:
// pgembed would take a server already there (another dev's) for the one it
// started. Without server binaries, it returns pgembed.ErrNoBinaries
// instead, as pgembed.Start would: the port does not matter then.
func checkPostgresPort(port int, binDir string) error {
	if binDir == "" {
		if _, err := pgembed.FindBinDir(); err != nil {
			return err
		}
	} else if !isFile(filepath.Join(binDir, "postgres")) || !isFile(filepath.Join(binDir, "initdb")) {
		return pgembed.ErrNoBinaries
	}
	if port == 0 {
		return nil
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return devListenError("--postgres-port", "port", addr, err)
	}
	return ln.Close()
}

func isFile(path string) bool {
	st, err := os.Stat(path)
	return err == nil && st.Mode().IsRegular()
}
