-- Instants in SQLite are text, compared byte by byte (`ORDER BY created_at`, `created_at < ?`,
-- the schedule_run key). They used to be written as RFC 3339 with the fraction trimmed
-- (`…:05Z`, `…:05.1Z`, `…:05.123Z`), whose text order is not time order within a second. They
-- are now written at one width, `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC, microseconds: the store's
-- `instant::At`); this rewrites every instant written before into that form. Only UTC text in
-- RFC 3339 form (ending in `Z`) not yet 27 bytes long is touched.
--
-- The audit log is append-only: its update guard is lifted for the rewrite and put back, in
-- the migration's transaction.

DROP TRIGGER audit_log_no_update;

UPDATE data_source SET last_test_at = substr(last_test_at, 1, 19) || '.' || substr(CASE WHEN substr(last_test_at, 20, 1) = '.' THEN substr(last_test_at, 21, length(last_test_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE last_test_at LIKE '____-__-__T__:__:__%Z' AND length(last_test_at) <> 27;
UPDATE data_source SET created_at = substr(created_at, 1, 19) || '.' || substr(CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE created_at LIKE '____-__-__T__:__:__%Z' AND length(created_at) <> 27;
UPDATE data_source SET updated_at = substr(updated_at, 1, 19) || '.' || substr(CASE WHEN substr(updated_at, 20, 1) = '.' THEN substr(updated_at, 21, length(updated_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE updated_at LIKE '____-__-__T__:__:__%Z' AND length(updated_at) <> 27;
UPDATE cached_token SET expires_at = substr(expires_at, 1, 19) || '.' || substr(CASE WHEN substr(expires_at, 20, 1) = '.' THEN substr(expires_at, 21, length(expires_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE expires_at LIKE '____-__-__T__:__:__%Z' AND length(expires_at) <> 27;
UPDATE cached_token SET updated_at = substr(updated_at, 1, 19) || '.' || substr(CASE WHEN substr(updated_at, 20, 1) = '.' THEN substr(updated_at, 21, length(updated_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE updated_at LIKE '____-__-__T__:__:__%Z' AND length(updated_at) <> 27;
UPDATE audit_log SET at = substr(at, 1, 19) || '.' || substr(CASE WHEN substr(at, 20, 1) = '.' THEN substr(at, 21, length(at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE at LIKE '____-__-__T__:__:__%Z' AND length(at) <> 27;
UPDATE op_transaction SET ack_at = substr(ack_at, 1, 19) || '.' || substr(CASE WHEN substr(ack_at, 20, 1) = '.' THEN substr(ack_at, 21, length(ack_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE ack_at LIKE '____-__-__T__:__:__%Z' AND length(ack_at) <> 27;
UPDATE op_transaction SET created_at = substr(created_at, 1, 19) || '.' || substr(CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE created_at LIKE '____-__-__T__:__:__%Z' AND length(created_at) <> 27;
UPDATE op_transaction SET updated_at = substr(updated_at, 1, 19) || '.' || substr(CASE WHEN substr(updated_at, 20, 1) = '.' THEN substr(updated_at, 21, length(updated_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE updated_at LIKE '____-__-__T__:__:__%Z' AND length(updated_at) <> 27;
UPDATE op_callback SET received_at = substr(received_at, 1, 19) || '.' || substr(CASE WHEN substr(received_at, 20, 1) = '.' THEN substr(received_at, 21, length(received_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE received_at LIKE '____-__-__T__:__:__%Z' AND length(received_at) <> 27;
UPDATE op_subscription SET created_at = substr(created_at, 1, 19) || '.' || substr(CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE created_at LIKE '____-__-__T__:__:__%Z' AND length(created_at) <> 27;
UPDATE op_subscription SET updated_at = substr(updated_at, 1, 19) || '.' || substr(CASE WHEN substr(updated_at, 20, 1) = '.' THEN substr(updated_at, 21, length(updated_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE updated_at LIKE '____-__-__T__:__:__%Z' AND length(updated_at) <> 27;
UPDATE op_signing_key SET created_at = substr(created_at, 1, 19) || '.' || substr(CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE created_at LIKE '____-__-__T__:__:__%Z' AND length(created_at) <> 27;
UPDATE op_signing_key SET activated_at = substr(activated_at, 1, 19) || '.' || substr(CASE WHEN substr(activated_at, 20, 1) = '.' THEN substr(activated_at, 21, length(activated_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE activated_at LIKE '____-__-__T__:__:__%Z' AND length(activated_at) <> 27;
UPDATE op_signing_key SET revoked_at = substr(revoked_at, 1, 19) || '.' || substr(CASE WHEN substr(revoked_at, 20, 1) = '.' THEN substr(revoked_at, 21, length(revoked_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE revoked_at LIKE '____-__-__T__:__:__%Z' AND length(revoked_at) <> 27;
UPDATE op_signing_key SET expires_at = substr(expires_at, 1, 19) || '.' || substr(CASE WHEN substr(expires_at, 20, 1) = '.' THEN substr(expires_at, 21, length(expires_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE expires_at LIKE '____-__-__T__:__:__%Z' AND length(expires_at) <> 27;
UPDATE event SET created_at = substr(created_at, 1, 19) || '.' || substr(CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE created_at LIKE '____-__-__T__:__:__%Z' AND length(created_at) <> 27;
UPDATE event SET processed_at = substr(processed_at, 1, 19) || '.' || substr(CASE WHEN substr(processed_at, 20, 1) = '.' THEN substr(processed_at, 21, length(processed_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE processed_at LIKE '____-__-__T__:__:__%Z' AND length(processed_at) <> 27;
UPDATE webhook_endpoint SET created_at = substr(created_at, 1, 19) || '.' || substr(CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE created_at LIKE '____-__-__T__:__:__%Z' AND length(created_at) <> 27;
UPDATE webhook_endpoint SET updated_at = substr(updated_at, 1, 19) || '.' || substr(CASE WHEN substr(updated_at, 20, 1) = '.' THEN substr(updated_at, 21, length(updated_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE updated_at LIKE '____-__-__T__:__:__%Z' AND length(updated_at) <> 27;
UPDATE webhook_delivery SET created_at = substr(created_at, 1, 19) || '.' || substr(CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE created_at LIKE '____-__-__T__:__:__%Z' AND length(created_at) <> 27;
UPDATE webhook_delivery SET delivered_at = substr(delivered_at, 1, 19) || '.' || substr(CASE WHEN substr(delivered_at, 20, 1) = '.' THEN substr(delivered_at, 21, length(delivered_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE delivered_at LIKE '____-__-__T__:__:__%Z' AND length(delivered_at) <> 27;
UPDATE webhook_attempt SET at = substr(at, 1, 19) || '.' || substr(CASE WHEN substr(at, 20, 1) = '.' THEN substr(at, 21, length(at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE at LIKE '____-__-__T__:__:__%Z' AND length(at) <> 27;
UPDATE bulk_job SET created_at = substr(created_at, 1, 19) || '.' || substr(CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE created_at LIKE '____-__-__T__:__:__%Z' AND length(created_at) <> 27;
UPDATE bulk_job SET updated_at = substr(updated_at, 1, 19) || '.' || substr(CASE WHEN substr(updated_at, 20, 1) = '.' THEN substr(updated_at, 21, length(updated_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE updated_at LIKE '____-__-__T__:__:__%Z' AND length(updated_at) <> 27;
UPDATE schedule SET created_at = substr(created_at, 1, 19) || '.' || substr(CASE WHEN substr(created_at, 20, 1) = '.' THEN substr(created_at, 21, length(created_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE created_at LIKE '____-__-__T__:__:__%Z' AND length(created_at) <> 27;
UPDATE schedule_run SET occurrence_at = substr(occurrence_at, 1, 19) || '.' || substr(CASE WHEN substr(occurrence_at, 20, 1) = '.' THEN substr(occurrence_at, 21, length(occurrence_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE occurrence_at LIKE '____-__-__T__:__:__%Z' AND length(occurrence_at) <> 27;
UPDATE schedule_run SET started_at = substr(started_at, 1, 19) || '.' || substr(CASE WHEN substr(started_at, 20, 1) = '.' THEN substr(started_at, 21, length(started_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE started_at LIKE '____-__-__T__:__:__%Z' AND length(started_at) <> 27;
UPDATE schedule_run SET finished_at = substr(finished_at, 1, 19) || '.' || substr(CASE WHEN substr(finished_at, 20, 1) = '.' THEN substr(finished_at, 21, length(finished_at) - 21) ELSE '' END || '000000', 1, 6) || 'Z'
    WHERE finished_at LIKE '____-__-__T__:__:__%Z' AND length(finished_at) <> 27;

CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
