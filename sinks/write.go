package sinks

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamtools/streamtools/schemas"
)

// Changes counts what a write did to one table.
type Changes struct {
	Inserted  int64 // new rows
	Updated   int64 // rows whose values changed
	Unchanged int64 // rows already holding these values (a replay)
	Deleted   int64 // rows removed (a deleted stats row, or an event type gone from one)
}

func (c *Changes) add(o Changes) {
	c.Inserted += o.Inserted
	c.Updated += o.Updated
	c.Unchanged += o.Unchanged
	c.Deleted += o.Deleted
}

// Summary is what a batch, a run or a replay changed.
type Summary struct {
	Events     Changes
	DailyStats Changes
	// Records read from the topics, and of those: outside the replay's
	// scope, older than the retention, or invalid (sent to the dead-letter
	// topic by the sink; only counted by a replay).
	Records, Filtered, Expired, Invalid int64
}

func (s *Summary) add(o Summary) {
	s.Events.add(o.Events)
	s.DailyStats.add(o.DailyStats)
	s.Records += o.Records
	s.Filtered += o.Filtered
	s.Expired += o.Expired
	s.Invalid += o.Invalid
}

type topicPartition struct {
	topic     string
	partition int32
}

type eventKey struct {
	day time.Time
	id  string
}

type statsKey struct {
	customer, product, influencer, campaign string
	day                                     time.Time
}

// batch is what one transaction writes: the last version of every event and
// stats row read, and the next offset of every partition read.
type batch struct {
	events     map[eventKey]int // index in eventRows
	eventRows  []*schemas.Event
	eventDays  []time.Time
	stats      map[statsKey]*schemas.Stats // nil: deleted
	statsOrder []statsKey
	next       map[topicPartition]int64
	hwm        map[topicPartition]int64
	sum        Summary
}

func newBatch() *batch {
	return &batch{
		events: make(map[eventKey]int),
		stats:  make(map[statsKey]*schemas.Stats),
		next:   make(map[topicPartition]int64),
		hwm:    make(map[topicPartition]int64),
	}
}

func (b *batch) empty() bool { return len(b.next) == 0 }

// scope filters what a replay rebuilds; the zero value keeps everything.
type scope struct {
	customer string
	from, to time.Time // inclusive; zero: open
}

func (s scope) keeps(customer string, day time.Time) bool {
	if s.customer != "" && customer != s.customer {
		return false
	}
	if !s.from.IsZero() && day.Before(s.from) {
		return false
	}
	if !s.to.IsZero() && day.After(s.to) {
		return false
	}
	return true
}

// invalidRecord is a record the sink cannot write; it goes to the
// dead-letter topic with reason.
type invalidRecord struct {
	rec    *kgo.Record
	reason string
}

// decoder turns records into batch entries.
type decoder struct {
	eventsTopic, statsTopic string
	scope                   scope
	cutoff                  func() time.Time // events before it are expired; zero: none
}

// add adds rec to b; it returns a reason when rec is invalid.
func (d *decoder) add(b *batch, rec *kgo.Record) (reason string) {
	tp := topicPartition{rec.Topic, rec.Partition}
	b.next[tp] = rec.Offset + 1
	b.sum.Records++
	switch rec.Topic {
	case d.eventsTopic:
		return d.addEvent(b, rec)
	case d.statsTopic:
		return d.addStats(b, rec)
	default:
		return "unexpected topic " + rec.Topic
	}
}

