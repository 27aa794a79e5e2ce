-- +goose Up
-- Keys migrated in (API.md, "Leaked keys, imports…"): a value imported from another system need not
-- have keyplane's format, so verification cannot refuse it by its shape. Such values are marked, and
-- each node keeps a membership filter of the marked digests, loaded through this partial index, so
-- that a made-up value without the format still costs no read.
ALTER TABLE secrets ADD COLUMN imported BOOLEAN NOT NULL DEFAULT FALSE;
CREATE INDEX secrets_imported ON secrets (hash) WHERE imported = TRUE;

-- +goose Down
DROP INDEX secrets_imported;
ALTER TABLE secrets DROP COLUMN imported;
