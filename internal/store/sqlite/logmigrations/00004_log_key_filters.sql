-- +goose Up
-- A block's key filter (package logblock, KeyFilter): a Bloom filter of its entries' keys, so that one
-- key's log decodes only the blocks of its minutes that may hold it. A row of request_log_keys now
-- names a minute, not a block. Blocks written before have none (NULL) and are decoded.
ALTER TABLE request_log_blocks ADD COLUMN key_filter BLOB;

-- +goose Down
ALTER TABLE request_log_blocks DROP COLUMN key_filter;
