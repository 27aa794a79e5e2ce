-- +goose Up
-- The workspace a session's password was entered again in: reveals open there only, for the
-- re-authentication window. Sessions from before have none, so their next reveal asks again.
ALTER TABLE sessions ADD COLUMN reauth_workspace_id TEXT NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE sessions DROP COLUMN reauth_workspace_id;
