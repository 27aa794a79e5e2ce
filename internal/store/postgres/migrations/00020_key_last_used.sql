-- +goose Up
-- Each key's last use, as SQLite keeps it in its log file (its log migration 5): a narrow row moved
-- by one multi-row upsert per flush, rather than an UPDATE of each key's wide row of api_keys (a new
-- version of the whole row each time). A key's last use is the later of this row and
-- api_keys.last_used_at, which holds what versions before this one wrote, and what older nodes of a
-- rolling upgrade still write.
CREATE TABLE key_last_used (
    key_id       TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    last_used_at BIGINT           NOT NULL
);

-- +goose Down
DROP TABLE key_last_used;
