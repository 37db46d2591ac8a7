-- Kafka consumer offsets of the projection workers, kept next to the read models so each
-- batch's rows and its offset commit together (exactly-once effect). `tx`/`position` is the
-- last log entry applied from that partition: the relay may publish an entry twice after a
-- failure, and the repeat sorts at or before it.
CREATE TABLE kafka_offsets (
    projection  text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL DEFAULT 0,
    tx          bigint      NOT NULL DEFAULT 0,
    position    bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, topic, partition)
);
