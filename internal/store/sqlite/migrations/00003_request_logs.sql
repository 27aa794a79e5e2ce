-- +goose Up
-- The request log: one row per use of a key, written in batches. Ids are time-sortable (req_ + a
-- millisecond timestamp + random bits), so the primary key (workspace, id) holds each workspace's log
-- in order, and time ranges are turned into id ranges that it serves; ts keeps the exact microsecond.
-- Two b-trees per row and no foreign keys, so that inserts stay cheap: an entry outlives a deleted
-- key until retention prunes it.
CREATE TABLE request_logs (
    workspace_id TEXT    NOT NULL,
    id           TEXT    NOT NULL,
    key_id       TEXT    NOT NULL,
    ts           INTEGER NOT NULL,
    code         TEXT    NOT NULL,
    source       TEXT    NOT NULL,
    method       TEXT    NOT NULL,
    path         TEXT    NOT NULL,
    ip           TEXT    NOT NULL,
    user_agent   TEXT    NOT NULL,
    latency_us   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, id)
) STRICT, WITHOUT ROWID;

-- One key's log, newest first.
CREATE INDEX request_logs_key_id ON request_logs (workspace_id, key_id, id);

-- Hourly usage rollups: requests of one key in one hour (its start, unix microseconds) with one code.
-- Totals and valid counts are sums over codes, and days are sums over hours, made when read. Kept
-- longer than the raw log.
CREATE TABLE key_usage (
    key_id       TEXT    NOT NULL,
    hour         INTEGER NOT NULL,
    code         TEXT    NOT NULL,
    workspace_id TEXT    NOT NULL,
    requests     INTEGER NOT NULL,
    PRIMARY KEY (key_id, hour, code)
) STRICT, WITHOUT ROWID;

-- Pruning by age.
CREATE INDEX key_usage_hour ON key_usage (hour);

-- +goose Down
DROP TABLE key_usage;
DROP TABLE request_logs;
