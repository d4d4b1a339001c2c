package sinks_test

import (
	"context"
	"testing"

	"github.com/streamtools/streamtools/sinks"
)

func TestReplay(t *testing.T) {
	e := newEnv(t, "")
	_, stop := e.startSink(e.config())
	e.fill(0, nEvents)
	e.fillStats()
	e.waitAll(nEvents)
	stop()
	good := snapshot(t, e.url)
	ctx := context.Background()
	conn := connect(t, e.url)

	// Damage both customers: lost events, wrong counts.
	damage := func() {
		t.Helper()
		for _, q := range []string{
			"DELETE FROM events WHERE customer_code IN ('cust0', 'cust1') AND day = '2024-01-31'",
			"UPDATE daily_stats SET counted = counted + 100 WHERE customer_code IN ('cust0', 'cust1')",
		} {
			if _, err := conn.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	damage()
	damaged := snapshot(t, e.url)
	wantInserted := int64(0)
	for i := 0; i < nEvents; i++ {
		if ev := makeEvent(i); ev.CustomerCode == "cust1" && ev.Day == "2024-01-31" {
			wantInserted++
		}
	}
	wantUpdated := countRows(t, e.url, "SELECT count(*) FROM daily_stats WHERE customer_code = 'cust1'")

	cfg := sinks.ReplayConfig{Brokers: []string{e.addr}, Names: e.names, DatabaseURL: e.url, Customer: "cust1", BatchSize: 100}
	var lastDone, lastTotal int64
	cfg.Progress = func(done, total int64) { lastDone, lastTotal = done, total }

	t.Run("dry run changes nothing", func(t *testing.T) {
		dry := cfg
		dry.DryRun = true
		sum, err := sinks.Replay(ctx, dry)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Events.Inserted != wantInserted || sum.DailyStats.Updated != wantUpdated {
			t.Errorf("dry run summary %+v, want %d events inserted and %d stats updated", sum, wantInserted, wantUpdated)
		}
		if after := snapshot(t, e.url); !equal(after, damaged) {
			t.Error("a dry run changed the database")
		}
	})

	t.Run("one customer", func(t *testing.T) {
		sum, err := sinks.Replay(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Events.Inserted != wantInserted || sum.Events.Updated != 0 || sum.DailyStats.Updated != wantUpdated || sum.DailyStats.Inserted != 0 {
			t.Errorf("summary %+v, want %d events inserted and %d stats updated", sum, wantInserted, wantUpdated)
		}
		if sum.Filtered == 0 || sum.Records != int64(nEvents+nKeys*nVers) {
			t.Errorf("records %d, filtered %d", sum.Records, sum.Filtered)
		}
		if lastTotal != int64(nEvents+nKeys*nVers) || lastDone != lastTotal {
			t.Errorf("progress %d/%d", lastDone, lastTotal)
		}
		if n := countRows(t, e.url, "SELECT count(*) FROM daily_stats WHERE customer_code = 'cust0' AND counted >= 100"); n == 0 {
			t.Error("replaying cust1 repaired cust0")
		}
	})

	t.Run("date range", func(t *testing.T) {
		r := cfg
		r.Customer, r.From, r.To = "", "2024-01-31", "2024-01-31"
		if _, err := sinks.Replay(ctx, r); err != nil {
			t.Fatal(err)
		}
		if n := countRows(t, e.url, "SELECT count(*) FROM daily_stats WHERE counted >= 100 AND day = '2024-01-31'"); n != 0 {
			t.Errorf("%d rows of the range still damaged", n)
		}
		if n := countRows(t, e.url, "SELECT count(*) FROM daily_stats WHERE counted >= 100 AND day <> '2024-01-31'"); n == 0 {
			t.Error("a range replay repaired rows outside the range")
		}
	})

	t.Run("everything, twice", func(t *testing.T) {
		all := cfg
		all.Customer = ""
		if _, err := sinks.Replay(ctx, all); err != nil {
			t.Fatal(err)
		}
		if after := snapshot(t, e.url); !equal(after, good) {
			t.Error("a full replay did not restore the sink's state")
		}
		sum, err := sinks.Replay(ctx, all)
		if err != nil {
			t.Fatal(err)
		}
		if sum.Events.Inserted+sum.Events.Updated+sum.DailyStats.Inserted+sum.DailyStats.Updated+sum.DailyStats.Deleted != 0 {
			t.Errorf("a second replay changed rows: %+v", sum)
		}
	})

	t.Run("bad scope", func(t *testing.T) {
		bad := cfg
		bad.From = "31/01/2024"
		if _, err := sinks.Replay(ctx, bad); err == nil {
			t.Error("no error for a bad --from")
		}
	})
}
