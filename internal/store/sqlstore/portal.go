package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
)

const (
	portalColumns = `id, workspace_id, role, user_id, user_email, user_name, return_url, created_at,
		link_expires_at, opened_at, expires_at, ended_at, ip, user_agent, created_by`

	sqlGetPortalLink       = `SELECT ` + portalColumns + ` FROM portal_sessions WHERE link_hash = ?`
	sqlGetPortalSession    = `SELECT ` + portalColumns + ` FROM portal_sessions WHERE session_hash = ?`
	sqlInsertPortalSession = `INSERT INTO portal_sessions (id, workspace_id, role, user_id, user_email, user_name,
		return_url, link_hash, created_at, link_expires_at, ip, user_agent, created_by)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	// The one-time use: the row matches only while it is unopened and its link lives, so that of two
	// requests with the same link one updates the row and the other matches nothing.
	sqlOpenPortalLink = `UPDATE portal_sessions SET session_hash = ?, opened_at = ?, expires_at = ?, ip = ?, user_agent = ?
		WHERE link_hash = ? AND opened_at IS NULL AND link_expires_at > ?`
	sqlEndPortalSession = `UPDATE portal_sessions SET ended_at = ?
		WHERE workspace_id = ? AND id = ? AND opened_at IS NOT NULL AND ended_at IS NULL`
	sqlDeletePortalSessions = `DELETE FROM portal_sessions WHERE link_expires_at < ?
		AND (opened_at IS NULL OR expires_at < ? OR ended_at < ?)`
)

func scanPortalSession(s scanner) (*keyplane.PortalSession, error) {
	var ps keyplane.PortalSession
	var role, createdBy string
	var created, linkExpires int64
	var opened, expires, ended sql.NullInt64
	if err := s.Scan(&ps.ID, &ps.WorkspaceID, &role, &ps.User.ID, &ps.User.Email, &ps.User.Name, &ps.ReturnURL,
		&created, &linkExpires, &opened, &expires, &ended, &ps.IP, &ps.UserAgent, &createdBy); err != nil {
		return nil, err
	}
	ps.Role = keyplane.Role(role)
	ps.CreatedAt, ps.LinkExpiresAt = fromMicros(created), fromMicros(linkExpires)
	for _, f := range []struct {
		v  sql.NullInt64
		to *time.Time
	}{{opened, &ps.OpenedAt}, {expires, &ps.ExpiresAt}, {ended, &ps.EndedAt}} {
		if f.v.Valid {
			*f.to = fromMicros(f.v.Int64)
		}
	}
	var err error
	if ps.CreatedBy, err = decodeActor(createdBy); err != nil {
		return nil, fmt.Errorf("portal session %s: created_by: %w", ps.ID, err)
	}
	return &ps, nil
}

func (q *queries) GetPortalLink(ctx context.Context, linkHash []byte) (*keyplane.PortalSession, error) {
	return get(ctx, q, "get portal link", sqlGetPortalLink, scanPortalSession, linkHash)
}

func (q *queries) GetPortalSession(ctx context.Context, sessionHash []byte) (*keyplane.PortalSession, error) {
	return get(ctx, q, "get portal session", sqlGetPortalSession, scanPortalSession, sessionHash)
}

func (t *tx) InsertPortalSession(ctx context.Context, ps *keyplane.PortalSession, linkHash []byte) error {
	by, err := json.Marshal(ps.CreatedBy)
	if err != nil {
		return fmt.Errorf("insert portal session: %w", err)
	}
	return t.insert(ctx, "insert portal session", sqlInsertPortalSession, ps.ID, ps.WorkspaceID, string(ps.Role),
		ps.User.ID, ps.User.Email, ps.User.Name, ps.ReturnURL, linkHash, micros(ps.CreatedAt), micros(ps.LinkExpiresAt),
		ps.IP, ps.UserAgent, string(by))
}

func (t *tx) OpenPortalLink(ctx context.Context, linkHash, sessionHash []byte, at, expires time.Time, ip, userAgent string) (*keyplane.PortalSession, error) {
	const op = "open portal link"
	if err := t.update(ctx, op, sqlOpenPortalLink, sessionHash, micros(at), micros(expires), ip, userAgent, linkHash, micros(at)); err != nil {
		return nil, err
	}
	return get(ctx, &t.queries, op, sqlGetPortalLink, scanPortalSession, linkHash)
}

func (t *tx) EndPortalSession(ctx context.Context, workspaceID, id string, at time.Time) error {
	return t.update(ctx, "end portal session", sqlEndPortalSession, micros(at), workspaceID, id)
}

func (t *tx) DeletePortalSessions(ctx context.Context, before time.Time) (int64, error) {
	b := micros(before)
	return t.deleteCounted(ctx, "delete portal sessions", sqlDeletePortalSessions, b, b, b)
}
