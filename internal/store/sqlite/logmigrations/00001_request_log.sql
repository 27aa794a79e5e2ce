-- +goose Up
-- The request log's own database file: written by its own connection, with synchronous NORMAL, so
-- that its batches never take the keys' write lock or wait for their fsync.

-- One row per use of a key. Ids are time-sortable (req_ + a millisecond timestamp + random bits), so
-- the primary key (workspace, id) holds each workspace's log in order and new entries go at the end
-- of their workspace's part; time ranges are turned into id ranges that it serves, and ts keeps the
-- exact microsecond. No foreign keys: an entry outlives a deleted key until retention prunes it.
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

-- One key's log, newest first: GET /v1/logs?keyId and the dashboard's log of a key. The one index
-- whose inserts do not go at the end of the table (each goes at the end of its key's run), kept
-- because nothing else finds a rarely used key's entries without reading the workspace's whole log.
CREATE INDEX request_logs_key_id ON request_logs (workspace_id, key_id, id);

-- Hourly usage rollups: requests of one key in one hour (its start, unix microseconds) with one code.
-- Totals and valid counts are sums over codes, and days are sums over hours, made when read. Kept
-- longer than the raw log. The hour leads, so that the rows AddUsage writes (the current hour's) are
-- together at the end and pruning deletes the first ones; reads seek to their workspace's, or key's,
-- part of each hour, so no other index is needed.
CREATE TABLE key_usage (
    hour         INTEGER NOT NULL,
    workspace_id TEXT    NOT NULL,
    key_id       TEXT    NOT NULL,
    code         TEXT    NOT NULL,
    requests     INTEGER NOT NULL,
    PRIMARY KEY (hour, workspace_id, key_id, code)
) STRICT, WITHOUT ROWID;

-- What was copied in from elsewhere, once: an older data dir's main file held the log (migration 9
-- of the main file drops it there).
CREATE TABLE imports (
    source TEXT    NOT NULL PRIMARY KEY,
    at     INTEGER NOT NULL
) STRICT;

-- +goose Down
DROP TABLE imports;
DROP TABLE key_usage;
DROP TABLE request_logs;
