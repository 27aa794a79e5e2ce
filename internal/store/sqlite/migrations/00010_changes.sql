-- +goose Up
-- The change journal: the digests of every committed change to a key or a root key, written by
-- Publish in the change's own transaction, so that another process serving the same file (keyplane
-- serve beside the CLI) learns of it by reading what came after the last seq it saw. AUTOINCREMENT:
-- a seq is never reused, even after the rows before it were pruned, so a reader never misses a row.
-- at is the commit's unix time, for pruning.
CREATE TABLE changes (
    seq  INTEGER PRIMARY KEY AUTOINCREMENT,
    at   INTEGER NOT NULL,
    hash BLOB NOT NULL
);

-- +goose Down
DROP TABLE changes;
