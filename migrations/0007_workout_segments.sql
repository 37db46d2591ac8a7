-- Workout laps (the contract's `workout_details.segments`), as a JSON array of
-- {start, end, stats}; empty for workouts whose provider sends no laps.
ALTER TABLE workouts ADD COLUMN segments jsonb NOT NULL DEFAULT '[]';
