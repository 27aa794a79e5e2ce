-- +goose Up
-- The rollups are keyed by hour first, so that AddUsage's rows, all of the current hours, are
-- together at the end of the primary key instead of one at the end of each key's run, and pruning
-- deletes its first rows. The workspace and the key follow: a read of a workspace's usage, or of one
-- key's, seeks to its part of each hour (sqlstore's sqlUsageHours), so the two indexes that served
-- pruning and the workspace's reads go, and every count written updates one b-tree.
ALTER TABLE key_usage DROP CONSTRAINT key_usage_pkey;
ALTER TABLE key_usage ADD PRIMARY KEY (hour, workspace_id, key_id, code);
DROP INDEX key_usage_hour;
DROP INDEX key_usage_workspace;

-- +goose Down
CREATE INDEX key_usage_workspace ON key_usage (workspace_id, hour);
CREATE INDEX key_usage_hour ON key_usage (hour);
ALTER TABLE key_usage DROP CONSTRAINT key_usage_pkey;
ALTER TABLE key_usage ADD PRIMARY KEY (key_id, hour, code);
