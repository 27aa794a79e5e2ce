-- +goose Up
-- Usage-based keys: identities, named rate limits and credit balances (API.md, "Usage-based keys").
--
-- A balance is a set of credits_* columns, on a key and on an identity alike: credits_remaining NULL
-- means unlimited (every other credits column is then NULL too, but the epoch). credits_epoch moves
-- on at every set and refill; credits_taken is what the last TakeCredits took (RETURNING gives the
-- row after the update only, so the take writes its amount there to read it back in the same
-- statement). next_refill_at is indexed: the refill job finds the due balances by it.
CREATE TABLE identities (
    id                TEXT COLLATE "C" NOT NULL PRIMARY KEY,
    workspace_id      TEXT COLLATE "C" NOT NULL REFERENCES workspaces (id),
    external_id       TEXT             NOT NULL,
    meta              TEXT             NOT NULL,
    rate_limits       TEXT             NOT NULL,
    credits_remaining BIGINT,
    refill_interval   TEXT,
    refill_amount     BIGINT,
    refill_day        INTEGER,
    last_refill_at    BIGINT,
    next_refill_at    BIGINT,
    credits_epoch     BIGINT NOT NULL DEFAULT 0,
    credits_taken     BIGINT NOT NULL DEFAULT 0,
    exhausted_at      BIGINT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL,
    UNIQUE (workspace_id, external_id)
);

-- Lists of a workspace's identities, newest first, and their cursor.
CREATE INDEX identities_workspace_id ON identities (workspace_id, id);
CREATE INDEX identities_next_refill_at ON identities (next_refill_at) WHERE next_refill_at IS NOT NULL;

-- Older keys have no identity, no named limits and unlimited credits.
ALTER TABLE api_keys ADD COLUMN identity_id TEXT COLLATE "C" REFERENCES identities (id);
ALTER TABLE api_keys ADD COLUMN rate_limits TEXT NOT NULL DEFAULT '[]';
ALTER TABLE api_keys ADD COLUMN credits_remaining BIGINT;
ALTER TABLE api_keys ADD COLUMN refill_interval TEXT;
ALTER TABLE api_keys ADD COLUMN refill_amount BIGINT;
ALTER TABLE api_keys ADD COLUMN refill_day INTEGER;
ALTER TABLE api_keys ADD COLUMN last_refill_at BIGINT;
ALTER TABLE api_keys ADD COLUMN next_refill_at BIGINT;
ALTER TABLE api_keys ADD COLUMN credits_epoch BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN credits_taken BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN exhausted_at BIGINT;

-- The keys of an identity: GET /v1/api-keys?identityId, CountIdentityKeys, IdentityKeyHashes.
CREATE INDEX api_keys_identity_id ON api_keys (identity_id, id) WHERE identity_id IS NOT NULL;
CREATE INDEX api_keys_next_refill_at ON api_keys (next_refill_at) WHERE next_refill_at IS NOT NULL;

-- +goose Down
DROP INDEX api_keys_next_refill_at;
DROP INDEX api_keys_identity_id;
ALTER TABLE api_keys DROP COLUMN exhausted_at;
ALTER TABLE api_keys DROP COLUMN credits_taken;
ALTER TABLE api_keys DROP COLUMN credits_epoch;
ALTER TABLE api_keys DROP COLUMN next_refill_at;
ALTER TABLE api_keys DROP COLUMN last_refill_at;
ALTER TABLE api_keys DROP COLUMN refill_day;
ALTER TABLE api_keys DROP COLUMN refill_amount;
ALTER TABLE api_keys DROP COLUMN refill_interval;
ALTER TABLE api_keys DROP COLUMN credits_remaining;
ALTER TABLE api_keys DROP COLUMN rate_limits;
ALTER TABLE api_keys DROP COLUMN identity_id;
DROP TABLE identities;
