-- Named users (argon2 password hashes only), their personal API tokens (SHA-256 digests only),
-- console sessions (by the digest of the session id, so they survive a restart and are shared
-- by every instance), and the change audit: who changed what and when, by field name, never a
-- value. Instants are unix milliseconds, compared the same way on both backends.

CREATE TABLE app_user (
    id            TEXT PRIMARY KEY NOT NULL,
    username      TEXT NOT NULL UNIQUE,
    role          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_ms    BIGINT NOT NULL,
    updated_ms    BIGINT NOT NULL
);

CREATE TABLE api_token (
    id         TEXT PRIMARY KEY NOT NULL,
    user_id    TEXT NOT NULL REFERENCES app_user (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    digest     TEXT NOT NULL UNIQUE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    revoked_ms BIGINT
);

CREATE INDEX api_token_user ON api_token (user_id, created_ms);

CREATE TABLE console_session (
    id_digest  TEXT PRIMARY KEY NOT NULL,
    csrf       TEXT NOT NULL,
    user_id    TEXT REFERENCES app_user (id) ON DELETE CASCADE,
    role       TEXT,
    actor      TEXT,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL
);

CREATE INDEX console_session_expiry ON console_session (expires_ms);

CREATE TABLE change_audit (
    id        BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    actor     TEXT NOT NULL,
    target    TEXT NOT NULL,
    target_id TEXT NOT NULL,
    action    TEXT NOT NULL,
    fields    TEXT NOT NULL
);

CREATE INDEX change_audit_at ON change_audit (at_ms, id);

-- The change audit is append-only.
CREATE FUNCTION change_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'change_audit is append-only';
END;
$$;

CREATE TRIGGER change_audit_no_change BEFORE UPDATE OR DELETE ON change_audit
    FOR EACH ROW EXECUTE FUNCTION change_audit_append_only();
