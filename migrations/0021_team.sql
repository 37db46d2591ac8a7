-- Roles of developer accounts (accounts from before roles were made by the installation
-- itself: admins) and team invitations. Both read models are rebuilt from the log.
ALTER TABLE developers ADD COLUMN role text NOT NULL DEFAULT 'admin';

CREATE TABLE invitations (
    id            uuid        PRIMARY KEY,
    email         text        NOT NULL,
    role          text        NOT NULL,
    token_hash    text        NOT NULL UNIQUE,
    -- pending, accepted or revoked; `expired` is derived from expires_at when read.
    status        text        NOT NULL,
    expires_at    timestamptz NOT NULL,
    invited_by_id uuid,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);
CREATE INDEX invitations_created ON invitations (created_at, id);
