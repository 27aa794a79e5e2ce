-- +goose Up
-- Expiry notices sent (api_key.expiring, api_key.expired): one row per key, kind and expiry, written in
-- the transaction of the notice's event. Its primary key is what makes a notice go out once per key
-- however many nodes look at the same expiring keys; a key given a new expiry gets new notices.
CREATE TABLE key_notices (
    key_id     TEXT COLLATE "C" NOT NULL,
    kind       TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (key_id, kind, expires_at)
);

-- The keys whose expiry is near or just past.
CREATE INDEX api_keys_expiry ON api_keys (expires_at) WHERE revoked_at IS NULL AND expires_at IS NOT NULL;

-- +goose Down
DROP INDEX api_keys_expiry;
DROP TABLE key_notices;
