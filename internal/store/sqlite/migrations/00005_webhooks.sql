-- +goose Up
-- Webhook endpoints. Signing secrets are sealed with the master key (they must be revealable);
-- event_types is a JSON array of catalog names, or ["*"].
CREATE TABLE webhook_endpoints (
    id                  TEXT    NOT NULL PRIMARY KEY,
    workspace_id        TEXT    NOT NULL REFERENCES workspaces (id),
    url                 TEXT    NOT NULL,
    description         TEXT    NOT NULL,
    event_types         TEXT    NOT NULL,
    enabled             INTEGER NOT NULL,
    disabled_reason     TEXT    NOT NULL,
    secret              BLOB    NOT NULL,
    prev_secret         BLOB,
    prev_secret_until   INTEGER,
    failing_since       INTEGER,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL
) STRICT;
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id, id);

-- Delivery attempts: the durable job queue and the deliveries log in one. A pending row is an attempt
-- due at next_attempt_at; a worker leases it (claim, claimed_until) while it makes the attempt, so
-- that a node that dies mid-attempt leaves it to another once the lease ends.
CREATE TABLE webhook_deliveries (
    id              TEXT    NOT NULL PRIMARY KEY,
    workspace_id    TEXT    NOT NULL,
    endpoint_id     TEXT    NOT NULL,
    event_id        TEXT    NOT NULL,
    event_type      TEXT    NOT NULL,
    attempt         INTEGER NOT NULL,
    status          TEXT    NOT NULL,
    status_code     INTEGER NOT NULL,
    response_body   TEXT    NOT NULL,
    error           TEXT    NOT NULL,
    duration_ms     INTEGER,
    created_at      INTEGER NOT NULL,
    next_attempt_at INTEGER,
    manual          INTEGER NOT NULL,
    claim           TEXT,
    claimed_until   INTEGER
) STRICT;
-- An endpoint's log, newest first.
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
-- The attempts due.
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