func (d *decoder) addEvent(b *batch, rec *kgo.Record) string {
	if rec.Value == nil {
		b.sum.Filtered++ // the events topic is not compacted: nothing to delete
		return ""
	}
	v, err := schemas.EventCodec.Decode(rec.Value)
	if err != nil {
		return err.Error()
	}
	e := v.(*schemas.Event)
	if e.V > schemas.EventVersion {
		return fmt.Sprintf("event schema version %d is newer than this sink knows (%d): upgrade the sink", e.V, schemas.EventVersion)
	}
	day, err := time.Parse(schemas.DayLayout, e.Day)
	if err != nil {
		return fmt.Sprintf("day %q is not YYYY-MM-DD", e.Day)
	}
	switch {
	case e.ID == "":
		return "id is empty"
	case e.CustomerCode == "" || e.Product == "" || e.InfluencerID == "":
		return "customer_code, product or influencer_id is empty"
	case e.ReceivedAt.IsZero():
		return "received_at is missing"
	case e.Verdict != schemas.VerdictCounted && e.Verdict != schemas.VerdictDuplicate:
		return fmt.Sprintf("verdict %q is neither %q nor %q", e.Verdict, schemas.VerdictCounted, schemas.VerdictDuplicate)
	case e.Reason != "" && e.Reason != schemas.ReasonDuplicateVisitor && e.Reason != schemas.ReasonDuplicateEventID:
		return fmt.Sprintf("reason %q is unknown", e.Reason)
	}
	for _, s := range []string{e.ID, e.EventID, e.CustomerCode, e.Product, e.InfluencerID, e.EventType, e.EventName, e.Campaign, e.Medium, e.Source, e.Country} {
		if strings.IndexByte(s, 0) >= 0 {
			return "a field holds a NUL byte, which PostgreSQL text cannot store"
		}
		if !utf8.ValidString(s) {
			return "a field is not valid UTF-8, which PostgreSQL text cannot store"
		}
	}
	if !d.scope.keeps(e.CustomerCode, day) {
		b.sum.Filtered++
		return ""
	}
	if d.cutoff != nil {
		if c := d.cutoff(); !c.IsZero() && day.Before(c) {
			b.sum.Expired++
			return ""
		}
	}
	if e.EventType == "" {
		e.EventType = schemas.DefaultEventType
	}
	k := eventKey{day, e.ID}
	if i, ok := b.events[k]; ok {
		b.eventRows[i] = e // last write wins
		b.sum.Events.Unchanged++
		return ""
	}
	b.events[k] = len(b.eventRows)
	b.eventRows = append(b.eventRows, e)
	b.eventDays = append(b.eventDays, day)
	return ""
}

func (d *decoder) addStats(b *batch, rec *kgo.Record) string {
	parts, err := schemas.SplitKey(string(rec.Key))
	if err != nil {
		return err.Error()
	}
	if len(parts) != 5 {
		return fmt.Sprintf("key %q is not a day key (customer/product/influencer/campaign/day)", rec.Key)
	}
	day, err := time.Parse(schemas.DayLayout, parts[4])
	if err != nil {
		return fmt.Sprintf("day %q of key %q is not YYYY-MM-DD", parts[4], rec.Key)
	}
	for _, p := range parts {
		if strings.IndexByte(p, 0) >= 0 {
			return "the key holds a NUL byte, which PostgreSQL text cannot store"
		}
		if !utf8.ValidString(p) {
			return "the key is not valid UTF-8, which PostgreSQL text cannot store"
		}
	}
	k := statsKey{parts[0], parts[1], parts[2], parts[3], day}
	if !d.scope.keeps(k.customer, day) {
		b.sum.Filtered++
		return ""
	}
	var s *schemas.Stats
	if rec.Value != nil {
		v, err := schemas.StatsCodec.Decode(rec.Value)
		if err != nil {
			return err.Error()
		}
		s = v.(*schemas.Stats)
		if s.V > schemas.StatsVersion {
			return fmt.Sprintf("stats schema version %d is newer than this sink knows (%d): upgrade the sink", s.V, schemas.StatsVersion)
		}
		for t := range s.ByType {
			if strings.IndexByte(t, 0) >= 0 {
				return "an event type holds a NUL byte, which PostgreSQL text cannot store"
			}
			if !utf8.ValidString(t) {
				return "an event type is not valid UTF-8, which PostgreSQL text cannot store"
			}
		}
	}
	if _, ok := b.stats[k]; !ok {
		b.statsOrder = append(b.statsOrder, k)
	}
	b.stats[k] = s
	return ""
}

// writer writes batches to Postgres on one connection. With a consumer name
// it holds that consumer's advisory lock, so that two sinks never interleave
// their writes, and stores offsets with the rows.
type writer struct {
	url      string
	consumer string // "" for a replay: no lock, no offsets
	log      *slog.Logger
	conn     *pgx.Conn
	months   map[time.Time]bool // partitions known to exist
}

const tempTables = `
CREATE TEMP TABLE IF NOT EXISTS sink_events_in (LIKE events INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS sink_stats_in (LIKE daily_stats INCLUDING DEFAULTS) ON COMMIT DELETE ROWS;
CREATE TEMP TABLE IF NOT EXISTS sink_stats_keys (
    customer_code text, product text, influencer_id text, campaign text, day date) ON COMMIT DELETE ROWS;
`

