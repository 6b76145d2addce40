-- Schedules (`dci schedule add`, `/api/v1/schedules`): a bulk job definition with a cron
-- expression (UTC), an input (an absolute file path, or an http(s) URL fetched at each run),
-- its formats and batch size, and the catch-up policy for occurrences missed during downtime
-- (`latest`: run the latest once; `none`: record it as missed).
CREATE TABLE schedule (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    source_code   TEXT NOT NULL,
    cron          TEXT NOT NULL,
    input         TEXT NOT NULL,
    input_format  TEXT NOT NULL,
    output_format TEXT NOT NULL,
    batch_size    BIGINT,
    record_type   TEXT,
    catch_up      TEXT NOT NULL,
    enabled       BOOLEAN NOT NULL,
    created_at    TIMESTAMPTZ NOT NULL
);

-- One row per occurrence an instance claimed (run, or recorded as missed). The key makes the
-- claim exclusive: of several instances on one database, the first insert wins and the others
-- skip the occurrence. `job_id` is the bulk job of the run (its progress and results).
CREATE TABLE schedule_run (
    schedule_id   TEXT NOT NULL REFERENCES schedule (id) ON DELETE CASCADE,
    occurrence_at TIMESTAMPTZ NOT NULL,
    instance      TEXT NOT NULL,
    state         TEXT NOT NULL,
    job_id        TEXT,
    reason        TEXT,
    skipped       BIGINT NOT NULL,
    started_at    TIMESTAMPTZ NOT NULL,
    finished_at   TIMESTAMPTZ,
    PRIMARY KEY (schedule_id, occurrence_at)
);

CREATE INDEX schedule_run_job ON schedule_run (job_id);
