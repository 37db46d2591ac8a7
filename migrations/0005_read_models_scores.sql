-- Read models of issue 5: menstrual cycles, source priorities, the merged daily rollup behind
-- the daily summaries, and health scores.

CREATE TABLE menstrual_cycles (
    id             uuid        PRIMARY KEY,
    user_id        uuid        NOT NULL,
    data_source_id uuid        NOT NULL,
    start_time     timestamptz NOT NULL,
    end_time       timestamptz,
    zone_offset    smallint,
    details        jsonb       NOT NULL DEFAULT '{}',
    deleted        boolean     NOT NULL DEFAULT false
);
CREATE INDEX menstrual_cycles_user_start ON menstrual_cycles (user_id, start_time DESC, id DESC);

-- Priorities that were set; defaults live in code, so an empty table means "all defaults".
CREATE TABLE source_priorities (
    kind       text        NOT NULL, -- 'provider' or 'device_type'
    name       text        NOT NULL,
    priority   integer     NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (kind, name)
);

-- One merged value per user, local date and metric: series ids for merged series, negative ids
-- for derived minutes (see projections/src/daily_rollup.rs). `data_source_id` is the
-- best-ranked source that contributed.
CREATE TABLE daily_rollup (
    user_id        uuid             NOT NULL,
    date           date             NOT NULL,
    metric         smallint         NOT NULL,
    value          double precision NOT NULL,
    min            double precision,
    max            double precision,
    count          integer          NOT NULL,
    data_source_id uuid,
    PRIMARY KEY (user_id, date, metric)
);

CREATE TABLE health_scores (
    id              uuid             PRIMARY KEY,
    user_id         uuid             NOT NULL,
    data_source_id  uuid,
    provider        text             NOT NULL,
    category        text             NOT NULL,
    value           double precision,
    qualifier       text,
    recorded_at     timestamptz      NOT NULL,
    zone_offset     smallint,
    components      jsonb,
    sleep_record_id uuid,
    UNIQUE (user_id, provider, category, recorded_at)
);
CREATE INDEX health_scores_user_time ON health_scores (user_id, recorded_at DESC, id);

-- Nights merged across sources (projections/src/sleep_nights.rs), one row per night, with the
-- vitals averaged over each main sleep, so the sleep summary reads rows instead of samples.
CREATE TABLE sleep_nights (
    user_id              uuid             NOT NULL,
    wake_date            date             NOT NULL,
    start_time           timestamptz      NOT NULL,
    end_time             timestamptz      NOT NULL,
    zone_offset          smallint         NOT NULL,
    data_source_id       uuid             NOT NULL,
    is_main              boolean          NOT NULL,
    is_nap               boolean          NOT NULL,
    awake_minutes        double precision NOT NULL,
    light_minutes        double precision NOT NULL,
    deep_minutes         double precision NOT NULL,
    rem_minutes          double precision NOT NULL,
    asleep_minutes       double precision NOT NULL,
    in_bed_minutes       double precision NOT NULL,
    interruptions        integer          NOT NULL,
    session_ids          uuid[]           NOT NULL,
    avg_heart_rate       double precision,
    avg_hrv_sdnn         double precision,
    avg_hrv_rmssd        double precision,
    avg_respiratory_rate double precision,
    avg_spo2             double precision,
    PRIMARY KEY (user_id, wake_date, start_time)
);