// errLocked means another sink with the same consumer name holds the lock.
var errLocked = errors.New("another sink with the same consumer name is writing to this database")

func lockKey(consumer string) int64 {
	h := fnv.New64a()
	h.Write([]byte("streamtools sink " + consumer))
	return int64(h.Sum64())
}

func (w *writer) connect(ctx context.Context) error {
	if w.conn != nil {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(cctx, w.url)
	if err != nil {
		return fmt.Errorf("connecting to postgres: %w", err)
	}
	if w.consumer != "" {
		var ok bool
		if err := conn.QueryRow(cctx, "SELECT pg_try_advisory_lock($1)", lockKey(w.consumer)).Scan(&ok); err != nil {
			conn.Close(ctx)
			return fmt.Errorf("taking the sink lock: %w", err)
		}
		if !ok {
			conn.Close(ctx)
			return fmt.Errorf("taking the lock of consumer %q: %w", w.consumer, errLocked)
		}
	}
	if _, err := conn.Exec(cctx, tempTables); err != nil {
		conn.Close(ctx)
		return fmt.Errorf("creating temporary tables: %w", err)
	}
	w.conn = conn
	return nil
}

func (w *writer) close() {
	if w.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = w.conn.Close(ctx) // closing a broken connection: nothing to do about an error
		w.conn = nil
	}
}

// offsets reads the stored next offsets of the writer's consumer.
func (w *writer) offsets(ctx context.Context) (map[topicPartition]int64, error) {
	rows, err := w.conn.Query(ctx, "SELECT topic, partition, next_offset FROM sink_offsets WHERE consumer = $1", w.consumer)
	if err != nil {
		return nil, fmt.Errorf("reading offsets: %w", err)
	}
	out := make(map[topicPartition]int64)
	var tp topicPartition
	var off int64
	_, err = pgx.ForEachRow(rows, []any{&tp.topic, &tp.partition, &off}, func() error {
		out[tp] = off
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading offsets: %w", err)
	}
	return out, nil
}

// ensurePartitions creates the monthly partitions of events the batch
// needs. The sink creates them in their own short transactions (creating a
// partition locks the parent table); a dry run inside its transaction, so
// that the rollback removes them too.
func (w *writer) ensurePartitions(ctx context.Context, q interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
}, b *batch, remember bool) error {
	if w.months == nil {
		w.months = make(map[time.Time]bool)
	}
	for _, d := range b.eventDays {
		m := time.Date(d.Year(), d.Month(), 1, 0, 0, 0, 0, time.UTC)
		if w.months[m] {
			continue
		}
		if _, err := q.Exec(ctx, "SELECT streamtools_events_partition($1)", m); err != nil {
			return fmt.Errorf("creating the events partition of %s: %w", m.Format("2006-01"), err)
		}
		if remember {
			w.months[m] = true
		}
	}
	return nil
}

var eventColumns = []string{"id", "event_id", "customer_code", "product", "influencer_id", "event_type",
	"event_name", "campaign", "medium", "source", "country", "received_at", "day", "verdict", "reason"}

var statsColumns = []string{"customer_code", "product", "influencer_id", "campaign", "day", "event_type",
	"counted", "duplicates", "duplicate_visitor", "duplicate_event_id", "updated_at"}

// findEvents returns which of the given (day, id) keys already have a row.
const findEvents = `
SELECT k.day, k.id FROM unnest($1::date[], $2::text[]) AS k(day, id)
WHERE EXISTS (SELECT 1 FROM events e WHERE e.day = k.day AND e.id = k.id)`

// updateEvents overwrites the existing rows with the incoming values (last
// write wins) where they differ, and returns how many changed.
const updateEvents = `
WITH up AS (
    UPDATE events e SET
        event_id = i.event_id, customer_code = i.customer_code, product = i.product,
        influencer_id = i.influencer_id, event_type = i.event_type, event_name = i.event_name,
        campaign = i.campaign, medium = i.medium, source = i.source, country = i.country,
        received_at = i.received_at, verdict = i.verdict, reason = i.reason
    FROM sink_events_in i
    WHERE e.day = i.day AND e.id = i.id
      AND (e.event_id, e.customer_code, e.product, e.influencer_id, e.event_type, e.event_name, e.campaign,
           e.medium, e.source, e.country, e.received_at, e.verdict, e.reason)
          IS DISTINCT FROM
          (i.event_id, i.customer_code, i.product, i.influencer_id, i.event_type, i.event_name, i.campaign,
           i.medium, i.source, i.country, i.received_at, i.verdict, i.reason)
    RETURNING 1
)
SELECT count(*) FROM up`

