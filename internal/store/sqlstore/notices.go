package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
)

const (
	sqlKeysToNotify = `SELECT ` + apiKeyColumns + keysFrom + `
		WHERE k.revoked_at IS NULL AND k.expires_at IS NOT NULL AND k.expires_at > ? AND k.expires_at <= ?
		AND NOT EXISTS (SELECT 1 FROM key_notices n WHERE n.key_id = k.id AND n.kind = ? AND n.expires_at = k.expires_at)
		ORDER BY k.expires_at, k.id LIMIT ?`
	sqlInsertKeyNotice  = `INSERT INTO key_notices (key_id, kind, expires_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`
	sqlDeleteKeyNotices = `DELETE FROM key_notices WHERE key_id = ?`
)

func (q *queries) KeysToNotify(ctx context.Context, kind string, after, until time.Time, limit int) ([]keyplane.APIKey, error) {
	const op = "keys to notify"
	rows, err := q.query(ctx, sqlKeysToNotify, micros(after), micros(until), kind, limit)
	if err != nil {
		return nil, q.fail(op, err)
	}
	out, err := collect(rows, scanAPIKey)
	if err == nil {
		err = q.withLastUsedAll(ctx, out)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

func (t *tx) InsertKeyNotice(ctx context.Context, keyID, kind string, expiresAt time.Time) error {
	return t.insert(ctx, "insert key notice", sqlInsertKeyNotice, keyID, kind, micros(expiresAt))
}
