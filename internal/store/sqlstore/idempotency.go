package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/keyplane/keyplane/internal/store"
)

// The idempotency keys' statements. A claim is one INSERT that does nothing on the primary key's
// conflict, then, when that inserted nothing, one UPDATE that takes over a record that counts for
// nothing any more; each is atomic on its own, on any number of connections or nodes (PostgreSQL
// re-checks an UPDATE's WHERE on the row it waited for), so of concurrent claims exactly one wins.
const (
	idemColumns = `scope, idem_key, fingerprint, claim, state, status, answer, created_at, lease_until, expires_at`

	sqlInsertIdem = `INSERT INTO idempotency_keys (` + idemColumns + `) VALUES (?, ?, ?, ?, 'running', 0, NULL, ?, ?, ?)
		ON CONFLICT DO NOTHING`
	sqlTakeOverIdem = `UPDATE idempotency_keys SET fingerprint = ?, claim = ?, state = 'running', status = 0, answer = NULL,
			created_at = ?, lease_until = ?, expires_at = ?
		WHERE scope = ? AND idem_key = ?
		AND (expires_at <= ? OR (state = 'running' AND lease_until <= ? AND fingerprint = ?))`
	sqlGetIdem    = `SELECT ` + idemColumns + ` FROM idempotency_keys WHERE scope = ? AND idem_key = ?`
	sqlFinishIdem = `UPDATE idempotency_keys SET state = 'done', status = ?, answer = ?
		WHERE scope = ? AND idem_key = ? AND claim = ? AND state = 'running'`
	sqlReleaseIdem = `DELETE FROM idempotency_keys WHERE scope = ? AND idem_key = ? AND claim = ? AND state = 'running'`
	sqlPruneIdem   = `DELETE FROM idempotency_keys WHERE (scope, idem_key) IN (
		SELECT scope, idem_key FROM idempotency_keys WHERE expires_at <= ? ORDER BY expires_at LIMIT ?)`
	sqlIdemAnswers = `SELECT ` + idemColumns + ` FROM idempotency_keys
		WHERE state = 'done' AND answer IS NOT NULL AND (scope > ? OR scope = ? AND idem_key > ?)
		ORDER BY scope, idem_key LIMIT ?`
	sqlResealIdem = `UPDATE idempotency_keys SET answer = ? WHERE scope = ? AND idem_key = ? AND answer = ?`
)

// claimTries bounds a claim's rounds: a record found by neither statement may be pruned or released
// before it is read, and the claim then starts again.
const claimTries = 5

// ClaimIdempotencyKey runs its statements on the writer (see onWriter).
func (db *DB) ClaimIdempotencyKey(ctx context.Context, rec *store.IdempotencyRecord, now time.Time) (bool, *store.IdempotencyRecord, error) {
	const op = "claim idempotency key"
	var claimed bool
	var found *store.IdempotencyRecord
	err := db.onWriter(ctx, func(w *queries) error {
		for range claimTries {
			res, err := w.exec(ctx, sqlInsertIdem, rec.Scope, rec.Key, rec.Fingerprint, rec.Claim,
				micros(rec.CreatedAt), micros(rec.LeaseUntil), micros(rec.ExpiresAt))
			if n, err := affected(w, op, res, err); err != nil || n == 1 {
				claimed = n == 1
				return err
			}
			res, err = w.exec(ctx, sqlTakeOverIdem, rec.Fingerprint, rec.Claim, micros(rec.CreatedAt), micros(rec.LeaseUntil),
				micros(rec.ExpiresAt), rec.Scope, rec.Key, micros(now), micros(now), rec.Fingerprint)
			if n, err := affected(w, op, res, err); err != nil || n == 1 {
				claimed = n == 1
				return err
			}
			found, err = scanIdem(w.queryRow(ctx, sqlGetIdem, rec.Scope, rec.Key))
			if errors.Is(err, store.ErrNotFound) {
				continue // gone since the INSERT: claim again
			}
			if err != nil {
				return w.fail(op, err)
			}
			return nil
		}
		return fmt.Errorf("%s: the record kept changing under %d claims", op, claimTries)
	})
	if err != nil || claimed {
		return claimed, nil, err
	}
	return false, found, nil
}

func affected(w *queries, op string, res interface{ RowsAffected() (int64, error) }, err error) (int64, error) {
	if err != nil {
		return 0, w.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return n, nil
}

func scanIdem(row interface{ Scan(...any) error }) (*store.IdempotencyRecord, error) {
	var r store.IdempotencyRecord
	var state string
	var created, lease, expires int64
	err := row.Scan(&r.Scope, &r.Key, &r.Fingerprint, &r.Claim, &state, &r.Status, &r.Answer, &created, &lease, &expires)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, store.ErrNotFound
		}
		return nil, err
	}
	r.Done = state == "done"
	r.CreatedAt, r.LeaseUntil, r.ExpiresAt = fromMicros(created), fromMicros(lease), fromMicros(expires)
	return &r, nil
}

// FinishIdempotencyKey runs sqlFinishIdem on the writer (see onWriter).
func (db *DB) FinishIdempotencyKey(ctx context.Context, scope, key, claim string, status int, answer []byte) error {
	const op = "finish idempotency key"
	return db.onWriter(ctx, func(w *queries) error {
		res, err := w.exec(ctx, sqlFinishIdem, status, answer, scope, key, claim)
		n, err := affected(w, op, res, err)
		if err == nil && n == 0 {
			err = fmt.Errorf("%s: %w", op, store.ErrNotFound)
		}
		return err
	})
}

// ReleaseIdempotencyKey runs sqlReleaseIdem on the writer (see onWriter).
func (db *DB) ReleaseIdempotencyKey(ctx context.Context, scope, key, claim string) error {
	const op = "release idempotency key"
	return db.onWriter(ctx, func(w *queries) error {
		res, err := w.exec(ctx, sqlReleaseIdem, scope, key, claim)
		_, err = affected(w, op, res, err)
		return err
	})
}

// PruneIdempotencyKeys deletes up to limit expired records in a transaction of its own.
func (db *DB) PruneIdempotencyKeys(ctx context.Context, before time.Time, limit int) (int64, error) {
	return db.prune(ctx, "prune idempotency keys", sqlPruneIdem, micros(before), limit)
}

func (q *queries) IdempotencyAnswers(ctx context.Context, afterScope, afterKey string, limit int) ([]store.IdempotencyRecord, error) {
	const op = "idempotency answers"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	rows, err := q.query(ctx, sqlIdemAnswers, afterScope, afterScope, afterKey, limit)
	if err != nil {
		return nil, q.fail(op, err)
	}
	defer rows.Close()
	var out []store.IdempotencyRecord
	for rows.Next() {
		r, err := scanIdem(rows)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", op, err)
		}
		out = append(out, *r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return out, nil
}

// ResealIdempotencyAnswer runs sqlResealIdem on the writer (see onWriter).
func (db *DB) ResealIdempotencyAnswer(ctx context.Context, scope, key string, old, answer []byte) error {
	const op = "reseal idempotency answer"
	return db.onWriter(ctx, func(w *queries) error {
		res, err := w.exec(ctx, sqlResealIdem, answer, scope, key, old)
		n, err := affected(w, op, res, err)
		if err == nil && n == 0 {
			err = fmt.Errorf("%s: %w", op, store.ErrNotFound)
		}
		return err
	})
}
