-- +goose Up
-- Usage-based keys in the request log: an entry says the key's identity then, the credits the
-- verification spent and the request's tags (a JSON array of strings, [] without; GET /v1/logs?tag=
-- matches one exactly, by jsonb containment). Older entries have none of them.
ALTER TABLE request_logs ADD COLUMN identity_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE request_logs ADD COLUMN credits_spent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE request_logs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';

-- The rollups count by the key's identity too (a key may move to another identity within an hour:
-- each identity is billed its own part of the hour) and sum the credits spent; the identity joins
-- the primary key, last, so that the reads that seek by hour and workspace (or key) are as before.
ALTER TABLE key_usage ADD COLUMN identity_id TEXT COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE key_usage ADD COLUMN credits_spent BIGINT NOT NULL DEFAULT 0;
ALTER TABLE key_usage DROP CONSTRAINT key_usage_pkey;
ALTER TABLE key_usage ADD PRIMARY KEY (hour, workspace_id, key_id, code, identity_id);

-- +goose Down
CREATE TABLE key_usage_old AS
    SELECT hour, workspace_id, key_id, code, CAST(SUM(requests) AS BIGINT) AS requests
    FROM key_usage GROUP BY hour, workspace_id, key_id, code;
DROP TABLE key_usage;
ALTER TABLE key_usage_old RENAME TO key_usage;
ALTER TABLE key_usage ALTER COLUMN requests SET NOT NULL;
ALTER TABLE key_usage ADD PRIMARY KEY (hour, workspace_id, key_id, code);
ALTER TABLE request_logs DROP COLUMN tags;
ALTER TABLE request_logs DROP COLUMN credits_spent;
ALTER TABLE request_logs DROP COLUMN identity_id;
