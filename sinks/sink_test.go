package sinks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/internal/broker"
	"github.com/streamtools/streamtools/internal/kafkatest"
	"github.com/streamtools/streamtools/internal/kafkautil"
	"github.com/streamtools/streamtools/internal/pgtest"
	"github.com/streamtools/streamtools/internal/testrun"
	"github.com/streamtools/streamtools/schemas"
	"github.com/streamtools/streamtools/sinks"
)

func testLog(t *testing.T) *slog.Logger {
	if os.Getenv("SINK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// env is a broker with the sink's topics and a database.
type env struct {
	t     *testing.T
	addr  string
	names schemas.Names
	url   string
	cl    *kgo.Client
}

func newEnv(t *testing.T, url string) *env {
	t.Helper()
	e, _ := newEnvOn(t, url, "")
	return e
}

// newEnvOn is newEnv with the broker's data directory (for a test that
// restarts it there), and the broker.
func newEnvOn(t *testing.T, url, dataDir string) (*env, *broker.Broker) {
	t.Helper()
	b := kafkatest.Start(t, dataDir)
	names := kafkatest.Names(t)
	kafkatest.CreateCoreTopics(t, b.Addr(), names, 3)
	cl := kafkatest.Client(t, b.Addr())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	compact := "compact"
	if err := kafkautil.EnsureTopics(ctx, cl, []kafkautil.TopicSpec{{
		Name: names.StatsTable(), Partitions: 3, Configs: map[string]*string{"cleanup.policy": &compact},
	}}); err != nil {
		t.Fatal(err)
	}
	if url == "" {
		url = pgtest.NewDatabase(t)
	}
	return &env{t: t, addr: b.Addr(), names: names, url: url, cl: cl}, b
}

func (e *env) config() sinks.Config {
	return sinks.Config{
		Brokers: []string{e.addr}, Names: e.names, DatabaseURL: e.url,
		BatchSize: 500, MaxBackoff: 200 * time.Millisecond, Log: testLog(e.t),
	}
}

// startSink runs a sink until the test ends or stop is called.
func (e *env) startSink(cfg sinks.Config) (s *sinks.Sink, stop func()) {
	e.t.Helper()
	s, err := sinks.New(cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return s, testrun.Start(e.t, "sink", s.Run).Stop
}

func (e *env) produce(recs ...*kgo.Record) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		e.t.Fatal(err)
	}
}

// eventRecord is ev on the events topic, keyed like the verdicts processor
// keys it (by DayKey). The sink does not read the key.
func eventRecord(t testing.TB, n schemas.Names, ev schemas.Event) *kgo.Record {
	v, err := schemas.EventCodec.Encode(ev)
	if err != nil {
		t.Fatal(err)
	}
	key := schemas.DayKey(ev.CustomerCode, ev.Product, ev.InfluencerID, ev.Campaign, ev.Day)
	return &kgo.Record{Topic: n.Events(), Key: []byte(key), Value: v}
}

func statsRecord(t testing.TB, n schemas.Names, s *schemas.Stats, key string) *kgo.Record {
	r := &kgo.Record{Topic: n.StatsTable(), Key: []byte(key)}
	if s != nil {
		v, err := schemas.StatsCodec.Encode(s)
		if err != nil {
			t.Fatal(err)
		}
		r.Value = v
	}
	return r
}

var base = time.Date(2024, 1, 30, 12, 0, 0, 0, time.UTC)

// makeEvent is event i: three customers, days across a month boundary,
// some duplicates.
func makeEvent(i int) schemas.Event {
	at := base.Add(time.Duration(i%5) * 24 * time.Hour).Add(time.Duration(i) * time.Millisecond)
	ev := schemas.Event{
		V: schemas.EventVersion, ID: fmt.Sprintf("pb-%06d", i), ReceivedAt: at,
		CustomerCode: fmt.Sprintf("cust%d", i%3), Day: at.Format(schemas.DayLayout),
		Attrs: schemas.Attrs{
			InfluencerID: fmt.Sprintf("influ_%d", i%7), Product: "product", EventType: []string{"reg", "dep"}[i%2],
			EventName: "registration", Campaign: []string{"", "Jan2024_special_event"}[i%2], Source: "twitch", Country: "FR",
		},
		Verdict: schemas.VerdictCounted,
		Src:     schemas.Position{Lane: schemas.LaneRequests, Partition: int32(i % 3), Offset: int64(i)},
	}
	if i%4 == 3 {
		ev.Verdict, ev.Reason = schemas.VerdictDuplicate, schemas.ReasonDuplicateVisitor
	}
	if i%10 == 0 {
		ev.EventID = fmt.Sprintf("tx-%d", i)
	}
	return ev
}

type statsRow struct {
	key string
	s   *schemas.Stats
}

// makeStats is version v (1..) of stats row k: absolute, growing counts.
func makeStats(k, v int) statsRow {
	day := base.AddDate(0, 0, k%4).Format(schemas.DayLayout)
	s := &schemas.Stats{
		V: schemas.StatsVersion, CustomerCode: fmt.Sprintf("cust%d", k%3), Product: "product",
		InfluencerID: fmt.Sprintf("influ_%d", k), Campaign: []string{"", "camp"}[k%2], Day: day,
		ByType: map[string]schemas.Counts{
			"reg": {Counted: int64(v * 3), Duplicates: map[string]int64{schemas.ReasonDuplicateVisitor: int64(v), schemas.ReasonDuplicateEventID: 1}},
			"dep": {Counted: int64(v)},
		},
		UpdatedAt: base.Add(time.Duration(v) * time.Second),
	}
	// The processors' replay guard: the sink ignores it.
	s.Applied.Advance(schemas.Position{Lane: schemas.LaneRequests, Partition: int32(k % 3), Offset: int64(v)})
	return statsRow{schemas.DayKey(s.CustomerCode, s.Product, s.InfluencerID, s.Campaign, day), s}
}

func countRows(t *testing.T, url, query string, args ...any) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return -1 // Postgres may be down in the fault test: poll again
	}
	defer conn.Close(ctx)
	var n int64
	if err := conn.QueryRow(ctx, query, args...).Scan(&n); err != nil {
		return -1
	}
	return n
}

