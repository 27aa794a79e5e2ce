package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
)

const (
	rootKeyColumns = `id, name, hash, scopes, created_at, revoked_at`

	sqlGetRootKeyByHash = `SELECT ` + rootKeyColumns + ` FROM root_keys WHERE hash = ?`
	sqlGetRootKey       = `SELECT ` + rootKeyColumns + ` FROM root_keys WHERE id = ?`
	sqlListRootKeys     = `SELECT ` + rootKeyColumns + ` FROM root_keys ORDER BY id`
	sqlRevokeRootKey    = `UPDATE root_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL`
	sqlInsertRootKey    = `INSERT INTO root_keys (` + rootKeyColumns + `) VALUES (?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
)

func scanRootKey(s scanner) (*keyplane.RootKey, error) {
	var k keyplane.RootKey
	var scopes string
	var created int64
	var revoked sql.NullInt64
	if err := s.Scan(&k.ID, &k.Name, &k.Hash, &scopes, &created, &revoked); err != nil {
		return nil, err
	}
	var err error
	if k.Scopes, err = decodeList(scopes); err != nil {
		return nil, fmt.Errorf("root key %s: scopes: %w", k.ID, err)
	}
	k.CreatedAt, k.RevokedAt = fromMicros(created), fromNullMicros(revoked)
	return &k, nil
}

func (q *queries) GetRootKeyByHash(ctx context.Context, hash []byte) (*keyplane.RootKey, error) {
	return get(ctx, q, "get root key", sqlGetRootKeyByHash, scanRootKey, hash)
}

func (q *queries) GetRootKey(ctx context.Context, id string) (*keyplane.RootKey, error) {
	return get(ctx, q, "get root key", sqlGetRootKey, scanRootKey, id)
}

func (q *queries) ListRootKeys(ctx context.Context) ([]keyplane.RootKey, error) {
	return list(ctx, q, "list root keys", sqlListRootKeys, values(scanRootKey))
}

func (t *tx) CreateRootKey(ctx context.Context, k *keyplane.RootKey) error {
	const op = "create root key"
	scopes, err := encodeList(k.Scopes)
	if err != nil {
		return fmt.Errorf("%s: scopes: %w", op, err)
	}
	return t.insert(ctx, op, sqlInsertRootKey, k.ID, k.Name, k.Hash, scopes, micros(k.CreatedAt),
		nullMicros(k.RevokedAt))
}

func (t *tx) RevokeRootKey(ctx context.Context, id string, at time.Time) error {
	return t.update(ctx, "revoke root key", sqlRevokeRootKey, micros(at), id)
}
