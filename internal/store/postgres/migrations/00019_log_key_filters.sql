-- +goose Up
-- Each block's key filter, as in SQLite's log file (its migration 4): a Bloom filter of its entries'
-- keys, so that one key's log decodes only the blocks of its minutes that may hold it (a row of
-- request_log_keys now names a minute, not a block). Blocks written before have none and are decoded.
CREATE TABLE request_log_filters (
    workspace_id TEXT COLLATE "C" NOT NULL,
    last_id      TEXT COLLATE "C" NOT NULL,
    first_id     TEXT COLLATE "C" NOT NULL,
    key_filter   BYTEA            NOT NULL,
    PRIMARY KEY (workspace_id, last_id, first_id)
);

-- +goose Down
DROP TABLE request_log_filters;
