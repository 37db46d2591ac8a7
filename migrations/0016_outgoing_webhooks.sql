-- Outgoing webhooks. `webhook_endpoints` is the read model of the WebhookEndpoint aggregate
-- (secrets sealed). `webhook_messages` and `webhook_deliveries` are the outbox that the
-- `webhook_outbox` projection writes from the log: a committed change has its messages, an
-- uncommitted one never does. Deliveries, attempts and endpoint health are operational state
-- written by the delivery engine.
CREATE TABLE webhook_endpoints (
    id                   uuid        PRIMARY KEY,
    url                  text        NOT NULL,
    description          text,
    user_id              uuid,
    filter_types         text[],
    secret               text        NOT NULL,
    previous_secret      text,
    previous_valid_until timestamptz,
    disabled             boolean     NOT NULL DEFAULT false,
    disabled_reason      text,
    created_at           timestamptz NOT NULL,
    -- Log position of the creation: the endpoint receives what is committed after it.
    created_position     bigint      NOT NULL
);

CREATE TABLE webhook_messages (
    id          text        PRIMARY KEY,
    event_id    text        NOT NULL UNIQUE,
    event_type  text        NOT NULL,
    user_id     uuid,
    channels    text[]      NOT NULL,
    payload     jsonb       NOT NULL,
    created_at  timestamptz NOT NULL,
    -- Set by the test route (manual messages): not derived from the log.
    position    bigint
);
CREATE INDEX webhook_messages_created ON webhook_messages (created_at, id);

CREATE TABLE webhook_deliveries (
    seq           bigserial   PRIMARY KEY,
    message_id    text        NOT NULL REFERENCES webhook_messages (id),
    endpoint_id   uuid        NOT NULL,
    -- Deliveries are ordered per (endpoint, user); NULL user = one lane for user-less messages.
    lane          text        NOT NULL,
    state         text        NOT NULL DEFAULT 'pending', -- pending | succeeded | failed
    attempts      int         NOT NULL DEFAULT 0,
    next_at       timestamptz NOT NULL,
    lease_until   timestamptz,
    -- Svix trigger type of the next attempt: 0 scheduled, 1 manual (resend).
    trigger_type  smallint    NOT NULL DEFAULT 0,
    committed_at  timestamptz NOT NULL,
    delivered_at  timestamptz,
    UNIQUE (endpoint_id, message_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_at) WHERE state = 'pending';
CREATE INDEX webhook_deliveries_lane ON webhook_deliveries (endpoint_id, lane, seq) WHERE state = 'pending';

CREATE TABLE webhook_attempts (
    id              text        PRIMARY KEY,
    message_id      text        NOT NULL,
    endpoint_id     uuid        NOT NULL,
    url             text        NOT NULL,
    response        text        NOT NULL,
    status_code     int         NOT NULL,
    duration_ms     bigint      NOT NULL,
    status          smallint    NOT NULL, -- Svix: 0 success, 2 failed
    trigger_type    smallint    NOT NULL, -- Svix: 0 scheduled, 1 manual
    at              timestamptz NOT NULL
);
CREATE INDEX webhook_attempts_endpoint ON webhook_attempts (endpoint_id, at, id);

-- Since when an endpoint's deliveries have failed without a success in between.
CREATE TABLE webhook_endpoint_health (
    endpoint_id   uuid        PRIMARY KEY,
    failing_since timestamptz NOT NULL
);
