-- Samples deleted because the record they were mapped from was deleted by its provider (a
-- Whoop recovery's vitals, a sleep's respiratory rate). Part of the timeseries read model:
-- rebuilt from `SamplesDeleted` events, and consulted after every merge so that a later pull
-- bringing the same samples again does not bring them back.
CREATE TABLE sample_tombstones (
    user_id        uuid        NOT NULL,
    data_source_id uuid        NOT NULL,
    series_type    smallint    NOT NULL,
    time           timestamptz NOT NULL,
    PRIMARY KEY (data_source_id, series_type, time)
);
