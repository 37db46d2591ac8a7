-- A sleep session whose stages came as per-stage totals only (Whoop, Garmin naps): its stored
-- timeline is laid out to keep the minutes exact, and is never served as stage intervals.
ALTER TABLE sleep_sessions ADD COLUMN stages_from_totals boolean NOT NULL DEFAULT false;
