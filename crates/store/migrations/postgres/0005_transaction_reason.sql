-- Why a transaction is in its state when no registry answer says so: `expired` (given up by
-- the recovery loop after the source's give-up time) or `failed` because the registry answered
-- that it has no such transaction (the request never arrived). Replaced on every state change.
ALTER TABLE op_transaction ADD COLUMN state_reason TEXT;
