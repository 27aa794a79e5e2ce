-- +goose Up
-- Each key's last use, as the usage writer moves it every few seconds: in the log's file, with its
-- writer and its relaxed commits, rather than in api_keys, where each move was a random page of the
-- keys' table written, and checkpointed, through the writer that key changes wait for (at 100,000
-- keys in use, every flush dirtied as many pages of a file of a million keys). A key's last use is
-- the later of this row and api_keys.last_used_at, which holds what versions before this one wrote.
CREATE TABLE key_last_used (
    key_id       TEXT    NOT NULL PRIMARY KEY,
    last_used_at INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- +goose Down
DROP TABLE key_last_used;
