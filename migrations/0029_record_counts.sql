-- Row counts of the read models the dashboard reports, kept in the same transaction as every
-- write by triggers, so `/dashboard/stats` reads a handful of rows instead of scanning tables
-- that grow with every workout and night. (Samples are counted per series in sample_counts.)
-- A TRUNCATE (a projection rebuild) resets its count; rows copied back are counted again.
CREATE TABLE record_counts (
    kind  text   PRIMARY KEY,
    count bigint NOT NULL
);

CREATE FUNCTION count_records() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        UPDATE record_counts SET count = count + 1 WHERE kind = TG_ARGV[0];
    ELSIF TG_OP = 'DELETE' THEN
        UPDATE record_counts SET count = count - 1 WHERE kind = TG_ARGV[0];
    ELSE
        UPDATE record_counts SET count = 0 WHERE kind = TG_ARGV[0];
    END IF;
    RETURN NULL;
END
$$;

INSERT INTO record_counts (kind, count)
SELECT 'users', count(*) FROM users
UNION ALL SELECT 'workouts', count(*) FROM workouts
UNION ALL SELECT 'sleep_sessions', count(*) FROM sleep_sessions
UNION ALL SELECT 'menstrual_cycles', count(*) FROM menstrual_cycles;

CREATE TRIGGER users_count AFTER INSERT OR DELETE ON users
    FOR EACH ROW EXECUTE FUNCTION count_records('users');
CREATE TRIGGER users_reset AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION count_records('users');
CREATE TRIGGER workouts_count AFTER INSERT OR DELETE ON workouts
    FOR EACH ROW EXECUTE FUNCTION count_records('workouts');
CREATE TRIGGER workouts_reset AFTER TRUNCATE ON workouts
    FOR EACH STATEMENT EXECUTE FUNCTION count_records('workouts');
CREATE TRIGGER sleep_sessions_count AFTER INSERT OR DELETE ON sleep_sessions
    FOR EACH ROW EXECUTE FUNCTION count_records('sleep_sessions');
CREATE TRIGGER sleep_sessions_reset AFTER TRUNCATE ON sleep_sessions
    FOR EACH STATEMENT EXECUTE FUNCTION count_records('sleep_sessions');
CREATE TRIGGER menstrual_cycles_count AFTER INSERT OR DELETE ON menstrual_cycles
    FOR EACH ROW EXECUTE FUNCTION count_records('menstrual_cycles');
CREATE TRIGGER menstrual_cycles_reset AFTER TRUNCATE ON menstrual_cycles
    FOR EACH STATEMENT EXECUTE FUNCTION count_records('menstrual_cycles');
