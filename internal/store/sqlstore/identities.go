package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/keyplane/keyplane"
)

const (
	// identityColumns are read with an identity and beside a key (LEFT JOIN, alias i);
	// identityVerifyColumns are all of them but the timestamps, for the verification read.
	identityVerifyColumns = `i.id, i.workspace_id, i.external_id, i.meta, i.rate_limits, i.credits_remaining,
		i.refill_interval, i.refill_amount, i.refill_day, i.last_refill_at, i.next_refill_at, i.credits_epoch,
		i.exhausted_at`
	identityColumns = identityVerifyColumns + `, i.created_at, i.updated_at`

	sqlGetIdentity           = `SELECT ` + identityColumns + ` FROM identities i WHERE i.id = ? AND i.workspace_id = ?`
	sqlGetIdentityByExternal = `SELECT ` + identityColumns + ` FROM identities i WHERE i.workspace_id = ? AND i.external_id = ?`
	sqlListIdentities        = `SELECT ` + identityColumns + ` FROM identities i WHERE i.workspace_id = ?`
	sqlIdentityBefore        = ` AND i.id < ?`
	sqlListIdentitiesEnd     = ` ORDER BY i.id DESC LIMIT ?`

	sqlInsertIdentity = `INSERT INTO identities (id, workspace_id, external_id, meta, rate_limits, credits_remaining,
			refill_interval, refill_amount, refill_day, last_refill_at, next_refill_at, credits_epoch, exhausted_at,
			created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	sqlExternalIDTaken = `SELECT COUNT(*) FROM identities WHERE workspace_id = ? AND external_id = ? AND id <> ?`
	// sqlUpdateIdentity never writes the credits: see store.Tx.SetCredits.
	sqlUpdateIdentity = `UPDATE identities SET external_id = ?, meta = ?, rate_limits = ?, updated_at = ?
		WHERE id = ? AND workspace_id = ?`
	sqlDeleteIdentity = `DELETE FROM identities WHERE id = ? AND workspace_id = ?`

	sqlCountIdentityKeys      = `SELECT COUNT(*) FROM api_keys WHERE identity_id = ?`
	sqlIdentityKeyHashes      = `SELECT s.hash FROM api_keys k JOIN secrets s ON s.key_id = k.id WHERE k.identity_id = ? ORDER BY s.hash`
	cursorIdentity       byte = 'i'
)

// identityRow receives the columns of identityColumns, all nullable: beside a key they come from a
// LEFT JOIN, NULL when the key has no identity.
type identityRow struct {
	id, workspaceID, externalID, meta, rateLimits sql.NullString
	c                                             creditsRow
	createdAt, updatedAt                          sql.NullInt64
}

func (r *identityRow) dest() []any { return append(r.verifyDest(), &r.createdAt, &r.updatedAt) }

// verifyDest is dest for identityVerifyColumns.
func (r *identityRow) verifyDest() []any {
	return append([]any{&r.id, &r.workspaceID, &r.externalID, &r.meta, &r.rateLimits}, r.c.dest()...)
}

// identity returns the identity read, nil when there was none (a key without one).
func (r *identityRow) identity() (*keyplane.Identity, error) {
	if !r.id.Valid {
		return nil, nil
	}
	limits, err := decodeLimits(r.rateLimits.String)
	if err != nil {
		return nil, fmt.Errorf("identity %s: rate limits: %w", r.id.String, err)
	}
	i := &keyplane.Identity{ID: r.id.String, WorkspaceID: r.workspaceID.String, ExternalID: r.externalID.String,
		Meta: json.RawMessage(r.meta.String), Credits: r.c.credits(), RateLimits: limits}
	// Always there in a row of identityColumns; not read by the verification read (verifyKeyColumns).
	if r.createdAt.Valid {
		i.CreatedAt, i.UpdatedAt = fromMicros(r.createdAt.Int64), fromMicros(r.updatedAt.Int64)
	}
	return i, nil
}

func scanIdentity(s scanner) (*keyplane.Identity, error) {
	var r identityRow
	if err := s.Scan(r.dest()...); err != nil {
		return nil, err
	}
	return r.identity()
}

// encodeLimits stores named limits as a JSON array, [] when there are none.
func encodeLimits(v []keyplane.NamedRateLimit) (string, error) {
	if len(v) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// decodeLimits returns nil for none: a key's or an identity's limits read back as they were set, and
// the views list none as [].
func decodeLimits(s string) ([]keyplane.NamedRateLimit, error) {
	if s == "[]" {
		return nil, nil
	}
	var v []keyplane.NamedRateLimit
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		return nil, err
	}
	if len(v) == 0 {
		return nil, nil
	}
	return v, nil
}

func (q *queries) GetIdentity(ctx context.Context, workspaceID, id string) (*keyplane.Identity, error) {
	return get(ctx, q, "get identity", sqlGetIdentity, scanIdentity, id, workspaceID)
}

func (q *queries) GetIdentityByExternalID(ctx context.Context, workspaceID, externalID string) (*keyplane.Identity, error) {
	return get(ctx, q, "get identity by external id", sqlGetIdentityByExternal, scanIdentity, workspaceID, externalID)
}

func (q *queries) ListIdentities(ctx context.Context, workspaceID string, limit int, cursor string) ([]keyplane.Identity, string, error) {
	const op = "list identities"
	if err := checkLimit(op, limit); err != nil {
		return nil, "", err
	}
	l := newListSQL(sqlListIdentities, workspaceID)
	if err := l.after(op, cursorIdentity, cursor, sqlIdentityBefore); err != nil {
		return nil, "", err
	}
	l.add(sqlListIdentitiesEnd)
	return listPage(ctx, q, op, l.b.String(), limit, values(scanIdentity),
		func(i *keyplane.Identity) string { return encodeCursor(cursorIdentity, i.ID) }, l.args...)
}

func (q *queries) CountIdentityKeys(ctx context.Context, identityID string) (int, error) {
	var n int
	if err := q.queryRow(ctx, sqlCountIdentityKeys, identityID).Scan(&n); err != nil {
		return 0, q.fail("count identity keys", err)
	}
	return n, nil
}

func (q *queries) IdentityKeyHashes(ctx context.Context, identityID string) ([][]byte, error) {
	return list(ctx, q, "identity key hashes", sqlIdentityKeyHashes, func(s scanner) ([]byte, error) {
		var h []byte
		err := s.Scan(&h)
		return h, err
	}, identityID)
}

func (t *tx) InsertIdentity(ctx context.Context, i *keyplane.Identity) error {
	const op = "insert identity"
	limits, err := encodeLimits(i.RateLimits)
	if err != nil {
		return fmt.Errorf("%s: rate limits: %w", op, err)
	}
	args := append([]any{i.ID, i.WorkspaceID, i.ExternalID, jsonObject(i.Meta), limits}, appendCreditValues(nil, i.Credits)...)
	args = append(args, creditEpoch(i.Credits), creditExhausted(i.Credits), micros(i.CreatedAt), micros(i.UpdatedAt))
	return t.insert(ctx, op, sqlInsertIdentity, args...)
}

func (t *tx) UpdateIdentity(ctx context.Context, i *keyplane.Identity) error {
	const op = "update identity"
	limits, err := encodeLimits(i.RateLimits)
	if err != nil {
		return fmt.Errorf("%s: rate limits: %w", op, err)
	}
	if err := t.taken(ctx, op, sqlExternalIDTaken, i.WorkspaceID, i.ExternalID, i.ID); err != nil {
		return err
	}
	return t.update(ctx, op, sqlUpdateIdentity, i.ExternalID, jsonObject(i.Meta), limits, micros(i.UpdatedAt),
		i.ID, i.WorkspaceID)
}

func (t *tx) DeleteIdentity(ctx context.Context, workspaceID, id string) error {
	return t.update(ctx, "delete identity", sqlDeleteIdentity, id, workspaceID)
}
