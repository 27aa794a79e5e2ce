-- +goose Up
-- A workspace's usage over all its keys (the dashboard's logs page): its rollups by hour.
CREATE INDEX key_usage_workspace ON key_usage (workspace_id, hour);

-- +goose Down
DROP INDEX key_usage_workspace;