// snapshot dumps both tables as sorted text lines, to compare states.
func snapshot(t *testing.T, url string) []string {
	t.Helper()
	ctx := context.Background()
	conn := connect(t, url)
	var out []string
	for _, q := range []string{
		"SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', id, event_id, customer_code, product, influencer_id, event_type, event_name, campaign, medium, source, country, received_at, day, verdict, reason) FROM events",
		"SELECT format('%s|%s|%s|%s|%s|%s|%s|%s|%s|%s|%s', customer_code, product, influencer_id, campaign, day, event_type, counted, duplicates, duplicate_visitor, duplicate_event_id, updated_at) FROM daily_stats",
	} {
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		s, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s...)
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

const (
	nEvents = 300
	nKeys   = 12
	nVers   = 5
)

// fill produces nEvents events and nVers versions of nKeys stats rows.
func (e *env) fill(from, to int) {
	var recs []*kgo.Record
	for i := from; i < to; i++ {
		recs = append(recs, eventRecord(e.t, e.names, makeEvent(i)))
	}
	e.produce(recs...)
}

func (e *env) fillStats() {
	var recs []*kgo.Record
	for v := 1; v <= nVers; v++ {
		for k := 0; k < nKeys; k++ {
			r := makeStats(k, v)
			recs = append(recs, statsRecord(e.t, e.names, r.s, r.key))
		}
	}
	e.produce(recs...)
}

func (e *env) waitFor(what string, rows int64, query string) {
	e.t.Helper()
	kafkatest.Eventually(e.t, 60*time.Second, what, func() bool { return countRows(e.t, e.url, query) == rows })
}

func (e *env) waitAll(events int) {
	e.t.Helper()
	e.waitFor("events in postgres", int64(events), "SELECT count(*) FROM events")
	// every key at its last version: reg counted = 3*nVers
	e.waitFor("daily_stats at their last version", nKeys, fmt.Sprintf("SELECT count(*) FROM daily_stats WHERE event_type = 'reg' AND counted = %d", 3*nVers))
}

func TestSinkWritesTheBIContract(t *testing.T) {
	e := newEnv(t, "")
	reg := prometheus.NewRegistry()
	cfg := e.config()
	cfg.Registerer = reg
	s, stop := e.startSink(cfg)
	e.fill(0, nEvents)
	e.fillStats()
	e.waitAll(nEvents)
	kafkatest.Eventually(t, 10*time.Second, "lag 0", func() bool {
		return metricSum(t, reg, "streamtools_sink_batches_total") > 0 &&
			metricSum(t, reg, "streamtools_sink_lag_records", "topic", e.names.Events()) == 0
	})
	stop()

	ctx := context.Background()
	conn := connect(t, e.url)
	ev := makeEvent(3)
	var got schemas.Event
	var day time.Time
	if err := conn.QueryRow(ctx, `SELECT id, event_id, customer_code, product, influencer_id, event_type, event_name, campaign,
		medium, source, country, received_at, day, verdict, reason FROM events WHERE id = $1`, ev.ID).Scan(
		&got.ID, &got.EventID, &got.CustomerCode, &got.Product, &got.InfluencerID, &got.EventType, &got.EventName,
		&got.Campaign, &got.Medium, &got.Source, &got.Country, &got.ReceivedAt, &day, &got.Verdict, &got.Reason); err != nil {
		t.Fatal(err)
	}
	// V and Src are not stored (Src is the processors' replay identity).
	got.V, got.Src, got.Day, got.ReceivedAt = ev.V, ev.Src, day.Format(schemas.DayLayout), got.ReceivedAt.UTC()
	if fmt.Sprint(got) != fmt.Sprint(ev) {
		t.Errorf("event row\n got %+v\nwant %+v", got, ev)
	}
	// Both months got a partition.
	if n := countRows(t, e.url, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'events'::regclass"); n != 2 {
		t.Errorf("%d partitions, want 2 (January and February)", n)
	}
	// Stats: absolute values of the last version, duplicates split by reason.
	r := makeStats(1, nVers)
	var counted, dups, dv, de int64
	if err := conn.QueryRow(ctx, `SELECT counted, duplicates, duplicate_visitor, duplicate_event_id FROM daily_stats
		WHERE customer_code = $1 AND influencer_id = $2 AND campaign = $3 AND day = $4 AND event_type = 'reg'`,
		r.s.CustomerCode, r.s.InfluencerID, r.s.Campaign, r.s.Day).Scan(&counted, &dups, &dv, &de); err != nil {
		t.Fatal(err)
	}
	if counted != 3*nVers || dv != nVers || de != 1 || dups != nVers+1 {
		t.Errorf("daily_stats row: counted %d duplicates %d (visitor %d, event_id %d)", counted, dups, dv, de)
	}
	var total int64
	if err := conn.QueryRow(ctx, `SELECT counted FROM influencer_totals WHERE customer_code = $1 AND influencer_id = $2 AND event_type = 'reg'`,
		r.s.CustomerCode, r.s.InfluencerID).Scan(&total); err != nil || total != 3*nVers {
		t.Errorf("influencer_totals: %d, %v", total, err)
	}
	if tot := s.Totals(); tot.Events.Inserted != nEvents || tot.DailyStats.Inserted != 2*nKeys {
		t.Errorf("totals %+v", tot)
	}
}

// metricSum sums every series of metric name in reg.
func metricSum(t *testing.T, reg *prometheus.Registry, name string, labels ...string) float64 {
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for i := 0; i+1 < len(labels); i += 2 {
				found := false
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == labels[i] && l.GetValue() == labels[i+1]
				}
				if !found {
					continue series
				}
			}
			sum += m.GetGauge().GetValue() + m.GetCounter().GetValue()
		}
	}
	return sum
}

