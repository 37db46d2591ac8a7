-- Read models of the SDK credentials (written only by their projections): applications with
-- the SHA-256 of their secret, SDK refresh tokens by hash, and invitation codes by keyed hash.
CREATE TABLE applications (
    id           uuid        PRIMARY KEY,
    app_id       text        NOT NULL UNIQUE,
    name         text        NOT NULL,
    secret_hash  text        NOT NULL,
    developer_id uuid        NOT NULL,
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX applications_developer ON applications (developer_id, created_at);

CREATE TABLE sdk_refresh_tokens (
    token_hash text        PRIMARY KEY,
    user_id    uuid        NOT NULL,
    app_id     text        NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX sdk_refresh_tokens_user ON sdk_refresh_tokens (user_id);

-- Active codes only: a redeemed or revoked code's row is deleted.
CREATE TABLE sdk_invitation_codes (
    id         uuid        PRIMARY KEY,
    code_hash  text        NOT NULL UNIQUE,
    user_id    uuid        NOT NULL,
    created_by uuid        NOT NULL,
    expires_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX sdk_invitation_codes_user ON sdk_invitation_codes (user_id);
