-- Events for the SPMIS (the outbox) and their webhook deliveries.
--
-- An event row is written in the same database transaction as the change that causes it
-- (callback stored, transaction advanced or expired, subscription or data-source state
-- changed), together with one pending delivery per enabled webhook endpoint whose kind filter
-- takes it. `id` is the stable `webhook-id` of every delivery of the event; `seq` orders
-- the outbox (deliveries to one endpoint go in seq order; listing cursors are built from it).
-- Webhook secrets are sealed in sealed_secret under owner 'webhook:{id}', field
-- 'webhook_secret', so master-key rotation re-seals them with everything else.

CREATE TABLE event (
    seq               INTEGER PRIMARY KEY AUTOINCREMENT,
    id                TEXT NOT NULL UNIQUE,
    kind              TEXT NOT NULL,
    source_code       TEXT,
    transaction_id    TEXT,
    subscription_code TEXT,
    created_at        TEXT NOT NULL,
    -- Unix milliseconds, so that both backends compare times the same way.
    created_ms        INTEGER NOT NULL,
    -- JSON: the event's data.
    payload           TEXT NOT NULL,
    processed_at      TEXT
);

CREATE INDEX event_kind ON event (kind, seq);
CREATE INDEX event_source ON event (source_code, seq);
CREATE INDEX event_created ON event (created_ms);

CREATE TABLE webhook_endpoint (
    id             TEXT PRIMARY KEY NOT NULL,
    url            TEXT NOT NULL,
    -- JSON array of event kinds; '[]' takes every kind.
    kinds          TEXT NOT NULL,
    enabled        BOOLEAN NOT NULL,
    description    TEXT,
    created_at     TEXT NOT NULL,
    updated_at     TEXT NOT NULL,
    -- The delivery worker holding the endpoint, until lease_until_ms (unix ms).
    lease_owner    TEXT,
    lease_until_ms INTEGER
);

CREATE TABLE webhook_delivery (
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
    event_seq       INTEGER NOT NULL REFERENCES event (seq) ON DELETE CASCADE,
    event_id        TEXT NOT NULL,
    event_kind      TEXT NOT NULL,
    -- pending, delivered or dead (the dead letter).
    state           TEXT NOT NULL,
    attempts        INTEGER NOT NULL,
    next_attempt_ms INTEGER NOT NULL,
    last_status     INTEGER,
    last_error      TEXT,
    created_at      TEXT NOT NULL,
    delivered_at    TEXT,
    PRIMARY KEY (endpoint_id, event_seq)
);

CREATE INDEX webhook_delivery_pending ON webhook_delivery (endpoint_id, state, event_seq);
CREATE INDEX webhook_delivery_event ON webhook_delivery (event_id);

CREATE TABLE webhook_attempt (
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoint (id) ON DELETE CASCADE,
    event_id    TEXT NOT NULL,
    attempt     INTEGER NOT NULL,
    at          TEXT NOT NULL,
    status      INTEGER,
    error       TEXT,
    duration_ms INTEGER NOT NULL
);

CREATE INDEX webhook_attempt_delivery ON webhook_attempt (endpoint_id, event_id, at);
