-- Why a cancel was asked for, so the attempt ends with the user's reason (not a generic one)
-- whoever records the end: the worker at its heartbeat or turn boundary, or lease recovery.
ALTER TABLE attempts ADD COLUMN cancel_reason TEXT;
