-- +goose Up
-- The request log in blocks, as in SQLite's log file (its migration 3): a batch of entries is written
-- as one row per workspace and minute (data, encoded by package logblock), not a row per entry, and
-- one row per key in the block. The rows of request_logs are moved into blocks by keyplane when it
-- opens the database (postgres.Open), which then drops the table: encoding a block takes Go.
CREATE TABLE request_log_blocks (
    workspace_id TEXT COLLATE "C" NOT NULL,
    last_id      TEXT COLLATE "C" NOT NULL,
    first_id     TEXT COLLATE "C" NOT NULL,
    entries      BIGINT           NOT NULL,
    data         BYTEA            NOT NULL,
    PRIMARY KEY (workspace_id, last_id, first_id)
);

CREATE TABLE request_log_keys (
    workspace_id TEXT COLLATE "C" NOT NULL,
    key_id       TEXT COLLATE "C" NOT NULL,
    last_id      TEXT COLLATE "C" NOT NULL,
    PRIMARY KEY (workspace_id, key_id, last_id)
);

-- +goose Down
DROP TABLE request_log_keys;
DROP TABLE request_log_blocks;
