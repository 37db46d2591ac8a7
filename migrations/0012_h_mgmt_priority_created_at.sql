-- When each priority was first set (the contract's `created_at`); rows set before this
-- migration take their last change as the best time known.
ALTER TABLE source_priorities ADD COLUMN created_at timestamptz;
UPDATE source_priorities SET created_at = updated_at;
ALTER TABLE source_priorities ALTER COLUMN created_at SET NOT NULL;
