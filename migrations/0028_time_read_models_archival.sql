-- Storage as the design names it: the time-based read models become TimescaleDB hypertables on
-- their time column (plain tables without the extension), so retention works by chunk; and
-- the archival of old samples into per-day aggregates.
--
-- A hypertable's unique keys must contain its time column: rows keyed by id are keyed by
-- (id, time) instead, and a plain index on id still serves the lookups by id. The projections
-- keep a record's first time (as the old `ON CONFLICT (id)` did), so an id still names one row.

ALTER TABLE workouts DROP CONSTRAINT workouts_pkey, ADD PRIMARY KEY (id, start_time);
CREATE INDEX workouts_id ON workouts (id);

ALTER TABLE sleep_sessions DROP CONSTRAINT sleep_sessions_pkey, ADD PRIMARY KEY (id, start_time);
CREATE INDEX sleep_sessions_id ON sleep_sessions (id);

-- Tombstones of provider scores were kept at '-infinity', which a hypertable cannot place;
-- 1970 lies before every record the time check lets through.
UPDATE health_scores SET recorded_at = '1970-01-01T00:00:00Z' WHERE recorded_at = '-infinity';
ALTER TABLE health_scores DROP CONSTRAINT health_scores_pkey, ADD PRIMARY KEY (id, recorded_at);
CREATE INDEX health_scores_id ON health_scores (id);

-- The daily aggregates of archived samples, by UTC day (as upstream), per user, source and
-- series: enough for a day's sum, average, minimum and maximum, and for the "prefer daily
-- totals" rule (the sum and count of the `is_daily_total` rows apart).
CREATE TABLE sample_archive (
    user_id           uuid             NOT NULL,
    data_source_id    uuid             NOT NULL,
    series_type       smallint         NOT NULL,
    day               date             NOT NULL,
    count             bigint           NOT NULL,
    sum               double precision NOT NULL,
    min               double precision NOT NULL,
    max               double precision NOT NULL,
    daily_total_count bigint           NOT NULL,
    daily_total_sum   double precision NOT NULL,
    PRIMARY KEY (user_id, series_type, day, data_source_id)
);

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        PERFORM create_hypertable('workouts', by_range('start_time', INTERVAL '180 days'), migrate_data => true);
        PERFORM create_hypertable('sleep_sessions', by_range('start_time', INTERVAL '180 days'), migrate_data => true);
        PERFORM create_hypertable('health_scores', by_range('recorded_at', INTERVAL '180 days'), migrate_data => true);
        PERFORM create_hypertable('sleep_nights', by_range('wake_date', INTERVAL '180 days'), migrate_data => true);
        PERFORM create_hypertable('daily_rollup', by_range('date', INTERVAL '180 days'), migrate_data => true);
        PERFORM create_hypertable('activity_summaries', by_range('date', INTERVAL '180 days'), migrate_data => true);
        PERFORM create_hypertable('sample_archive', by_range('day', INTERVAL '365 days'));
    END IF;
END $$;

-- The installation's archival policy (one row; none means both off). A read model of the
-- `ArchivalSettingChanged` events.
CREATE TABLE archival_settings (
    id                 smallint    PRIMARY KEY CHECK (id = 1),
    archive_after_days integer,
    delete_after_days  integer,
    updated_at         timestamptz NOT NULL
);

-- What the samples read model has archived so far (from `SamplesArchived` events): samples
-- before `archived_before` live only as daily aggregates, aggregates before
-- `aggregates_deleted_before` are gone.
CREATE TABLE archival_state (
    id                        smallint    PRIMARY KEY CHECK (id = 1),
    archived_before           timestamptz,
    live_deleted_before       timestamptz,
    aggregates_deleted_before date,
    runs                      bigint      NOT NULL DEFAULT 0,
    updated_at                timestamptz NOT NULL
);
