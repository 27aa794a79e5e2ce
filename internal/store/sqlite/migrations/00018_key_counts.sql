-- +goose Up
-- Each workspace's count of keys not revoked, which a new key is checked against (max_keys). Counting
-- them at each creation read every such key's entry of api_keys_unrevoked: 10,000 of them in a
-- workspace of 10,000 keys, under a flood of verifications (docs/performance.md). Triggers keep the
-- count, so that every path that adds, revokes or deletes a key (the API, imports, the CLI, the
-- jobs) moves it in the same transaction, and none can forget to. The count is made from the keys
-- here, once.
-- A later migration that rebuilds api_keys (SQLite's copy-and-rename) must create these triggers
-- again and count anew.
CREATE TABLE key_counts (
    workspace_id TEXT    NOT NULL PRIMARY KEY,
    unrevoked    INTEGER NOT NULL
) WITHOUT ROWID;

-- +goose StatementBegin
CREATE TRIGGER key_counts_insert AFTER INSERT ON api_keys WHEN NEW.revoked_at IS NULL
BEGIN
    INSERT INTO key_counts (workspace_id, unrevoked) VALUES (NEW.workspace_id, 1)
        ON CONFLICT (workspace_id) DO UPDATE SET unrevoked = unrevoked + 1;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER key_counts_revoke AFTER UPDATE OF revoked_at ON api_keys
    WHEN (OLD.revoked_at IS NULL) <> (NEW.revoked_at IS NULL)
BEGIN
    INSERT INTO key_counts (workspace_id, unrevoked)
        VALUES (NEW.workspace_id, CASE WHEN NEW.revoked_at IS NULL THEN 1 ELSE -1 END)
        ON CONFLICT (workspace_id) DO UPDATE SET unrevoked = unrevoked + excluded.unrevoked;
END;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE TRIGGER key_counts_delete AFTER DELETE ON api_keys WHEN OLD.revoked_at IS NULL
BEGIN
    UPDATE key_counts SET unrevoked = unrevoked - 1 WHERE workspace_id = OLD.workspace_id;
END;
-- +goose StatementEnd

INSERT INTO key_counts (workspace_id, unrevoked)
    SELECT workspace_id, COUNT(*) FROM api_keys WHERE revoked_at IS NULL GROUP BY workspace_id;

-- +goose Down
DROP TRIGGER key_counts_delete;
DROP TRIGGER key_counts_revoke;
DROP TRIGGER key_counts_insert;
DROP TABLE key_counts;
