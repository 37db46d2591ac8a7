-- Provider request budgets counted in fixed windows (Strava: 100 per quarter hour and 1,000
-- per UTC day per app; Fitbit: 150 per hour per user), shared by every `serve` process: one
-- row per (budget key, window start) with the requests sent in it. Operational state, not a
-- read model (never rebuilt); windows older than two days are dropped as new ones open.
CREATE TABLE provider_rate_windows (
    budget       text        NOT NULL,
    window_start timestamptz NOT NULL,
    used         integer     NOT NULL,
    PRIMARY KEY (budget, window_start)
);
