-- +goose Up
-- A block's key filter, as in SQLite's log file (its migration 4): a Bloom filter of its entries'
-- keys, so that one key's log decodes only the blocks of its minutes that may hold it. Blocks written
-- before have none (NULL) and are decoded. Adding a column that may be NULL rewrites nothing.
ALTER TABLE request_log_blocks ADD COLUMN key_filter BYTEA;

-- +goose Down
ALTER TABLE request_log_blocks DROP COLUMN key_filter;
