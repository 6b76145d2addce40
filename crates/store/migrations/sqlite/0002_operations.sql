-- DCI operations: async requests (stored before they are sent), callbacks and notifications
-- (stored before the receiver answers ACK, unique per source and message id), subscriptions,
-- and our signing keys (public halves here; private halves sealed in sealed_secret under owner
-- 'signing_key:{key_id}', so master-key rotation re-seals them with everything else).

CREATE TABLE op_transaction (
    transaction_id TEXT PRIMARY KEY NOT NULL,
    source_code    TEXT NOT NULL,
    kind           TEXT NOT NULL,
    message_id     TEXT NOT NULL,
    -- JSON array of the request's reference ids.
    reference_ids  TEXT NOT NULL,
    -- The envelope exactly as sent, JSON.
    request        TEXT NOT NULL,
    state          TEXT NOT NULL,
    ack_status     TEXT,
    correlation_id TEXT,
    error_code     TEXT,
    error_message  TEXT,
    ack_at         TEXT,
    created_at     TEXT NOT NULL,
    -- Unix milliseconds, so that both backends compare deadlines the same way.
    deadline_ms    INTEGER NOT NULL,
    updated_at     TEXT NOT NULL
);

CREATE INDEX op_transaction_open ON op_transaction (state, deadline_ms);
CREATE INDEX op_transaction_source ON op_transaction (source_code, created_at);

CREATE TABLE op_callback (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    source_code      TEXT NOT NULL,
    message_id       TEXT NOT NULL,
    action           TEXT NOT NULL,
    transaction_id   TEXT,
    correlation_id   TEXT,
    status           TEXT,
    total_count      INTEGER,
    completed_count  INTEGER,
    signature        TEXT NOT NULL,
    signature_key_id TEXT,
    -- The envelope as received, JSON.
    body             TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    CONSTRAINT op_callback_message_key UNIQUE (source_code, message_id)
);

CREATE INDEX op_callback_transaction ON op_callback (transaction_id, id);
CREATE INDEX op_callback_action ON op_callback (action, id);

CREATE TABLE op_subscription (
    source_code    TEXT NOT NULL,
    code           TEXT NOT NULL,
    state          TEXT NOT NULL,
    event_type     TEXT,
    transaction_id TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    PRIMARY KEY (source_code, code)
);

CREATE TABLE op_signing_key (
    key_id         TEXT PRIMARY KEY NOT NULL,
    algorithm      TEXT NOT NULL,
    status         TEXT NOT NULL,
    public_key_pem TEXT NOT NULL,
    created_at     TEXT NOT NULL,
    activated_at   TEXT,
    revoked_at     TEXT,
    expires_at     TEXT
);
