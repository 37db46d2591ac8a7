-- Webhook notices already accepted, keyed by what they mean (the provider's records and the
-- backfill request they answer), not by the delivery's bytes: Garmin answers a new backfill
-- with the very bytes it sent for an earlier one, and that answer must not be dropped.
-- Operational state, not a read model: written with the notice's mapping job.
CREATE TABLE webhook_notices (
    provider    text        NOT NULL,
    notice_key  text        NOT NULL,
    raw_sha256  text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, notice_key)
);

DROP TABLE webhook_deliveries;
