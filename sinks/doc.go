// Package sinks materializes StreamTools' topics into PostgreSQL, the BI
// contract that the dashboard and data teams read (see docs/postgres.md):
//
//   - the events topic (schemas.Event, every postback with its verdict)
//     into the events table, upserted by (day, id), last write wins; the
//     record key is not used;
//   - the stats table changelog (schemas.Stats, absolute counts keyed by
//     schemas.DayKey, nil = deleted) into daily_stats. The rows' replay
//     guard (Stats.Applied) is the processors' business and is not stored.
//
// Every write is an idempotent upsert of absolute values, and the consumed
// offsets are stored in sink_offsets in the same transaction as the rows, so
// the sink resumes exactly where it committed and re-reading any topic
// changes nothing. Postgres down or restarting: the sink retries the same
// batch with backoff until it commits.
//
// The package also owns the schema (embedded goose migrations, Migrate) and
// Replay, which rebuilds all or part of the tables from the topics.
//
// It does not count anything itself: the processors own the counts.
package sinks
