-- Security state that is not history: signed-out access tokens (until they would expire) and
-- presigned upload URLs already used (claimed atomically, so a URL uploads once).
CREATE TABLE revoked_access_tokens (
    jti        uuid        PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE TABLE used_upload_grants (
    import_id uuid        PRIMARY KEY,
    used_at   timestamptz NOT NULL DEFAULT now()
);