// deleteStats removes the rows of the batch's keys whose event type the new
// value no longer has (all of them for a deleted key).
const deleteStats = `
WITH del AS (
    DELETE FROM daily_stats d USING sink_stats_keys k
    WHERE d.customer_code = k.customer_code AND d.product = k.product AND d.influencer_id = k.influencer_id
      AND d.campaign = k.campaign AND d.day = k.day
      AND NOT EXISTS (
          SELECT 1 FROM sink_stats_in i
          WHERE i.customer_code = d.customer_code AND i.product = d.product AND i.influencer_id = d.influencer_id
            AND i.campaign = d.campaign AND i.day = d.day AND i.event_type = d.event_type)
    RETURNING 1
)
SELECT count(*) FROM del`

// upsertStats writes absolute values. A row never goes back in time: a
// value older than the stored one (updated_at) is ignored, so a replay that
// runs beside the live sink cannot undo a newer count.
const upsertStats = `
WITH up AS (
    INSERT INTO daily_stats AS d (customer_code, product, influencer_id, campaign, day, event_type,
        counted, duplicates, duplicate_visitor, duplicate_event_id, updated_at)
    SELECT customer_code, product, influencer_id, campaign, day, event_type,
        counted, duplicates, duplicate_visitor, duplicate_event_id, updated_at
    FROM sink_stats_in
    ON CONFLICT (customer_code, product, influencer_id, campaign, day, event_type) DO UPDATE SET
        counted = excluded.counted, duplicates = excluded.duplicates,
        duplicate_visitor = excluded.duplicate_visitor, duplicate_event_id = excluded.duplicate_event_id,
        updated_at = excluded.updated_at
    WHERE (d.counted, d.duplicates, d.duplicate_visitor, d.duplicate_event_id)
          IS DISTINCT FROM
          (excluded.counted, excluded.duplicates, excluded.duplicate_visitor, excluded.duplicate_event_id)
      AND excluded.updated_at >= d.updated_at
    RETURNING (xmax = 0) AS inserted
)
SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up`

const storeOffsets = `
INSERT INTO sink_offsets (consumer, topic, partition, next_offset)
SELECT $1, t, p, o FROM unnest($2::text[], $3::int[], $4::bigint[]) AS x(t, p, o)
ON CONFLICT (consumer, topic, partition) DO UPDATE SET next_offset = excluded.next_offset`

