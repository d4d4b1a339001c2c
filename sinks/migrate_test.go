package sinks_test

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/streamtools/streamtools/internal/pgtest"
	"github.com/streamtools/streamtools/sinks"
)

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestMigrateUpDownUp(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDatabase(t)
	applied, err := sinks.Migrate(ctx, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 || applied[0].Version != 1 {
		t.Fatalf("applied %+v", applied)
	}
	again, err := sinks.Migrate(ctx, url, nil)
	if err != nil || len(again) != 0 {
		t.Fatalf("second run applied %+v, %v", again, err)
	}
	conn := connect(t, url)
	for _, rel := range []string{"events", "daily_stats", "influencer_totals", "campaign_totals", "sink_offsets"} {
		var comment *string
		if err := conn.QueryRow(ctx, "SELECT obj_description(to_regclass($1), 'pg_class')", rel).Scan(&comment); err != nil || comment == nil {
			t.Errorf("%s: no COMMENT (%v)", rel, err)
		}
		var ok bool
		if err := conn.QueryRow(ctx, "SELECT has_table_privilege('streamtools_reader', $1, 'SELECT')", rel).Scan(&ok); err != nil || !ok {
			t.Errorf("streamtools_reader cannot read %s (%v)", rel, err)
		}
		if err := conn.QueryRow(ctx, "SELECT has_table_privilege('streamtools_reader', $1, 'INSERT')", rel).Scan(&ok); err != nil || ok {
			t.Errorf("streamtools_reader can write %s (%v)", rel, err)
		}
	}
	// Partitions: created on demand, dropped by retention.
	var name string
	if err := conn.QueryRow(ctx, "SELECT streamtools_events_partition('2024-01-15')").Scan(&name); err != nil || name != "events_y2024m01" {
		t.Fatalf("partition %q, %v", name, err)
	}
	if _, err := conn.Exec(ctx, "SELECT streamtools_events_partition('2024-02-01')"); err != nil {
		t.Fatal(err)
	}
	var dropped int
	if err := conn.QueryRow(ctx, "SELECT streamtools_drop_events_before('2024-02-01')").Scan(&dropped); err != nil || dropped != 1 {
		t.Fatalf("dropped %d, %v", dropped, err)
	}
	conn.Close(ctx)
	for {
		r, err := sinks.MigrateDown(ctx, url)
		if err != nil {
			t.Fatalf("down: %v", err)
		}
		if r.Version == 1 {
			break
		}
	}
	if _, err := sinks.Migrate(ctx, url, nil); err != nil {
		t.Fatalf("up after down: %v", err)
	}
}
