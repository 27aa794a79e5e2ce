-- +goose Up
-- The request log in blocks: a batch of entries is written as one row per workspace and minute
-- (request_log_blocks.data, encoded by package logblock), not a row per entry. A row per entry, with
-- its parameters, its B-tree insert and its key index entry, cost most of a busy node's CPU.
--
-- A block holds the entries of one workspace, of one UTC minute, written together, ordered by id;
-- first_id and last_id are its oldest and newest. Blocks of one workspace may overlap in time (a late
-- entry, another node's batch): a reader merges them by id. The table keeps its rowid, so that the
-- blocks, which are large, are appended in the order they come; the primary key's index finds a
-- workspace's blocks newest first, and holds first_id so that a page's reader skips the blocks that
-- end after its cursor and begin after it too without reading their rows.
CREATE TABLE request_log_blocks (
    workspace_id TEXT    NOT NULL,
    last_id      TEXT    NOT NULL,
    first_id     TEXT    NOT NULL,
    entries      INTEGER NOT NULL,
    data         BLOB    NOT NULL,
    PRIMARY KEY (workspace_id, last_id, first_id)
) STRICT;

-- The blocks that hold entries of a key: one key's log, newest first, reads only those.
CREATE TABLE request_log_keys (
    workspace_id TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    last_id      TEXT NOT NULL,
    PRIMARY KEY (workspace_id, key_id, last_id)
) STRICT, WITHOUT ROWID;

-- The rows of request_logs, older entries, are moved into blocks by keyplane when it opens the file
-- (sqlite.Open), which then drops the table: encoding a block takes Go.

-- +goose Down
DROP TABLE request_log_keys;
DROP TABLE request_log_blocks;
