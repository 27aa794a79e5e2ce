package sqlstore

import (
	"context"

	"github.com/keyplane/keyplane"
)

const (
	sqlListMembers = `SELECT m.workspace_id, m.user_id, u.email, m.role, m.status, m.created_at
		FROM members m JOIN users u ON u.id = m.user_id
		WHERE m.workspace_id = ?
		ORDER BY m.created_at, m.user_id`
	// The workspaces of a user in one status: active ones are the memberships, invited ones the
	// invitations.
	sqlListMemberships = `SELECT w.id, w.name, w.slug, w.max_keys, w.test_key_ttl_seconds, w.live_mode_enabled,
		w.created_at, w.updated_at, w.leak_policy, w.branding, m.role
		FROM members m JOIN workspaces w ON w.id = m.workspace_id
		WHERE m.user_id = ? AND m.status = ?
		ORDER BY w.name, w.id`
	sqlUpsertMember = `INSERT INTO members (workspace_id, user_id, role, status, created_at) VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (workspace_id, user_id) DO UPDATE SET role = excluded.role, status = excluded.status`
	sqlDeleteMember = `DELETE FROM members WHERE workspace_id = ? AND user_id = ?`
)

func (q *queries) ListMembers(ctx context.Context, workspaceID string) ([]keyplane.Member, error) {
	return list(ctx, q, "list members", sqlListMembers, func(s scanner) (keyplane.Member, error) {
		var m keyplane.Member
		var role, status string
		var created int64
		if err := s.Scan(&m.WorkspaceID, &m.UserID, &m.Email, &role, &status, &created); err != nil {
			return m, err
		}
		m.Role, m.Status, m.CreatedAt = keyplane.Role(role), keyplane.MemberStatus(status), fromMicros(created)
		return m, nil
	}, workspaceID)
}

func (q *queries) ListMemberships(ctx context.Context, userID string) ([]keyplane.Membership, error) {
	return q.listMemberships(ctx, "list memberships", userID, keyplane.MemberActive)
}

func (q *queries) ListInvitations(ctx context.Context, userID string) ([]keyplane.Membership, error) {
	return q.listMemberships(ctx, "list invitations", userID, keyplane.MemberInvited)
}

func (q *queries) listMemberships(ctx context.Context, op, userID string, status keyplane.MemberStatus) ([]keyplane.Membership, error) {
	return list(ctx, q, op, sqlListMemberships, func(s scanner) (keyplane.Membership, error) {
		var m keyplane.Membership
		var role string
		var created, updated int64
		var branding string
		w := &m.Workspace
		if err := s.Scan(&w.ID, &w.Name, &w.Slug, &w.MaxKeys, &w.TestKeyTTLSeconds, &w.LiveModeEnabled, &created, &updated, &w.LeakPolicy, &branding, &role); err != nil {
			return m, err
		}
		if err := decodeBranding(branding, &w.Branding); err != nil {
			return m, err
		}
		w.CreatedAt, w.UpdatedAt, m.Role = fromMicros(created), fromMicros(updated), keyplane.Role(role)
		return m, nil
	}, userID, string(status))
}

func (t *tx) UpsertMember(ctx context.Context, m *keyplane.Member) error {
	status := m.Status
	if status == "" {
		status = keyplane.MemberActive
	}
	if _, err := t.exec(ctx, sqlUpsertMember, m.WorkspaceID, m.UserID, string(m.Role), string(status),
		micros(m.CreatedAt)); err != nil {
		return t.fail("upsert member", err)
	}
	return nil
}

func (t *tx) DeleteMember(ctx context.Context, workspaceID, userID string) error {
	return t.update(ctx, "delete member", sqlDeleteMember, workspaceID, userID)
}
