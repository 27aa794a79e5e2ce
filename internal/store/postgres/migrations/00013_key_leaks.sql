-- +goose Up
-- Leaked keys (API.md, "Leaked keys"): each workspace's leakPolicy, and one durable record per
-- leaked value of a secret key, written in the transaction that applied the policy. Its primary key
-- is the value's digest: the same value reported again finds its record and changes nothing more.
-- A key's records go with DeleteAPIKey (the audit trail keeps the story).
ALTER TABLE workspaces ADD COLUMN leak_policy TEXT NOT NULL DEFAULT 'revoke'
    CHECK (leak_policy IN ('revoke', 'disable', 'notify'));

CREATE TABLE key_leaks (
    hash         BYTEA            NOT NULL PRIMARY KEY,
    key_id       TEXT COLLATE "C" NOT NULL,
    workspace_id TEXT COLLATE "C" NOT NULL,
    source       TEXT             NOT NULL,
    url          TEXT             NOT NULL,
    action       TEXT             NOT NULL,
    reported_at  BIGINT           NOT NULL
);

-- A key's page shows its leaks, newest first.
CREATE INDEX key_leaks_key_id ON key_leaks (key_id, reported_at);

-- +goose Down
DROP INDEX key_leaks_key_id;
DROP TABLE key_leaks;
ALTER TABLE workspaces DROP COLUMN leak_policy;
