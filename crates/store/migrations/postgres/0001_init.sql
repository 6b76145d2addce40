-- Data sources, sealed secrets, cached tokens and the audit log.
-- Secrets never appear in plain text: they live in sealed_secret as XChaCha20-Poly1305
-- ciphertext bound to (owner_id, field).

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE data_source (
    id            TEXT PRIMARY KEY,
    code          TEXT NOT NULL,
    name          TEXT NOT NULL,
    registry_type TEXT NOT NULL,
    base_url      TEXT NOT NULL,
    auth_kind     TEXT NOT NULL,
    state         TEXT NOT NULL,
    active        BOOLEAN NOT NULL,
    -- Every other non-secret setting, as JSON text (read leniently so new settings need no
    -- migration).
    config        TEXT NOT NULL,
    last_test_at  TIMESTAMPTZ,
    last_error    TEXT,
    created_at    TIMESTAMPTZ NOT NULL,
    updated_at    TIMESTAMPTZ NOT NULL,
    CONSTRAINT data_source_code_key UNIQUE (code)
);

CREATE INDEX data_source_registry_type ON data_source (registry_type);

CREATE TABLE sealed_secret (
    owner_id   TEXT NOT NULL,
    field      TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BYTEA NOT NULL,
    ciphertext BYTEA NOT NULL,
    PRIMARY KEY (owner_id, field)
);

CREATE TABLE cached_token (
    source_id  TEXT PRIMARY KEY REFERENCES data_source (id) ON DELETE CASCADE,
    token_type TEXT NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL,
    scope      TEXT,
    updated_at TIMESTAMPTZ NOT NULL
);

CREATE TABLE audit_log (
    id             BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at             TIMESTAMPTZ NOT NULL,
    source_code    TEXT NOT NULL,
    endpoint       TEXT NOT NULL,
    action         TEXT NOT NULL,
    message_id     TEXT,
    transaction_id TEXT,
    http_status    BIGINT,
    outcome        TEXT NOT NULL,
    duration_ms    BIGINT NOT NULL,
    attempt        BIGINT NOT NULL,
    error          TEXT
);

CREATE INDEX audit_log_source ON audit_log (source_code, id);

-- The audit log is append-only.
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;

CREATE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
