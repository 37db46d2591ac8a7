-- The origin (client address, user agent) of the request that queued a job, so the entries
-- the job appends later name it like the request's own entries do.
ALTER TABLE jobs ADD COLUMN origin jsonb;
