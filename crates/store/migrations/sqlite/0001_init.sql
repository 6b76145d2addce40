-- Data sources, sealed secrets, cached tokens and the audit log.
-- Secrets never appear in plain text: they live in sealed_secret as XChaCha20-Poly1305
-- ciphertext bound to (owner_id, field).

CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY NOT NULL,
    value TEXT NOT NULL
);

CREATE TABLE data_source (
    id            TEXT PRIMARY KEY NOT NULL,
    code          TEXT NOT NULL,
    name          TEXT NOT NULL,
    registry_type TEXT NOT NULL,
    base_url      TEXT NOT NULL,
    auth_kind     TEXT NOT NULL,
    state         TEXT NOT NULL,
    active        BOOLEAN NOT NULL,
    -- Every other non-secret setting, as JSON (read leniently so new settings need no migration).
    config        TEXT NOT NULL,
    last_test_at  TEXT,
    last_error    TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    CONSTRAINT data_source_code_key UNIQUE (code)
);

CREATE INDEX data_source_registry_type ON data_source (registry_type);

CREATE TABLE sealed_secret (
    owner_id   TEXT NOT NULL,
    field      TEXT NOT NULL,
    key_id     TEXT NOT NULL,
    nonce      BLOB NOT NULL,
    ciphertext BLOB NOT NULL,
    PRIMARY KEY (owner_id, field)
);

CREATE TABLE cached_token (
    source_id  TEXT PRIMARY KEY NOT NULL REFERENCES data_source (id) ON DELETE CASCADE,
    token_type TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    scope      TEXT,
    updated_at TEXT NOT NULL
);

CREATE TABLE audit_log (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    at             TEXT NOT NULL,
    source_code    TEXT NOT NULL,
    endpoint       TEXT NOT NULL,
    action         TEXT NOT NULL,
    message_id     TEXT,
    transaction_id TEXT,
    http_status    INTEGER,
    outcome        TEXT NOT NULL,
    duration_ms    INTEGER NOT NULL,
    attempt        INTEGER NOT NULL,
    error          TEXT
);

CREATE INDEX audit_log_source ON audit_log (source_code, id);

-- The audit log is append-only.
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;

CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
