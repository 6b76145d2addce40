-- Who runs a bulk job now: the process holding its lease (`holder`, e.g. host:pid:random) until
-- `lease_until_ms` (Unix time in milliseconds, so both backends compare it as a number). The
-- holder renews the lease while the job runs and clears the expiry when it stops; another
-- process runs the job (a `dci bulk resume`, a server taking over a scheduled run whose holder
-- died) only once the lease is free: no holder, expired, or held by a process known dead.
ALTER TABLE bulk_job ADD COLUMN holder TEXT;
ALTER TABLE bulk_job ADD COLUMN lease_until_ms BIGINT;

CREATE INDEX bulk_job_state ON bulk_job (state);
