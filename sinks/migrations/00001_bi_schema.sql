-- The BI contract of StreamTools: events, daily_stats, the totals views,
-- the sink's offsets and the read-only role. docs/sink.md documents it;
-- every object carries a COMMENT so that BI tools show the same text.

-- +goose Up
CREATE TABLE events (
    id            text        NOT NULL,
    event_id      text        NOT NULL DEFAULT '',
    customer_code text        NOT NULL,
    product       text        NOT NULL,
    influencer_id text        NOT NULL,
    event_type    text        NOT NULL,
    event_name    text        NOT NULL DEFAULT '',
    campaign      text        NOT NULL DEFAULT '',
    medium        text        NOT NULL DEFAULT '',
    source        text        NOT NULL DEFAULT '',
    country       text        NOT NULL DEFAULT '',
    received_at   timestamptz NOT NULL,
    day           date        NOT NULL,
    verdict       text        NOT NULL CHECK (verdict IN ('counted', 'duplicate')),
    reason        text        NOT NULL DEFAULT '' CHECK (reason IN ('', 'duplicate_visitor', 'duplicate_event_id')),
    PRIMARY KEY (day, id)
) PARTITION BY RANGE (day);

CREATE INDEX events_customer_day ON events (customer_code, day);
CREATE INDEX events_customer_influencer_day ON events (customer_code, influencer_id, day);

COMMENT ON TABLE events IS 'Every postback StreamTools accepted, counted or not, one row per postback (no IP, no visitor fingerprint). Partitioned by month of day; the sink creates partitions as needed and drops those older than its retention setting (default: keep forever). Written by `streamtools sink`; rebuilt by `streamtools replay`.';
COMMENT ON COLUMN events.id IS 'StreamTools'' id of the postback (returned to the sender in the 202 body); unique per day.';
COMMENT ON COLUMN events.event_id IS 'The sender''s own transaction id (postback field event_id), '''' when absent.';
COMMENT ON COLUMN events.customer_code IS 'The brand (tenant).';
COMMENT ON COLUMN events.product IS 'The widget code (postback field product).';
COMMENT ON COLUMN events.influencer_id IS 'The influencer (postback field influencer_id).';
COMMENT ON COLUMN events.event_type IS 'The KPI code (postback field event_type; "event" when absent).';
COMMENT ON COLUMN events.event_name IS 'The KPI name (postback field event_name), '''' when absent.';
COMMENT ON COLUMN events.campaign IS 'Postback field campaign, '''' when absent.';
COMMENT ON COLUMN events.medium IS 'Postback field medium, '''' when absent.';
COMMENT ON COLUMN events.source IS 'Postback field source, '''' when absent.';
COMMENT ON COLUMN events.country IS 'ISO 3166-1 alpha-2 country of the visitor (postback field country), '''' when absent.';
COMMENT ON COLUMN events.received_at IS 'When the StreamTools edge received the postback: the event time.';
COMMENT ON COLUMN events.day IS 'The date of received_at in the customer''s time zone: the "same day" of anti-cheat and daily_stats.';
COMMENT ON COLUMN events.verdict IS '''counted'' or ''duplicate''.';
COMMENT ON COLUMN events.reason IS 'Why a duplicate: ''duplicate_visitor'' (same visitor, same event type, same day) or ''duplicate_event_id'' (the sender''s event_id was seen before); '''' when counted.';

-- streamtools_events_partition creates the monthly partition of events
-- that holds day d, unless it exists. The sink calls it before writing.
-- +goose StatementBegin
CREATE FUNCTION streamtools_events_partition(d date) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    lo   date := date_trunc('month', d)::date;
    hi   date := (date_trunc('month', d) + interval '1 month')::date;
    name text := format('events_y%sm%s', to_char(lo, 'YYYY'), to_char(lo, 'MM'));
BEGIN
    IF to_regclass(quote_ident(name)) IS NULL THEN
        -- Two sinks (or a sink and a replay) may race: serialize creation.
        PERFORM pg_advisory_xact_lock(hashtext('streamtools_events_partition'));
        IF to_regclass(quote_ident(name)) IS NULL THEN
            EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)', name, lo, hi);
            EXECUTE format('COMMENT ON TABLE %I IS %L', name, format('Partition of events for days %s to %s (exclusive).', lo, hi));
        END IF;
    END IF;
    RETURN name;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION streamtools_events_partition(date) IS 'Creates the monthly partition of events that holds the given day unless it exists; returns its name.';

-- streamtools_drop_events_before drops the partitions of events whose days
-- are all before cutoff, and returns how many it dropped.
-- +goose StatementBegin
CREATE FUNCTION streamtools_drop_events_before(cutoff date) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part    record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.oid::regclass AS rel, pg_get_expr(c.relpartbound, c.oid) AS bound
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'events'::regclass
    LOOP
        -- bound reads FOR VALUES FROM ('2024-01-01') TO ('2024-02-01')
        IF substring(part.bound FROM 'TO \(''([0-9-]+)''\)')::date <= cutoff THEN
            EXECUTE format('DROP TABLE %s', part.rel);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END
$$;
-- +goose StatementEnd
COMMENT ON FUNCTION streamtools_drop_events_before(date) IS 'Retention: drops the monthly partitions of events whose days are all before the given date; returns how many.';

