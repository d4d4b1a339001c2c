package sinks

import (
	"context"
	"database/sql"
	"embed"
	"fmt"
	"io/fs"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

// Migrations is the directory of SQL migrations, NNNNN_name.sql with
// `-- +goose Up` and `-- +goose Down` sections. The sink owns 00001-00099;
// the dashboard owns 00100 and up. Migrations apply out of order, so a
// lower number that lands later still runs.
//
//go:embed migrations/*.sql
var migrationsFS embed.FS

// MigrationTable records which migrations ran.
const MigrationTable = "streamtools_migrations"

// MigrationResult is one applied migration.
type MigrationResult struct {
	Version int64
	Source  string
}

// Migrate applies every pending migration to the database at url and
// returns what it applied. It is safe to run concurrently (a session
// advisory lock serializes runners) and does nothing when the schema is
// current. The sink runs it at start; `streamtools migrate` runs it alone.
func Migrate(ctx context.Context, url string, log *slog.Logger) ([]MigrationResult, error) {
	p, db, err := provider(url)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	res, err := p.Up(ctx)
	if err != nil {
		return nil, fmt.Errorf("sinks: migrating: %w", err)
	}
	out := make([]MigrationResult, 0, len(res))
	for _, r := range res {
		out = append(out, MigrationResult{Version: r.Source.Version, Source: r.Source.Path})
		if log != nil {
			log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
		}
	}
	return out, nil
}

// MigrateDown rolls back the most recent migration (for `streamtools
// migrate --down`, and tests of Down sections).
func MigrateDown(ctx context.Context, url string) (*MigrationResult, error) {
	p, db, err := provider(url)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	r, err := p.Down(ctx)
	if err != nil {
		return nil, fmt.Errorf("sinks: rolling back: %w", err)
	}
	return &MigrationResult{Version: r.Source.Version, Source: r.Source.Path}, nil
}

// MigrationStatus lists every known migration and whether it ran.
func MigrationStatus(ctx context.Context, url string) ([]*goose.MigrationStatus, error) {
	p, db, err := provider(url)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	st, err := p.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("sinks: reading migration status: %w", err)
	}
	return st, nil
}

func provider(url string) (*goose.Provider, *sql.DB, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, nil, fmt.Errorf("sinks: parsing the database URL: %w", err)
	}
	db := stdlib.OpenDB(*cfg)
	sub, err := fs.Sub(migrationsFS, "migrations")
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sinks: opening embedded migrations: %w", err)
	}
	locker, err := lock.NewPostgresSessionLocker()
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sinks: creating the migration lock: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, sub,
		goose.WithTableName(MigrationTable),
		goose.WithAllowOutofOrder(true),
		goose.WithSessionLocker(locker),
	)
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("sinks: loading migrations: %w", err)
	}
	return p, db, nil
}