// Re-reading every topic from offset zero, and producing every record a
// second time, changes nothing.
func TestSinkIdempotentReplay(t *testing.T) {
	e := newEnv(t, "")
	_, stop := e.startSink(e.config())
	e.fill(0, nEvents)
	e.fillStats()
	e.waitAll(nEvents)
	stop()
	before := snapshot(t, e.url)

	// Reprocess from offset zero: forget the offsets.
	conn := connect(t, e.url)
	if _, err := conn.Exec(context.Background(), "DELETE FROM sink_offsets"); err != nil {
		t.Fatal(err)
	}
	// And the same records once more, as an at-least-once producer would.
	e.fill(0, nEvents)
	e.fillStats()
	s, stop := e.startSink(e.config())
	want := int64(2*nEvents + 2*nVers*nKeys)
	kafkatest.Eventually(t, 60*time.Second, "the sink to re-read everything", func() bool { return s.Totals().Records == want })
	stop()
	tot := s.Totals()
	if tot.Events.Inserted+tot.Events.Updated+tot.DailyStats.Inserted+tot.DailyStats.Updated+tot.DailyStats.Deleted != 0 {
		t.Errorf("a replay changed rows: %+v", tot)
	}
	if after := snapshot(t, e.url); !equal(before, after) {
		t.Errorf("state changed: %d rows before, %d after", len(before), len(after))
	}
}

// A restarted sink resumes from the offsets it stored with the rows: it
// reads only what it had not written.
func TestSinkResumesFromStoredOffsets(t *testing.T) {
	e := newEnv(t, "")
	_, stop := e.startSink(e.config())
	e.fill(0, 100)
	e.waitFor("first 100 events", 100, "SELECT count(*) FROM events")
	stop()
	if n := countRows(t, e.url, "SELECT sum(next_offset) FROM sink_offsets WHERE consumer = 'sink' AND topic = $1", e.names.Events()); n != 100 {
		t.Fatalf("stored offsets sum to %d, want 100", n)
	}
	e.fill(100, 150)
	s, _ := e.startSink(e.config())
	e.waitFor("all 150 events", 150, "SELECT count(*) FROM events")
	kafkatest.Eventually(t, 10*time.Second, "totals", func() bool { return s.Totals().Records == 50 })
	if tot := s.Totals(); tot.Records != 50 || tot.Events.Inserted != 50 {
		t.Errorf("restarted sink read %d records and inserted %d events, want 50 and 50", tot.Records, tot.Events.Inserted)
	}
}

