-- +goose Up
-- Usage-based keys: an entry says the key's identity then, the credits the verification spent and the
-- request's tags (a JSON array of strings, [] without; GET /v1/logs?tag= matches one exactly, by
-- json_each). Older entries have none of them.
ALTER TABLE request_logs ADD COLUMN identity_id TEXT NOT NULL DEFAULT '';
ALTER TABLE request_logs ADD COLUMN credits_spent INTEGER NOT NULL DEFAULT 0;
ALTER TABLE request_logs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

-- The rollups count by the key's identity too (a key may move to another identity within an hour:
-- each identity is billed its own part of the hour) and sum the credits spent. The identity joins the
-- primary key, last, so SQLite's table is made anew: its rows keep their counts, with no identity
-- and no credits.
CREATE TABLE key_usage_new (
    hour          INTEGER NOT NULL,
    workspace_id  TEXT    NOT NULL,
    key_id        TEXT    NOT NULL,
    code          TEXT    NOT NULL,
    identity_id   TEXT    NOT NULL DEFAULT '',
    requests      INTEGER NOT NULL,
    credits_spent INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (hour, workspace_id, key_id, code, identity_id)
) STRICT, WITHOUT ROWID;
INSERT INTO key_usage_new (hour, workspace_id, key_id, code, requests)
    SELECT hour, workspace_id, key_id, code, requests FROM key_usage;
DROP TABLE key_usage;
ALTER TABLE key_usage_new RENAME TO key_usage;

-- +goose Down
CREATE TABLE key_usage_old (
    hour         INTEGER NOT NULL,
    workspace_id TEXT    NOT NULL,
    key_id       TEXT    NOT NULL,
    code         TEXT    NOT NULL,
    requests     INTEGER NOT NULL,
    PRIMARY KEY (hour, workspace_id, key_id, code)
) STRICT, WITHOUT ROWID;
INSERT INTO key_usage_old (hour, workspace_id, key_id, code, requests)
    SELECT hour, workspace_id, key_id, code, SUM(requests) FROM key_usage GROUP BY hour, workspace_id, key_id, code;
DROP TABLE key_usage;
ALTER TABLE key_usage_old RENAME TO key_usage;
ALTER TABLE request_logs DROP COLUMN tags;
ALTER TABLE request_logs DROP COLUMN credits_spent;
ALTER TABLE request_logs DROP COLUMN identity_id;
