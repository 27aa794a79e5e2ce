-- +goose Up
-- Each block's key filter (package logblock, KeyFilter): a Bloom filter of its entries' keys, so that
-- one key's log decodes only the blocks of its minutes that may hold it (a row of request_log_keys
-- now names a minute, not a block). In a table of its own: a column after the blocks' data would be
-- read through the data's overflow pages. With its rowid: a filter is up to a few KiB, too large for
-- a row of a table without one. Blocks written before have none and are decoded.
CREATE TABLE request_log_filters (
    workspace_id TEXT NOT NULL,
    last_id      TEXT NOT NULL,
    first_id     TEXT NOT NULL,
    key_filter   BLOB NOT NULL,
    PRIMARY KEY (workspace_id, last_id, first_id)
) STRICT;

-- +goose Down
DROP TABLE request_log_filters;
