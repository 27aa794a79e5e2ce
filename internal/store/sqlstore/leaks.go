package sqlstore

import (
	"context"

	"github.com/keyplane/keyplane"
)

const (
	keyLeakColumns    = `hash, key_id, workspace_id, source, url, action, reported_at`
	sqlGetKeyLeak     = `SELECT ` + keyLeakColumns + ` FROM key_leaks WHERE hash = ?`
	sqlListKeyLeaks   = `SELECT ` + keyLeakColumns + ` FROM key_leaks WHERE key_id = ? AND workspace_id = ? ORDER BY reported_at DESC, hash LIMIT ?`
	sqlInsertKeyLeak  = `INSERT INTO key_leaks (` + keyLeakColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`
	sqlDeleteKeyLeaks = `DELETE FROM key_leaks WHERE key_id = ?`
)

func scanKeyLeak(s scanner) (*keyplane.KeyLeak, error) {
	var l keyplane.KeyLeak
	var at int64
	if err := s.Scan(&l.Hash, &l.KeyID, &l.WorkspaceID, &l.Source, &l.URL, &l.Action, &at); err != nil {
		return nil, err
	}
	l.ReportedAt = fromMicros(at)
	return &l, nil
}

func (q *queries) GetKeyLeak(ctx context.Context, hash []byte) (*keyplane.KeyLeak, error) {
	return get(ctx, q, "get key leak", sqlGetKeyLeak, scanKeyLeak, hash)
}

func (q *queries) ListKeyLeaks(ctx context.Context, workspaceID, keyID string, limit int) ([]keyplane.KeyLeak, error) {
	const op = "list key leaks"
	rows, err := q.query(ctx, sqlListKeyLeaks, keyID, workspaceID, limit)
	if err != nil {
		return nil, q.fail(op, err)
	}
	out, err := collect(rows, values(scanKeyLeak))
	if err != nil {
		return nil, q.fail(op, err)
	}
	return out, nil
}

func (t *tx) InsertKeyLeak(ctx context.Context, l *keyplane.KeyLeak) error {
	return t.insert(ctx, "insert key leak", sqlInsertKeyLeak, l.Hash, l.KeyID, l.WorkspaceID, l.Source, l.URL,
		string(l.Action), micros(l.ReportedAt))
}
