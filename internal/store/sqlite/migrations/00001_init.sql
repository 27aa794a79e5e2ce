-- +goose Up
-- Times are unix microseconds (INTEGER); lists and JSON objects are TEXT; booleans are 0/1. Tables are
-- STRICT so that a value of the wrong type is refused rather than silently stored.

CREATE TABLE workspaces (
    id                   TEXT    NOT NULL PRIMARY KEY,
    name                 TEXT    NOT NULL,
    slug                 TEXT    NOT NULL UNIQUE,
    max_keys             INTEGER NOT NULL,
    test_key_ttl_seconds INTEGER NOT NULL,
    live_mode_enabled    INTEGER NOT NULL CHECK (live_mode_enabled IN (0, 1)),
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL
) STRICT;

CREATE TABLE api_keys (
    id              TEXT    NOT NULL PRIMARY KEY,
    workspace_id    TEXT    NOT NULL REFERENCES workspaces (id),
    name            TEXT    NOT NULL,
    description     TEXT    NOT NULL,
    key_type        TEXT    NOT NULL,
    environment     TEXT    NOT NULL,
    prefix          TEXT    NOT NULL,
    value_start     TEXT    NOT NULL,
    value_end       TEXT    NOT NULL,
    enabled         INTEGER NOT NULL CHECK (enabled IN (0, 1)),
    permissions     TEXT    NOT NULL,
    ip_allowlist    TEXT    NOT NULL,
    allowed_origins TEXT    NOT NULL,
    meta            TEXT    NOT NULL,
    rate_limit      INTEGER,
    rate_window_ms  INTEGER,
    recoverable     INTEGER NOT NULL CHECK (recoverable IN (0, 1)),
    expires_at      INTEGER,
    last_used_at    INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    disabled_at     INTEGER,
    revoked_at      INTEGER,
    created_by      TEXT    NOT NULL,
    CHECK ((rate_limit IS NULL) = (rate_window_ms IS NULL))
) STRICT;

-- Lists of a workspace's keys, newest first, and the cursor that pages through them.
CREATE INDEX api_keys_workspace_id ON api_keys (workspace_id, id);
-- CountKeys: the keys that count against maxKeys.
CREATE INDEX api_keys_unrevoked ON api_keys (workspace_id) WHERE revoked_at IS NULL;

-- The verification read is a primary key lookup by digest.
CREATE TABLE secrets (
    hash         BLOB    NOT NULL PRIMARY KEY,
    key_id       TEXT    NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    workspace_id TEXT    NOT NULL,
    expires_at   INTEGER,
    ciphertext   BLOB,
    created_at   INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE INDEX secrets_key_id ON secrets (key_id, created_at);

CREATE TABLE root_keys (
    id         TEXT    NOT NULL PRIMARY KEY,
    name       TEXT    NOT NULL,
    hash       BLOB    NOT NULL UNIQUE,
    scopes     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
) STRICT;

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    email         TEXT    NOT NULL UNIQUE, -- lower-cased by the store
    password_hash TEXT    NOT NULL,
    operator      INTEGER NOT NULL CHECK (operator IN (0, 1)),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE members (
    workspace_id TEXT    NOT NULL REFERENCES workspaces (id),
    user_id      TEXT    NOT NULL REFERENCES users (id),
    role         TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
) STRICT;

CREATE INDEX members_user_id ON members (user_id);

-- One hash chain per workspace; chain '' is the operator's. body holds the exact bytes that were
-- hashed; the other columns are copies kept for filtering.
CREATE TABLE audit_entries (
    chain     TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    id        TEXT    NOT NULL UNIQUE,
    ts        INTEGER NOT NULL,
    action    TEXT    NOT NULL,
    actor_id  TEXT    NOT NULL,
    target_id TEXT    NOT NULL,
    body      TEXT    NOT NULL,
    hash      TEXT    NOT NULL,
    PRIMARY KEY (chain, seq)
) STRICT;

CREATE INDEX audit_entries_action ON audit_entries (chain, action, seq);
CREATE INDEX audit_entries_actor_id ON audit_entries (chain, actor_id, seq);
CREATE INDEX audit_entries_target_id ON audit_entries (chain, target_id, seq);

-- The outbox. dispatched_at is set once the event has been handed to delivery.
CREATE TABLE events (
    id            TEXT    NOT NULL PRIMARY KEY,
    workspace_id  TEXT    NOT NULL,
    type          TEXT    NOT NULL,
    data          TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    dispatched_at INTEGER
) STRICT;

-- +goose Down
DROP TABLE events;
DROP TABLE audit_entries;
DROP TABLE members;
DROP TABLE users;
DROP TABLE root_keys;
DROP TABLE secrets;
DROP TABLE api_keys;
DROP TABLE workspaces;
