-- +goose Up
-- Dashboard sessions. The token is in the person's cookie only; the store keeps its SHA-256 digest.
CREATE TABLE sessions (
    hash       BYTEA    NOT NULL PRIMARY KEY,
    user_id    TEXT COLLATE "C" NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT  NOT NULL,
    expires_at BIGINT  NOT NULL,
    reauth_at  BIGINT  NOT NULL,
    ip         TEXT    NOT NULL,
    user_agent TEXT    NOT NULL
);

CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- +goose Down
DROP TABLE sessions;
