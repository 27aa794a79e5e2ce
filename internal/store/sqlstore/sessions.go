package sqlstore

import (
	"context"
	"time"

	"github.com/keyplane/keyplane"
)

const (
	sessionColumns = `hash, user_id, created_at, expires_at, reauth_at, ip, user_agent, reauth_workspace_id`

	sqlGetSession    = `SELECT ` + sessionColumns + ` FROM sessions WHERE hash = ?`
	sqlInsertSession = `INSERT INTO sessions (` + sessionColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	sqlUpdateSession         = `UPDATE sessions SET expires_at = ?, reauth_at = ?, reauth_workspace_id = ? WHERE hash = ?`
	sqlDeleteSession         = `DELETE FROM sessions WHERE hash = ?`
	sqlDeleteExpiredSessions = `DELETE FROM sessions WHERE expires_at < ?`
	sqlDeleteUserSessions    = `DELETE FROM sessions WHERE user_id = ?`
)

func (q *queries) GetSession(ctx context.Context, hash []byte) (*keyplane.Session, error) {
	var s keyplane.Session
	var created, expires, reauth int64
	err := q.queryRow(ctx, sqlGetSession, hash).Scan(&s.Hash, &s.UserID, &created, &expires, &reauth, &s.IP, &s.UserAgent, &s.ReauthWorkspaceID)
	if err != nil {
		return nil, q.fail("get session", err)
	}
	s.CreatedAt, s.ExpiresAt, s.ReauthAt = fromMicros(created), fromMicros(expires), fromMicros(reauth)
	return &s, nil
}

func (t *tx) CreateSession(ctx context.Context, s *keyplane.Session) error {
	return t.insert(ctx, "create session", sqlInsertSession, s.Hash, s.UserID, micros(s.CreatedAt),
		micros(s.ExpiresAt), micros(s.ReauthAt), s.IP, s.UserAgent, s.ReauthWorkspaceID)
}

func (t *tx) UpdateSession(ctx context.Context, s *keyplane.Session) error {
	return t.update(ctx, "update session", sqlUpdateSession, micros(s.ExpiresAt), micros(s.ReauthAt), s.ReauthWorkspaceID, s.Hash)
}

func (t *tx) DeleteSession(ctx context.Context, hash []byte) error {
	if _, err := t.exec(ctx, sqlDeleteSession, hash); err != nil {
		return t.fail("delete session", err)
	}
	return nil
}

func (t *tx) DeleteExpiredSessions(ctx context.Context, now time.Time) (int64, error) {
	return t.deleteCounted(ctx, "delete expired sessions", sqlDeleteExpiredSessions, micros(now))
}

func (t *tx) DeleteUserSessions(ctx context.Context, userID string) (int64, error) {
	return t.deleteCounted(ctx, "delete a user's sessions", sqlDeleteUserSessions, userID)
}
