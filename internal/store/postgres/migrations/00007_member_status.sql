-- +goose Up
-- A member is active (may open the workspace) or invited (has no access until they accept). Adding a
-- person makes an invitation: before, an owner could attach any account, another tenant's owner or the
-- operator admin, without its holder's consent. Everyone who was a member before stays active.
ALTER TABLE members ADD COLUMN status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'invited'));

-- +goose Down
ALTER TABLE members DROP COLUMN status;
