package sqlstore

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/keyplane/keyplane"
)

const (
	workspaceColumns = `id, name, slug, max_keys, test_key_ttl_seconds, live_mode_enabled, created_at, updated_at, leak_policy, branding`

	sqlGetWorkspace       = `SELECT ` + workspaceColumns + ` FROM workspaces WHERE id = ?`
	sqlGetWorkspaceBySlug = `SELECT ` + workspaceColumns + ` FROM workspaces WHERE slug = ?`
	sqlListWorkspaces     = `SELECT ` + workspaceColumns + ` FROM workspaces ORDER BY id DESC LIMIT ?`
	sqlListWorkspacesFrom = `SELECT ` + workspaceColumns + ` FROM workspaces WHERE id < ? ORDER BY id DESC LIMIT ?`
	sqlInsertWorkspace    = `INSERT INTO workspaces (` + workspaceColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	sqlWorkspaceSlugTaken = `SELECT COUNT(*) FROM workspaces WHERE slug = ? AND id <> ?`
	sqlUpdateWorkspace    = `UPDATE workspaces SET name = ?, slug = ?, max_keys = ?, test_key_ttl_seconds = ?,
		live_mode_enabled = ?, updated_at = ?, leak_policy = ?, branding = ? WHERE id = ?`
)

func scanWorkspace(s scanner) (*keyplane.Workspace, error) {
	var w keyplane.Workspace
	var created, updated int64
	var branding string
	if err := s.Scan(&w.ID, &w.Name, &w.Slug, &w.MaxKeys, &w.TestKeyTTLSeconds, &w.LiveModeEnabled,
		&created, &updated, &w.LeakPolicy, &branding); err != nil {
		return nil, err
	}
	w.CreatedAt, w.UpdatedAt = fromMicros(created), fromMicros(updated)
	if err := decodeBranding(branding, &w.Branding); err != nil {
		return nil, fmt.Errorf("workspace %s: %w", w.ID, err)
	}
	return &w, nil
}

// encodeBranding and decodeBranding keep a workspace's branding as a JSON object ('{}': none).
func encodeBranding(b keyplane.Branding) string {
	out, _ := json.Marshal(b) // three strings: cannot fail
	return string(out)
}

func decodeBranding(s string, b *keyplane.Branding) error {
	if s == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), b); err != nil {
		return fmt.Errorf("branding: %w", err)
	}
	return nil
}

func (q *queries) GetWorkspace(ctx context.Context, id string) (*keyplane.Workspace, error) {
	return get(ctx, q, "get workspace", sqlGetWorkspace, scanWorkspace, id)
}

func (q *queries) GetWorkspaceBySlug(ctx context.Context, slug string) (*keyplane.Workspace, error) {
	return get(ctx, q, "get workspace by slug", sqlGetWorkspaceBySlug, scanWorkspace, slug)
}

func (q *queries) ListWorkspaces(ctx context.Context, limit int, cursor string) ([]keyplane.Workspace, string, error) {
	const op = "list workspaces"
	if err := checkLimit(op, limit); err != nil {
		return nil, "", err
	}
	query, args := sqlListWorkspaces, []any{}
	if cursor != "" {
		after, err := decodeCursor(cursorWorkspace, cursor)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", op, err)
		}
		query, args = sqlListWorkspacesFrom, []any{after}
	}
	return listPage(ctx, q, op, query, limit, values(scanWorkspace),
		func(w *keyplane.Workspace) string { return encodeCursor(cursorWorkspace, w.ID) }, args...)
}

func (t *tx) CreateWorkspace(ctx context.Context, w *keyplane.Workspace) error {
	return t.insert(ctx, "create workspace", sqlInsertWorkspace, w.ID, w.Name, w.Slug, w.MaxKeys,
		w.TestKeyTTLSeconds, w.LiveModeEnabled, micros(w.CreatedAt), micros(w.UpdatedAt), string(w.Policy()), encodeBranding(w.Branding))
}

func (t *tx) UpdateWorkspace(ctx context.Context, w *keyplane.Workspace) error {
	const op = "update workspace"
	if err := t.taken(ctx, op, sqlWorkspaceSlugTaken, w.Slug, w.ID); err != nil {
		return err
	}
	return t.update(ctx, op, sqlUpdateWorkspace, w.Name, w.Slug, w.MaxKeys, w.TestKeyTTLSeconds,
		w.LiveModeEnabled, micros(w.UpdatedAt), string(w.Policy()), encodeBranding(w.Branding), w.ID)
}
