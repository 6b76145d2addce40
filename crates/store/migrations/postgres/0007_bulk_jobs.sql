-- Bulk jobs (`dci bulk search`): what a job runs (`spec`, JSON: input and output files and
-- formats, batch size, rows counted), how far it got (`checkpoint`, JSON: rows answered, the
-- input byte offset and line after them, the output's length holding exactly their answers,
-- counts per outcome, envelopes sent and retried), and its state (running, completed,
-- cancelled, failed) with the reason. The checkpoint is replaced after each batch whose
-- answers are written, so a resume re-sends at most the batches that were in flight. No
-- identifier is stored here: they stay in the caller's files.
CREATE TABLE bulk_job (
    id          TEXT PRIMARY KEY,
    source_code TEXT NOT NULL,
    state       TEXT NOT NULL,
    spec        TEXT NOT NULL,
    checkpoint  TEXT NOT NULL,
    reason      TEXT,
    created_at  TIMESTAMPTZ NOT NULL,
    updated_at  TIMESTAMPTZ NOT NULL
);

CREATE INDEX bulk_job_created ON bulk_job (created_at);
