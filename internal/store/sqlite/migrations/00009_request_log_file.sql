-- +goose Up
-- The request log and the usage rollups live in a database file of their own (see the package's
-- logmigrations). Open copies an older file's rows there before it applies this migration.
DROP TABLE IF EXISTS request_logs;
DROP TABLE IF EXISTS key_usage;

-- +goose Down
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
CREATE INDEX request_logs_key_id ON request_logs (workspace_id, key_id, id);
CREATE TABLE key_usage (
    key_id       TEXT    NOT NULL,
    hour         INTEGER NOT NULL,
    code         TEXT    NOT NULL,
    workspace_id TEXT    NOT NULL,
    requests     INTEGER NOT NULL,
    PRIMARY KEY (key_id, hour, code)
) STRICT, WITHOUT ROWID;
CREATE INDEX key_usage_hour ON key_usage (hour);
CREATE INDEX key_usage_workspace ON key_usage (workspace_id, hour);
