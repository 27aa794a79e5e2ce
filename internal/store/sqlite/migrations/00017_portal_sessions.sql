-- +goose Up
-- Portal sessions (API.md, "Portal sessions"): one row per link a platform asked for, and the browser
-- session it started once opened. Only SHA-256 digests of the link's token and of the session's
-- token are kept. A link is used once: the store sets session_hash and opened_at in one UPDATE that
-- matches only a row not yet opened and not past link_expires_at. created_by is the actor (JSON) of
-- the key that asked. Rows go by the hourly prune once link and session both ended a day ago.
CREATE TABLE portal_sessions (
    id              TEXT    NOT NULL PRIMARY KEY,
    workspace_id    TEXT    NOT NULL REFERENCES workspaces (id),
    role            TEXT    NOT NULL CHECK (role IN ('admin', 'developer', 'viewer')),
    user_id         TEXT    NOT NULL,
    user_email      TEXT    NOT NULL,
    user_name       TEXT    NOT NULL,
    return_url      TEXT    NOT NULL,
    link_hash       BLOB    NOT NULL UNIQUE,
    session_hash    BLOB    UNIQUE,
    created_at      INTEGER NOT NULL,
    link_expires_at INTEGER NOT NULL,
    opened_at       INTEGER,
    expires_at      INTEGER,
    ended_at        INTEGER,
    ip              TEXT    NOT NULL,
    user_agent      TEXT    NOT NULL,
    created_by      TEXT    NOT NULL
) STRICT;

CREATE INDEX portal_sessions_workspace_id ON portal_sessions (workspace_id);
CREATE INDEX portal_sessions_link_expires_at ON portal_sessions (link_expires_at);

-- The portal's look: {"name", "accentColor", "logoUrl"}, '{}' when the workspace has none.
ALTER TABLE workspaces ADD COLUMN branding TEXT NOT NULL DEFAULT '{}';

-- +goose Down
ALTER TABLE workspaces DROP COLUMN branding;
DROP INDEX portal_sessions_link_expires_at;
DROP INDEX portal_sessions_workspace_id;
DROP TABLE portal_sessions;