CREATE TABLE daily_stats (
    customer_code      text        NOT NULL,
    product            text        NOT NULL,
    influencer_id      text        NOT NULL,
    campaign           text        NOT NULL DEFAULT '',
    day                date        NOT NULL,
    event_type         text        NOT NULL,
    counted            bigint      NOT NULL DEFAULT 0,
    duplicates         bigint      NOT NULL DEFAULT 0,
    duplicate_visitor  bigint      NOT NULL DEFAULT 0,
    duplicate_event_id bigint      NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (customer_code, product, influencer_id, campaign, day, event_type)
);
CREATE INDEX daily_stats_customer_day ON daily_stats (customer_code, day);

COMMENT ON TABLE daily_stats IS 'Exact counts per customer, product, influencer, campaign, day and event type: absolute values copied from the processors'' stats-day table (never incremented by the sink), so re-reading any topic changes nothing.';
COMMENT ON COLUMN daily_stats.customer_code IS 'The brand (tenant).';
COMMENT ON COLUMN daily_stats.product IS 'The widget code.';
COMMENT ON COLUMN daily_stats.influencer_id IS 'The influencer.';
COMMENT ON COLUMN daily_stats.campaign IS 'The campaign, '''' for postbacks without one.';
COMMENT ON COLUMN daily_stats.day IS 'The day in the customer''s time zone.';
COMMENT ON COLUMN daily_stats.event_type IS 'The KPI code.';
COMMENT ON COLUMN daily_stats.counted IS 'Postbacks that counted.';
COMMENT ON COLUMN daily_stats.duplicates IS 'Postbacks that did not count: duplicate_visitor + duplicate_event_id.';
COMMENT ON COLUMN daily_stats.duplicate_visitor IS 'Duplicates because the same visitor repeated the same event type on the same day (anti-cheat).';
COMMENT ON COLUMN daily_stats.duplicate_event_id IS 'Duplicates because the sender repeated an event_id (a retry).';
COMMENT ON COLUMN daily_stats.updated_at IS 'When the processors last changed this row.';

CREATE VIEW influencer_totals AS
SELECT customer_code, product, influencer_id, event_type,
       sum(counted)::bigint            AS counted,
       sum(duplicates)::bigint         AS duplicates,
       sum(duplicate_visitor)::bigint  AS duplicate_visitor,
       sum(duplicate_event_id)::bigint AS duplicate_event_id,
       min(day)                        AS first_day,
       max(day)                        AS last_day
FROM daily_stats
GROUP BY customer_code, product, influencer_id, event_type;
COMMENT ON VIEW influencer_totals IS 'All-time totals per customer, product, influencer and event type, over every campaign (sums of daily_stats).';

CREATE VIEW campaign_totals AS
SELECT customer_code, product, influencer_id, campaign, event_type,
       sum(counted)::bigint            AS counted,
       sum(duplicates)::bigint         AS duplicates,
       sum(duplicate_visitor)::bigint  AS duplicate_visitor,
       sum(duplicate_event_id)::bigint AS duplicate_event_id,
       min(day)                        AS first_day,
       max(day)                        AS last_day
FROM daily_stats
GROUP BY customer_code, product, influencer_id, campaign, event_type;
COMMENT ON VIEW campaign_totals IS 'All-time totals per customer, product, influencer, campaign ('''' = no campaign) and event type (sums of daily_stats).';

CREATE TABLE sink_offsets (
    consumer    text   NOT NULL,
    topic       text   NOT NULL,
    partition   int    NOT NULL,
    next_offset bigint NOT NULL,
    PRIMARY KEY (consumer, topic, partition)
);
COMMENT ON TABLE sink_offsets IS 'The next Kafka offset the sink will read per topic partition, written in the same transaction as the rows it read: the sink resumes from here. Delete a consumer''s rows to make it re-read its topics from the start (harmless: every write is an idempotent upsert).';

-- The read-only role. It is cluster-wide, so it may exist already (another
-- database of the same server); creating it needs CREATEROLE, so a
-- migration run by a less privileged user only warns.
-- +goose StatementBegin
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'streamtools_reader') THEN
        BEGIN
            CREATE ROLE streamtools_reader NOLOGIN;
        EXCEPTION
            WHEN duplicate_object OR unique_violation THEN NULL; -- created concurrently
            WHEN insufficient_privilege THEN
                RAISE WARNING 'streamtools: cannot create role streamtools_reader (needs CREATEROLE): create it and grant it SELECT by hand, see docs/sink.md';
                RETURN;
        END;
    END IF;
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO streamtools_reader', current_database());
    GRANT USAGE ON SCHEMA public TO streamtools_reader;
    GRANT SELECT ON events, daily_stats, influencer_totals, campaign_totals, sink_offsets TO streamtools_reader;
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP VIEW campaign_totals;
DROP VIEW influencer_totals;
DROP TABLE daily_stats;
DROP TABLE sink_offsets;
DROP TABLE events;
DROP FUNCTION streamtools_drop_events_before(date);
DROP FUNCTION streamtools_events_partition(date);
-- The role streamtools_reader is cluster-wide and may serve other
-- databases: it is left in place (DROP ROLE it by hand).
