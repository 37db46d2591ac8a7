-- Read models of the identity aggregates, written only by their projections.
CREATE TABLE users (
    id               uuid        PRIMARY KEY,
    first_name       text,
    last_name        text,
    email            text,
    external_user_id text,
    created_at       timestamptz NOT NULL,
    updated_at       timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_external_user_id ON users (external_user_id) WHERE external_user_id IS NOT NULL;
CREATE INDEX users_created_at ON users (created_at, id);
CREATE INDEX users_email ON users (lower(email));

CREATE TABLE developers (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL UNIQUE,
    password_hash text        NOT NULL,
    first_name    text,
    last_name     text,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

CREATE TABLE developer_refresh_tokens (
    token_hash   text        PRIMARY KEY,
    developer_id uuid        NOT NULL,
    expires_at   timestamptz NOT NULL,
    created_at   timestamptz NOT NULL
);

CREATE TABLE api_keys (
    id         uuid        PRIMARY KEY,
    name       text        NOT NULL,
    key_hash   text        NOT NULL UNIQUE,
    key_prefix text        NOT NULL,
    created_by uuid,
    created_at timestamptz NOT NULL
);
