-- +goose Up
-- Idempotency keys of management POST and PATCH requests (the Idempotency-Key header): one row per
-- credential scope and key. Its primary key is what makes concurrent duplicates, on any number of
-- nodes, run the request once: the first INSERT claims it, the others find its row. answer is the
-- first answer sealed with the master key (it may hold a new key's value); it is NULL while running.
CREATE TABLE idempotency_keys (
    scope       TEXT NOT NULL,
    idem_key    TEXT NOT NULL,
    fingerprint BLOB NOT NULL,
    claim       TEXT NOT NULL,
    state       TEXT NOT NULL CHECK (state IN ('running', 'done')),
    status      INTEGER NOT NULL DEFAULT 0,
    answer      BLOB,
    created_at  INTEGER NOT NULL,
    lease_until INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    PRIMARY KEY (scope, idem_key)
) STRICT, WITHOUT ROWID;

-- The cleanup job's read: the records past their 24 hours.
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

-- +goose Down
DROP INDEX idempotency_keys_expiry;
DROP TABLE idempotency_keys;
