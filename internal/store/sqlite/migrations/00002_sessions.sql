-- +goose Up
-- Dashboard sessions. The token is in the person's cookie only; the store keeps its SHA-256 digest.
CREATE TABLE sessions (
    hash       BLOB    NOT NULL PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at INTEGER  NOT NULL,
    expires_at INTEGER  NOT NULL,
    reauth_at  INTEGER  NOT NULL,
    ip         TEXT    NOT NULL,
    user_agent TEXT    NOT NULL
) STRICT;

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
