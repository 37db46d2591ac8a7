-- Contract fields of the management routes. Priorities: when each was first set (the
-- contract's `created_at`); rows set before this migration take their last change.
ALTER TABLE source_priorities ADD COLUMN created_at timestamptz;
UPDATE source_priorities SET created_at = updated_at;
ALTER TABLE source_priorities ALTER COLUMN created_at SET NOT NULL;

-- A sync run's expected item count when its provider tells it (the contract's `items_total`).
ALTER TABLE sync_runs ADD COLUMN items_total bigint;