// write writes b in one transaction (rolled back when dryRun) and returns
// what changed. Any error leaves the database as it was (or, if the commit's
// answer was lost, fully written): the caller retries the same batch.
func (w *writer) write(ctx context.Context, b *batch, dryRun bool) (Summary, error) {
	sum := b.sum
	t0 := time.Now()
	var steps []any
	step := func(name string) {
		steps = append(steps, name, time.Since(t0).Round(time.Microsecond))
	}
	if err := w.connect(ctx); err != nil {
		return sum, err
	}
	if !dryRun {
		if err := w.ensurePartitions(ctx, w.conn, b, true); err != nil {
			w.months = nil
			return sum, err
		}
	}
	tx, err := w.conn.Begin(ctx)
	if err != nil {
		return sum, fmt.Errorf("beginning a transaction: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // after Commit it is a no-op; on error the connection is dropped
	if dryRun {
		if err := w.ensurePartitions(ctx, tx, b, false); err != nil {
			return sum, err
		}
	}
	if len(b.eventRows) > 0 {
		// New rows (the common case) are copied straight into events, as
		// fast as a plain COPY; rows that exist are copied into a temporary
		// table and updated from it. The sink is the only writer of its
		// rows (its lock); a concurrent replay inserting the same key makes
		// the COPY fail with a unique violation, and the retry finds the
		// row.
		days := make([]time.Time, len(b.eventRows))
		ids := make([]string, len(b.eventRows))
		for i, e := range b.eventRows {
			days[i], ids[i] = b.eventDays[i], e.ID
		}
		rows, err := tx.Query(ctx, findEvents, days, ids)
		if err != nil {
			return sum, fmt.Errorf("looking up existing events: %w", err)
		}
		existing := make(map[eventKey]bool)
		var k eventKey
		if _, err := pgx.ForEachRow(rows, []any{&k.day, &k.id}, func() error {
			existing[eventKey{k.day.UTC(), k.id}] = true
			return nil
		}); err != nil {
			return sum, fmt.Errorf("looking up existing events: %w", err)
		}
		step("find_events")
		var fresh, old []int
		for i, e := range b.eventRows {
			if existing[eventKey{b.eventDays[i], e.ID}] {
				old = append(old, i)
			} else {
				fresh = append(fresh, i)
			}
		}
		copyEvents := func(table string, idx []int) (int64, error) {
			return tx.CopyFrom(ctx, pgx.Identifier{table}, eventColumns,
				pgx.CopyFromSlice(len(idx), func(j int) ([]any, error) {
					i := idx[j]
					e := b.eventRows[i]
					return []any{e.ID, e.EventID, e.CustomerCode, e.Product, e.InfluencerID, e.EventType,
						e.EventName, e.Campaign, e.Medium, e.Source, e.Country, e.ReceivedAt, b.eventDays[i],
						e.Verdict, e.Reason}, nil
				}))
		}
		if len(fresh) > 0 {
			n, err := copyEvents("events", fresh)
			if err != nil {
				return sum, fmt.Errorf("copying new events: %w", err)
			}
			sum.Events.Inserted += n
			step("copy_events")
		}
		if len(old) > 0 {
			if _, err := copyEvents("sink_events_in", old); err != nil {
				return sum, fmt.Errorf("copying events: %w", err)
			}
			var changed int64
			if err := tx.QueryRow(ctx, updateEvents).Scan(&changed); err != nil {
				return sum, fmt.Errorf("updating events: %w", err)
			}
			sum.Events.Updated += changed
			sum.Events.Unchanged += int64(len(old)) - changed
			step("update_events")
		}
	}
	if len(b.statsOrder) > 0 {
		var rows [][]any
		keys := make([][]any, 0, len(b.statsOrder))
		for _, k := range b.statsOrder {
			keys = append(keys, []any{k.customer, k.product, k.influencer, k.campaign, k.day})
			s := b.stats[k]
			if s == nil {
				continue
			}
			for t, c := range s.ByType {
				dv, de := c.Duplicates[schemas.ReasonDuplicateVisitor], c.Duplicates[schemas.ReasonDuplicateEventID]
				var dups int64
				for _, n := range c.Duplicates {
					dups += n
				}
				rows = append(rows, []any{k.customer, k.product, k.influencer, k.campaign, k.day, t,
					c.Counted, dups, dv, de, s.UpdatedAt})
			}
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"sink_stats_keys"},
			[]string{"customer_code", "product", "influencer_id", "campaign", "day"}, pgx.CopyFromRows(keys)); err != nil {
			return sum, fmt.Errorf("copying stats keys: %w", err)
		}
		var n int64
		if len(rows) > 0 {
			if n, err = tx.CopyFrom(ctx, pgx.Identifier{"sink_stats_in"}, statsColumns, pgx.CopyFromRows(rows)); err != nil {
				return sum, fmt.Errorf("copying stats: %w", err)
			}
		}
		var del, ins, upd int64
		if err := tx.QueryRow(ctx, deleteStats).Scan(&del); err != nil {
			return sum, fmt.Errorf("deleting stats: %w", err)
		}
		if n > 0 {
			if err := tx.QueryRow(ctx, upsertStats).Scan(&ins, &upd); err != nil {
				return sum, fmt.Errorf("upserting stats: %w", err)
			}
		}
		sum.DailyStats.Deleted += del
		sum.DailyStats.Inserted += ins
		sum.DailyStats.Updated += upd
		sum.DailyStats.Unchanged += n - ins - upd
	}
	if w.consumer != "" && len(b.next) > 0 {
		var topics []string
		var parts []int32
		var offs []int64
		for tp, o := range b.next {
			topics = append(topics, tp.topic)
			parts = append(parts, tp.partition)
			offs = append(offs, o)
		}
		if _, err := tx.Exec(ctx, storeOffsets, w.consumer, topics, parts, offs); err != nil {
			return sum, fmt.Errorf("storing offsets: %w", err)
		}
	}
	if dryRun {
		return sum, nil // the deferred Rollback undoes everything
	}
	step("offsets")
	if err := tx.Commit(ctx); err != nil {
		return sum, fmt.Errorf("committing: %w", err)
	}
	step("commit")
	w.log.Debug("batch written", append([]any{"events", len(b.eventRows), "stats_keys", len(b.statsOrder)}, steps...)...)
	return sum, nil
}
