-- +goose Up
-- The schema of the SQLite store, in PostgreSQL's types. Times are unix microseconds (BIGINT), as in
-- SQLite, so that both store and compare them the same way; lists and JSON objects are TEXT, kept
-- byte for byte. Identifiers use the "C" collation: they sort and compare by bytes, as in SQLite,
-- whatever the database's locale, and lists ordered by id page the same on both.

CREATE TABLE workspaces (
    id                   TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name                 TEXT             NOT NULL,
    slug                 TEXT             NOT NULL UNIQUE,
    max_keys             BIGINT           NOT NULL,
    test_key_ttl_seconds BIGINT           NOT NULL,
    live_mode_enabled    BOOLEAN          NOT NULL,
    created_at           BIGINT           NOT NULL,
    updated_at           BIGINT           NOT NULL
);

CREATE TABLE api_keys (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workspace_id    TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    name            TEXT             NOT NULL,
    description     TEXT             NOT NULL,
    key_type        TEXT             NOT NULL,
    environment     TEXT             NOT NULL,
    prefix          TEXT             NOT NULL,
    value_start     TEXT             NOT NULL,
    value_end       TEXT             NOT NULL,
    enabled         BOOLEAN          NOT NULL,
    permissions     TEXT             NOT NULL,
    ip_allowlist    TEXT             NOT NULL,
    allowed_origins TEXT             NOT NULL,
    meta            TEXT             NOT NULL,
    rate_limit      BIGINT,
    rate_window_ms  BIGINT,
    recoverable     BOOLEAN          NOT NULL,
    expires_at      BIGINT,
    last_used_at    BIGINT,
    created_at      BIGINT           NOT NULL,
    updated_at      BIGINT           NOT NULL,
    disabled_at     BIGINT,
    revoked_at      BIGINT,
    created_by      TEXT             NOT NULL,
    CHECK ((rate_limit IS NULL) = (rate_window_ms IS NULL))
);

-- Lists of a workspace's keys, newest first, and the cursor that pages through them.
CREATE INDEX api_keys_workspace_id ON api_keys (workspace_id, id);
-- CountKeys: the keys that count against maxKeys.
CREATE INDEX api_keys_unrevoked ON api_keys (workspace_id) WHERE revoked_at IS NULL;

-- The verification read is a primary key lookup by digest.
CREATE TABLE secrets (
    hash         BYTEA            NOT NULL PRIMARY KEY,
    key_id       TEXT COLLATE "C" NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    workspace_id TEXT COLLATE "C" NOT NULL,
    expires_at   BIGINT,
    ciphertext   BYTEA,
    created_at   BIGINT           NOT NULL
);

CREATE INDEX secrets_key_id ON secrets (key_id, created_at);

CREATE TABLE root_keys (
    id         TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    name       TEXT             NOT NULL,
    hash       BYTEA            NOT NULL UNIQUE,
    scopes     TEXT             NOT NULL,
    created_at BIGINT           NOT NULL,
    revoked_at BIGINT
);

CREATE TABLE users (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    email         TEXT             NOT NULL UNIQUE, -- lower-cased by the store
    password_hash TEXT             NOT NULL,
    operator      BOOLEAN          NOT NULL,
    created_at    BIGINT           NOT NULL,
    updated_at    BIGINT           NOT NULL
);

CREATE TABLE members (
    workspace_id TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    user_id      TEXT COLLATE "C" NOT NULL REFERENCES users (id),
    role         TEXT             NOT NULL,
    created_at   BIGINT           NOT NULL,
    PRIMARY KEY (workspace_id, user_id)
);

CREATE INDEX members_user_id ON members (user_id);

-- One hash chain per workspace; chain '' is the operator's. body holds the exact bytes that were
-- hashed; the other columns are copies kept for filtering.
CREATE TABLE audit_entries (
    chain     TEXT COLLATE "C" NOT NULL,
    seq       BIGINT           NOT NULL,
    id        TEXT COLLATE "C" NOT NULL UNIQUE,
    ts        BIGINT           NOT NULL,
    action    TEXT             NOT NULL,
    actor_id  TEXT COLLATE "C" NOT NULL,
    target_id TEXT COLLATE "C" NOT NULL,
    body      TEXT             NOT NULL,
    hash      TEXT             NOT NULL,
    PRIMARY KEY (chain, seq)
);

CREATE INDEX audit_entries_action ON audit_entries (chain, action, seq);
CREATE INDEX audit_entries_actor_id ON audit_entries (chain, actor_id, seq);
CREATE INDEX audit_entries_target_id ON audit_entries (chain, target_id, seq);

-- The outbox. dispatched_at is set once the event has been handed to delivery.
CREATE TABLE events (
    id            TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workspace_id  TEXT COLLATE "C" NOT NULL,
    type          TEXT             NOT NULL,
    data          TEXT             NOT NULL,
    created_at    BIGINT           NOT NULL,
    dispatched_at BIGINT
);

-- +goose Down
DROP TABLE events;
DROP TABLE audit_entries;
DROP TABLE members;
DROP TABLE users;
DROP TABLE root_keys;
DROP TABLE secrets;
DROP TABLE api_keys;
DROP TABLE workspaces;
