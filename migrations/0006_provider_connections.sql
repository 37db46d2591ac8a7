-- Cloud provider connections, sync runs and webhook de-duplication.

-- One row per (user, provider): the `Connection` aggregate's latest state. Token and PKCE
-- columns hold ciphertext sealed by the application, never clear text.
CREATE TABLE connections (
    stream_id            text        PRIMARY KEY,
    id                   uuid        NOT NULL UNIQUE,
    user_id              uuid        NOT NULL,
    provider             text        NOT NULL,
    provider_user_id     text,
    scope                text,
    status               text        NOT NULL,
    revoked_reason       text,
    access_token         text,
    refresh_token        text,
    token_expires_at     timestamptz,
    state_hash           text,
    state_started_at     timestamptz,
    state_used           boolean     NOT NULL DEFAULT false,
    redirect_uri         text,
    pkce_verifier        text,
    last_synced_at       timestamptz,
    -- When the user last consented: Garmin's backfill reaches 30 days before it.
    authorized_at        timestamptz,
    created_at           timestamptz NOT NULL,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX connections_user ON connections (user_id);
CREATE INDEX connections_provider_user ON connections (provider, provider_user_id);
CREATE UNIQUE INDEX connections_state ON connections (state_hash) WHERE state_hash IS NOT NULL;

-- One row per sync run (pull, webhook, backfill, import).
CREATE TABLE sync_runs (
    id          uuid        PRIMARY KEY,
    user_id     uuid        NOT NULL,
    provider    text        NOT NULL,
    source      text        NOT NULL,
    stage       text        NOT NULL,
    status      text        NOT NULL,
    processed   bigint      NOT NULL DEFAULT 0,
    message     text,
    error       text,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz,
    updated_at  timestamptz NOT NULL
);
CREATE INDEX sync_runs_user ON sync_runs (user_id, updated_at DESC);
CREATE INDEX sync_runs_updated ON sync_runs (updated_at DESC);

-- Webhook deliveries already accepted, so a provider's retry of the same body is a no-op.
-- Operational state, not a read model: it is written before the delivery is processed.
CREATE TABLE webhook_deliveries (
    provider    text        NOT NULL,
    sha256      text        NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, sha256)
);

-- Per provider: enabled or not, live sync by pull or webhook, granularity. No row = defaults.
CREATE TABLE provider_settings (
    provider         text        PRIMARY KEY,
    is_enabled       boolean     NOT NULL DEFAULT true,
    live_sync_mode   text,
    data_granularity text,
    updated_at       timestamptz NOT NULL
);
