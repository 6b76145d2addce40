-- Failed console sign-ins per username, shared by every instance on this database: one row per
-- username digest (SHA-256 of the trimmed, lowercased name: no username is kept here) with the
-- instant, in Unix milliseconds, from which its next failure is again within the allowance
-- (a GCRA limiter; dci_client::users::sign_in). Rows whose instant has passed mean nothing
-- and are deleted as failures are recorded.
CREATE TABLE sign_in_failure (
    user_key TEXT PRIMARY KEY NOT NULL,
    until_ms BIGINT NOT NULL
);
