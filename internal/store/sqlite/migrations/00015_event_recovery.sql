-- +goose Up
-- Webhook recovery (API.md, "Leaked keys, imports, idempotency, webhook recovery"): the events list of
-- a workspace, newest first, and its windows by id (an event's id begins with its millisecond).
CREATE INDEX events_workspace ON events (workspace_id, id);
-- The events whose payloads the retention job may still drop: those already dropped (empty data) are
-- never scanned again.
CREATE INDEX events_kept ON events (id) WHERE data <> '';
-- An event's attempts, per endpoint, in order: the last attempt of a recovery, the pending ones that
-- keep an event from being queued twice or its payload from being dropped.
CREATE INDEX webhook_deliveries_event ON webhook_deliveries (event_id, endpoint_id, id);

-- +goose Down
DROP INDEX webhook_deliveries_event;
DROP INDEX events_kept;
DROP INDEX events_workspace;
