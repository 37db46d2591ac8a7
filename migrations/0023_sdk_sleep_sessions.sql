-- The SDK sleep sessions of each user as the log holds them now (each session's latest version,
-- without those a later sync merged into another), by time: an SDK sync reads only the sessions
-- within the 120-minute rule's reach of its new stages instead of every SDK sleep entry of the
-- user. Write-side state derived from the log: written in the same transaction as the entries
-- it reflects, and filled from the log below for entries written before it existed.
CREATE TABLE sdk_sleep_sessions (
    id             uuid        PRIMARY KEY,
    user_id        uuid        NOT NULL,
    data_source_id uuid        NOT NULL,
    start_time     timestamptz NOT NULL,
    end_time       timestamptz NOT NULL,
    session        jsonb       NOT NULL
);
CREATE INDEX sdk_sleep_sessions_window ON sdk_sleep_sessions (user_id, data_source_id, start_time);

WITH sdk_streams AS (
    SELECT DISTINCT aggregate_id FROM events
     WHERE aggregate_type = 'SyncRun' AND event_type = 'SyncRunStarted' AND payload->>'source' = 'sdk'
), recorded AS (
    SELECT DISTINCT ON ((s->>'id')::uuid) (s->>'id')::uuid AS id, e.user_id, e.position, s
      FROM events e
      JOIN sdk_streams d ON d.aggregate_id = e.aggregate_id
      CROSS JOIN LATERAL jsonb_array_elements(e.payload->'sessions') s
     WHERE e.aggregate_type = 'DataStream' AND e.event_type = 'SleepSessionsRecorded'
     ORDER BY (s->>'id')::uuid, e.position DESC
)
INSERT INTO sdk_sleep_sessions (id, user_id, data_source_id, start_time, end_time, session)
SELECT r.id, r.user_id, (r.s->>'data_source_id')::uuid, (r.s->>'start')::timestamptz,
       (r.s->>'end')::timestamptz, r.s
  FROM recorded r
 WHERE r.user_id IS NOT NULL
   AND NOT EXISTS (
       SELECT 1 FROM events x JOIN sdk_streams d ON d.aggregate_id = x.aggregate_id
        WHERE x.aggregate_type = 'DataStream' AND x.event_type = 'RecordDeleted'
          AND x.user_id = r.user_id AND x.position > r.position
          AND x.payload->>'kind' = 'sleep' AND (x.payload->>'record_id')::uuid = r.id);
