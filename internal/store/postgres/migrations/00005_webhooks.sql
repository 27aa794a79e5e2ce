-- +goose Up
-- Webhook endpoints. Signing secrets are sealed with the master key (they must be revealable);
-- event_types is a JSON array of catalog names, or ["*"].
CREATE TABLE webhook_endpoints (
    id                  TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workspace_id        TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    url                 TEXT             NOT NULL,
    description         TEXT             NOT NULL,
    event_types         TEXT             NOT NULL,
    enabled             BOOLEAN          NOT NULL,
    disabled_reason     TEXT             NOT NULL,
    secret              BYTEA            NOT NULL,
    prev_secret         BYTEA,
    prev_secret_until   BIGINT,
    failing_since       BIGINT,
    created_at          BIGINT           NOT NULL,
    updated_at          BIGINT           NOT NULL
);
CREATE INDEX webhook_endpoints_workspace ON webhook_endpoints (workspace_id, id);

-- Delivery attempts: the durable job queue and the deliveries log in one. A pending row is an attempt
-- due at next_attempt_at; a worker leases it (claim, claimed_until) while it makes the attempt, so
-- that a node that dies mid-attempt leaves it to another once the lease ends. Workers on several
-- nodes take due rows with FOR UPDATE SKIP LOCKED.
CREATE TABLE webhook_deliveries (
    id              TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workspace_id    TEXT COLLATE "C" NOT NULL,
    endpoint_id     TEXT COLLATE "C" NOT NULL,
    event_id        TEXT COLLATE "C" NOT NULL,
    event_type      TEXT             NOT NULL,
    attempt         BIGINT           NOT NULL,
    status          TEXT             NOT NULL,
    status_code     BIGINT           NOT NULL,
    response_body   TEXT             NOT NULL,
    error           TEXT             NOT NULL,
    duration_ms     BIGINT,
    created_at      BIGINT           NOT NULL,
    next_attempt_at BIGINT,
    manual          BOOLEAN          NOT NULL,
    claim           TEXT,
    claimed_until   BIGINT
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';

-- +goose Down
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
