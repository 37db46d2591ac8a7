-- The event store: postgres-es's table layout for cqrs-es, plus a global position and the
-- writing transaction's id so log readers can tail it without ever skipping a late commit.
CREATE SEQUENCE IF NOT EXISTS log_position;

CREATE TABLE events (
    aggregate_type text        NOT NULL,
    aggregate_id   text        NOT NULL,
    sequence       bigint      NOT NULL CHECK (sequence > 0),
    event_type     text        NOT NULL,
    event_version  text        NOT NULL,
    payload        jsonb       NOT NULL,
    metadata       jsonb       NOT NULL,
    position       bigint      NOT NULL DEFAULT nextval('log_position'),
    tx             xid8        NOT NULL DEFAULT pg_current_xact_id(),
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    user_id        uuid,
    PRIMARY KEY (aggregate_type, aggregate_id, sequence)
);
CREATE UNIQUE INDEX events_position ON events (position);
-- Log readers order by (tx, position): see projections/src/log.rs for why.
CREATE INDEX events_tx_position ON events (tx, position);
CREATE INDEX events_user_position ON events (user_id, position) WHERE user_id IS NOT NULL;

-- postgres-es's snapshot table, kept for layout compatibility.
CREATE TABLE snapshots (
    aggregate_type   text   NOT NULL,
    aggregate_id     text   NOT NULL,
    last_sequence    bigint NOT NULL,
    snapshot_version bigint NOT NULL,
    payload          jsonb  NOT NULL,
    PRIMARY KEY (aggregate_type, aggregate_id)
);

-- One row per log consumer (projection, relay): the last entry it applied.
CREATE TABLE checkpoints (
    name       text        PRIMARY KEY,
    tx         bigint      NOT NULL DEFAULT 0,
    position   bigint      NOT NULL DEFAULT 0,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Wake log readers as soon as a writing transaction commits (NOTIFY is delivered on commit).
CREATE FUNCTION notify_log() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('wearhouse_log', '');
    RETURN NULL;
END $$;
CREATE TRIGGER events_notify AFTER INSERT ON events
    FOR EACH STATEMENT EXECUTE FUNCTION notify_log();
