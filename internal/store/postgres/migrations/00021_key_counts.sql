-- +goose Up
-- Each workspace's count of keys not revoked, which a new key is checked against (max_keys). Counting
-- them at each creation read every such key's entry of api_keys_unrevoked: 10,000 of them in a
-- workspace of 10,000 keys (docs/performance.md). Triggers keep the count, so that every path that
-- adds, revokes or deletes a key, older nodes of a rolling upgrade included, moves it in the same
-- transaction. Inserts are counted per statement (an import of 100,000 keys moves the row once per
-- batch, not 100,000 times within one transaction); revocations and deletions, one key at a time,
-- per row, and only when revoked_at changes between set and unset.
-- A data-only restore (pg_restore --data-only) must run with --disable-triggers, or the restored
-- keys are counted on top of the restored counts.
-- No key may be added, revoked or deleted between the count below and the triggers: other nodes
-- wait here until this migration commits. First, so that the count's snapshot, whatever the
-- database's default isolation, is taken after every earlier change committed.
LOCK TABLE api_keys IN SHARE ROW EXCLUSIVE MODE;

CREATE TABLE key_counts (
    workspace_id TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    unrevoked    BIGINT           NOT NULL
);

-- +goose StatementBegin
CREATE FUNCTION key_counts_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO key_counts (workspace_id, unrevoked)
        SELECT workspace_id, COUNT(*) FROM inserted_keys WHERE revoked_at IS NULL
        GROUP BY workspace_id ORDER BY workspace_id -- rows locked in one order: no deadlock between imports
        ON CONFLICT (workspace_id) DO UPDATE SET unrevoked = key_counts.unrevoked + EXCLUDED.unrevoked;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION key_counts_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        UPDATE key_counts SET unrevoked = unrevoked - 1 WHERE workspace_id = OLD.workspace_id;
    ELSE
        INSERT INTO key_counts (workspace_id, unrevoked)
            VALUES (NEW.workspace_id, CASE WHEN NEW.revoked_at IS NULL THEN 1 ELSE -1 END)
            ON CONFLICT (workspace_id) DO UPDATE SET unrevoked = key_counts.unrevoked + EXCLUDED.unrevoked;
    END IF;
    RETURN NULL;
END
$$;
-- +goose StatementEnd

CREATE TRIGGER key_counts_insert AFTER INSERT ON api_keys
    REFERENCING NEW TABLE AS inserted_keys FOR EACH STATEMENT EXECUTE FUNCTION key_counts_insert();
CREATE TRIGGER key_counts_revoke AFTER UPDATE OF revoked_at ON api_keys FOR EACH ROW
    WHEN ((OLD.revoked_at IS NULL) <> (NEW.revoked_at IS NULL)) EXECUTE FUNCTION key_counts_change();
CREATE TRIGGER key_counts_delete AFTER DELETE ON api_keys FOR EACH ROW
    WHEN (OLD.revoked_at IS NULL) EXECUTE FUNCTION key_counts_change();

INSERT INTO key_counts (workspace_id, unrevoked)
    SELECT workspace_id, COUNT(*) FROM api_keys WHERE revoked_at IS NULL GROUP BY workspace_id;

-- +goose Down
DROP TRIGGER key_counts_delete ON api_keys;
DROP TRIGGER key_counts_revoke ON api_keys;
DROP TRIGGER key_counts_insert ON api_keys;
DROP FUNCTION key_counts_change();
DROP FUNCTION key_counts_insert();
DROP TABLE key_counts;
