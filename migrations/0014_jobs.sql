-- Durable background work (src/jobs): one row per job, claimed with FOR UPDATE SKIP LOCKED.
-- Operational state, not history: rows are retried, finished and pruned; what a job produces
-- is written to the event log.
CREATE TABLE jobs (
    id uuid PRIMARY KEY,
    kind text NOT NULL,
    -- Set: enqueueing the same kind and key again returns the existing job.
    key text,
    payload jsonb NOT NULL DEFAULT '{}'::jsonb,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'done', 'failed')),
    -- Counted when claimed, so a job that kills its process every time still runs out.
    attempts integer NOT NULL DEFAULT 0,
    max_attempts integer NOT NULL DEFAULT 5 CHECK (max_attempts > 0),
    run_at timestamptz NOT NULL DEFAULT now(),
    -- The claiming runner's instance key; it holds an advisory lock on it while alive.
    claimed_by bigint,
    claimed_at timestamptz,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);

CREATE UNIQUE INDEX jobs_kind_key ON jobs (kind, key) WHERE key IS NOT NULL;
-- What a runner claims: due pending jobs, and running ones (checked for a live claimant).
CREATE INDEX jobs_claimable ON jobs (run_at) WHERE state IN ('pending', 'running');
CREATE INDEX jobs_finished ON jobs (finished_at) WHERE state = 'done';
