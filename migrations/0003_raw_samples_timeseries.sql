-- Raw payloads (every inbound byte, zstd, content-addressed), normalized sample batches
-- (Arrow IPC + zstd), and the read models of the Apple import: data sources, the timeseries
-- hypertable, workouts, sleep sessions and per-user counts.

-- The bytes of each payload, in zstd-compressed chunks of up to 8 MiB (uncompressed).
CREATE TABLE raw_payload_chunks (
    sha256 text    NOT NULL,
    chunk  integer NOT NULL,
    data   bytea   NOT NULL,
    PRIMARY KEY (sha256, chunk)
);

-- One row per distinct payload: written once all its chunks are stored.
CREATE TABLE raw_payloads (
    sha256       text        PRIMARY KEY,
    size         bigint      NOT NULL,
    chunks       integer     NOT NULL,
    content_type text        NOT NULL,
    provider     text        NOT NULL,
    kind         text        NOT NULL,
    user_id      uuid,
    received_at  timestamptz NOT NULL DEFAULT now()
);

-- Normalized samples, one series type and one data source per batch; referenced by the
-- `SamplesRecorded` event that carries the batch id. Never updated.
CREATE TABLE sample_batches (
    id             bigserial   PRIMARY KEY,
    user_id        uuid        NOT NULL,
    data_source_id uuid        NOT NULL,
    series_type    smallint    NOT NULL,
    count          integer     NOT NULL,
    start_time     timestamptz NOT NULL,
    end_time       timestamptz NOT NULL,
    arrow          bytea       NOT NULL
);
CREATE INDEX sample_batches_user ON sample_batches (user_id, id);

CREATE TABLE data_sources (
    id                   uuid        PRIMARY KEY,
    user_id              uuid        NOT NULL,
    provider             text        NOT NULL,
    user_connection_id   uuid,
    device_model         text,
    software_version     text,
    source               text,
    device_type          text,
    original_source_name text,
    manufacturer         text,
    device_name          text,
    hardware             text,
    created_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX data_sources_user ON data_sources (user_id, provider);

-- The timeseries read model: a TimescaleDB hypertable, or plain range partitions by year when
-- the extension is absent. Dedup key: (data source, series type, time); the later value wins.
DO $$
DECLARE
    y integer;
    columns text := 'time timestamptz NOT NULL, user_id uuid NOT NULL, data_source_id uuid NOT NULL,
        series_type smallint NOT NULL, value double precision NOT NULL, zone_offset smallint,
        end_time timestamptz, is_daily_total boolean';
BEGIN
    IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb') THEN
        EXECUTE format('CREATE TABLE samples (%s)', columns);
        PERFORM create_hypertable('samples', by_range('time', INTERVAL '30 days'));
    ELSE
        EXECUTE format('CREATE TABLE samples (%s) PARTITION BY RANGE (time)', columns);
        FOR y IN 1990..2049 LOOP
            EXECUTE format('CREATE TABLE samples_y%s PARTITION OF samples FOR VALUES FROM (%L) TO (%L)',
                           y, make_date(y, 1, 1), make_date(y + 1, 1, 1));
        END LOOP;
        CREATE TABLE samples_other PARTITION OF samples DEFAULT;
    END IF;
END $$;
CREATE UNIQUE INDEX samples_key ON samples (data_source_id, series_type, time);
CREATE INDEX samples_user_type_time ON samples (user_id, series_type, time);

-- Per user, data source and series type: how many samples the timeseries holds.
CREATE TABLE sample_counts (
    user_id        uuid     NOT NULL,
    data_source_id uuid     NOT NULL,
    series_type    smallint NOT NULL,
    count          bigint   NOT NULL,
    PRIMARY KEY (user_id, data_source_id, series_type)
);

CREATE TABLE workouts (
    id             uuid        PRIMARY KEY,
    user_id        uuid        NOT NULL,
    data_source_id uuid        NOT NULL,
    type           text        NOT NULL,
    start_time     timestamptz NOT NULL,
    end_time       timestamptz NOT NULL,
    zone_offset    smallint,
    duration_s     double precision,
    stats          jsonb       NOT NULL DEFAULT '{}',
    metadata       jsonb       NOT NULL DEFAULT '{}',
    deleted        boolean     NOT NULL DEFAULT false
);
CREATE INDEX workouts_user_start ON workouts (user_id, start_time DESC, id DESC);

CREATE TABLE sleep_sessions (
    id              uuid        PRIMARY KEY,
    user_id         uuid        NOT NULL,
    data_source_id  uuid        NOT NULL,
    start_time      timestamptz NOT NULL,
    end_time        timestamptz NOT NULL,
    zone_offset     smallint,
    is_nap          boolean     NOT NULL,
    awake_minutes   double precision NOT NULL,
    light_minutes   double precision NOT NULL,
    deep_minutes    double precision NOT NULL,
    rem_minutes     double precision NOT NULL,
    asleep_minutes  double precision NOT NULL,
    in_bed_minutes  double precision NOT NULL,
    stages          jsonb       NOT NULL,
    deleted         boolean     NOT NULL DEFAULT false
);
CREATE INDEX sleep_sessions_user_start ON sleep_sessions (user_id, start_time DESC, id DESC);

-- Daily activity rings and personal characteristics from imports.
CREATE TABLE activity_summaries (
    user_id        uuid NOT NULL,
    data_source_id uuid NOT NULL,
    date           date NOT NULL,
    values         jsonb NOT NULL,
    PRIMARY KEY (user_id, data_source_id, date)
);
CREATE TABLE personal_records (
    user_id    uuid PRIMARY KEY,
    birth_date date,
    sex        text
);

-- Imports and their progress, for the import status endpoint and the benchmark.
CREATE TABLE imports (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL,
    status      text        NOT NULL,
    filename    text,
    sha256      text,
    size        bigint,
    counts      jsonb,
    error       text,
    created_at  timestamptz NOT NULL,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX imports_user ON imports (user_id, created_at DESC);
