-- The samples archival has rolled into daily aggregates, for `/dashboard/stats`
-- `data_points.archived`. Kept by the samples projection where it writes and removes
-- `sample_archive` rows (not by a trigger: dropping archive chunks fires none).
INSERT INTO record_counts (kind, count)
SELECT 'archived_samples', coalesce(sum(count), 0)::int8 FROM sample_archive
ON CONFLICT (kind) DO NOTHING;
