-- Tamper evidence for the log: the committed log is sealed in log order, a range of entries
-- at a time. Each seal keeps the hash of every entry it covers and a digest chained to the
-- previous seal's, so editing, deleting or slipping in an entry, or rewriting a seal, shows up
-- in `wearhouse audit verify` (see src/audit).
CREATE TABLE audit_seals (
    seal            bigint      PRIMARY KEY,
    -- The range sealed: entries after (after_tx, after_position) through (through_tx, through_position).
    after_tx        bigint      NOT NULL,
    after_position  bigint      NOT NULL,
    through_tx      bigint      NOT NULL,
    through_position bigint     NOT NULL,
    positions       bigint[]    NOT NULL,
    -- 32 bytes per entry, in the order of `positions`.
    entry_hashes    bytea       NOT NULL,
    prev_digest     bytea       NOT NULL,
    digest          bytea       NOT NULL,
    sealed_at       timestamptz NOT NULL DEFAULT now()
);