// A second verdict for the same postback (a generation replay) wins; a
// deleted stats row and an event type gone from a row are deleted.
func TestSinkLastWriteWinsAndDeletes(t *testing.T) {
	e := newEnv(t, "")
	_, stop := e.startSink(e.config())
	ev := makeEvent(1)
	e.produce(eventRecord(t, e.names, ev))
	r := makeStats(0, 1)
	gone := makeStats(1, 1)
	e.produce(statsRecord(t, e.names, r.s, r.key), statsRecord(t, e.names, gone.s, gone.key))
	e.waitFor("rows", 5, "SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM daily_stats)")

	ev.Verdict, ev.Reason = schemas.VerdictDuplicate, schemas.ReasonDuplicateEventID
	e.produce(eventRecord(t, e.names, ev))
	e.waitFor("the new verdict", 1, "SELECT count(*) FROM events WHERE verdict = 'duplicate' AND reason = 'duplicate_event_id'")

	r2 := makeStats(0, 2)
	delete(r2.s.ByType, "dep")
	e.produce(statsRecord(t, e.names, r2.s, r2.key), statsRecord(t, e.names, nil, gone.key))
	e.waitFor("the deletes", 1, "SELECT count(*) FROM daily_stats")
	stop()
	if n := countRows(t, e.url, "SELECT counted FROM daily_stats WHERE event_type = 'reg'"); n != 6 {
		t.Errorf("reg counted %d, want 6", n)
	}
}

// A record the sink cannot write goes to the dead-letter topic; the sink
// goes on.
func TestSinkDeadLetters(t *testing.T) {
	e := newEnv(t, "")
	_, stop := e.startSink(e.config())
	bad := makeEvent(2)
	bad.Verdict = "maybe"
	e.produce(
		&kgo.Record{Topic: e.names.Events(), Key: []byte("x"), Value: []byte("{not json")},
		eventRecord(t, e.names, bad),
		&kgo.Record{Topic: e.names.StatsTable(), Key: []byte("not-a-day-key"), Value: []byte("{}")},
		eventRecord(t, e.names, makeEvent(1)),
	)
	e.waitFor("the good event", 1, "SELECT count(*) FROM events")
	dl := kafkatest.ReadAll(t, e.addr, e.names.DeadLetter(), 3, 20*time.Second)
	stop()
	if len(dl) != 3 {
		t.Fatalf("%d dead letters, want 3", len(dl))
	}
	for _, r := range dl {
		v, err := schemas.DeadLetterCodec.Decode(r.Value)
		if err != nil {
			t.Fatal(err)
		}
		d := v.(*schemas.DeadLetter)
		if d.Reason == "" || d.Processor != "sink" || len(d.Value) == 0 {
			t.Errorf("dead letter %+v", d)
		}
	}
}

// Postgres stops mid-stream and comes back: nothing is lost, nothing is
// counted twice.
func TestSinkSurvivesPostgresRestart(t *testing.T) {
	cluster, url := pgtest.NewCluster(t)
	e := newEnv(t, url)
	reg := prometheus.NewRegistry()
	cfg := e.config()
	cfg.Registerer = reg
	_, stop := e.startSink(cfg)
	e.fill(0, 100)
	e.waitFor("first events", 100, "SELECT count(*) FROM events")

	produced := make(chan struct{})
	go func() {
		defer close(produced)
		for i := 100; i < nEvents; i += 10 {
			e.fill(i, i+10)
			time.Sleep(5 * time.Millisecond) // a stream, not one burst
		}
		e.fillStats()
	}()
	if err := cluster.Stop(); err != nil {
		t.Fatal(err)
	}
	// The sink keeps failing and retrying while Postgres is down.
	kafkatest.Eventually(t, 30*time.Second, "the sink to retry", func() bool {
		return metricSum(t, reg, "streamtools_sink_retries_total") > 2
	})
	<-produced
	if err := cluster.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.waitAll(nEvents)
	stop()
	if n := countRows(t, url, "SELECT count(DISTINCT id) FROM events"); n != nEvents {
		t.Errorf("%d distinct events, want %d", n, nEvents)
	}
	if n := countRows(t, url, "SELECT sum(next_offset) FROM sink_offsets WHERE topic = $1", e.names.Events()); n != nEvents {
		t.Errorf("stored offsets sum to %d, want %d", n, nEvents)
	}
	// Every stats row holds its last value, exactly.
	if n := countRows(t, url, fmt.Sprintf("SELECT count(*) FROM daily_stats WHERE counted = %d AND event_type = 'reg' OR counted = %d AND event_type = 'dep'", 3*nVers, nVers)); n != 2*nKeys {
		t.Errorf("%d stats rows at their last value, want %d", n, 2*nKeys)
	}
}
