-- Provider scores, provider-side deletions, linked-account runs, the shared rate budget and
-- Oura webhook subscriptions.

-- A provider score its provider deleted (Whoop `recovery.deleted`, ...) stays as a hidden row,
-- so a later pull that brings the same score (same id) again does not resurrect it.
ALTER TABLE health_scores ADD COLUMN deleted boolean NOT NULL DEFAULT false;

-- A run that received data pulled once for a provider account linked to several users names
-- the user whose connection made the pull (the contract's `primary_user_id`).
ALTER TABLE sync_runs ADD COLUMN primary_user_id uuid;

-- The per-app request budget of each provider, shared by every `serve` process: the earliest
-- time the next request may be sent. Operational state, not a read model (never rebuilt).
CREATE TABLE provider_pacing (
    provider text        PRIMARY KEY,
    next_at  timestamptz NOT NULL
);
