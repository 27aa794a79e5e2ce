package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// Credit balances live in the credits_* columns of api_keys and of identities alike (migration 11).
// Their statements are written once with {t} for the table and {max} for keyplane.MaxCredits;
// creditSQL fills them in for an account. CAST(? AS BIGINT): PostgreSQL would otherwise type a
// parameter compared with or added to a column as that column's type or as integer, and a large
// delta would not fit.
const (
	creditColumns = `credits_remaining, refill_interval, refill_amount, refill_day, last_refill_at,
		next_refill_at, credits_epoch, exhausted_at`

	sqlGetCredits = `SELECT ` + creditColumns + ` FROM {t} WHERE id = ? AND workspace_id = ?`

	// sqlTakeCredits takes, when at least need are left, min(want, remaining / div) but at least need
	// (div ≥ 1: the share of the balance a node may hold, see keyplane.CreditTake), in one statement:
	// the row is locked from the check to the write, so concurrent takes on any number of connections
	// or nodes can never take more than there is. SET's expressions read the row before the update
	// and RETURNING the row after it: the amount taken is written to credits_taken to be read back.
	// The parameters of one amount are takeArgs': div, want, div, need, div, need, want.
	sqlTakeCredits = `UPDATE {t} SET
			credits_taken = ` + sqlTakeAmount + `,
			credits_remaining = credits_remaining - ` + sqlTakeAmount + `
		WHERE id = ? AND workspace_id = ? AND credits_remaining IS NOT NULL AND credits_remaining >= CAST(? AS BIGINT)
		RETURNING credits_taken, credits_remaining, credits_epoch, next_refill_at`
	sqlTakeAmount = `CASE WHEN credits_remaining / CAST(? AS BIGINT) <= CAST(? AS BIGINT)
			THEN CASE WHEN credits_remaining / CAST(? AS BIGINT) > CAST(? AS BIGINT) THEN credits_remaining / CAST(? AS BIGINT) ELSE CAST(? AS BIGINT) END
			ELSE CAST(? AS BIGINT) END`
	sqlBalance = `SELECT credits_remaining, credits_epoch, next_refill_at FROM {t} WHERE id = ? AND workspace_id = ?`

	// sqlReturnCredits gives credits back only to the balance they were taken from: after a set or a
	// refill (a new epoch) they are not the new balance's.
	sqlReturnCredits = `UPDATE {t} SET credits_remaining =
			CASE WHEN credits_remaining + CAST(? AS BIGINT) > {max} THEN {max} ELSE credits_remaining + CAST(? AS BIGINT) END
		WHERE id = ? AND workspace_id = ? AND credits_remaining IS NOT NULL AND credits_epoch = ?`

	sqlAdjustCredits = `UPDATE {t} SET
			credits_remaining = CASE
				WHEN credits_remaining + CAST(? AS BIGINT) < 0 THEN 0
				WHEN credits_remaining + CAST(? AS BIGINT) > {max} THEN {max}
				ELSE credits_remaining + CAST(? AS BIGINT) END,
			exhausted_at = CASE WHEN CAST(? AS BIGINT) > 0 THEN NULL ELSE exhausted_at END
		WHERE id = ? AND workspace_id = ? AND credits_remaining IS NOT NULL
		RETURNING ` + creditColumns

	sqlSetCredits = `UPDATE {t} SET credits_remaining = ?, refill_interval = ?, refill_amount = ?, refill_day = ?,
			last_refill_at = ?, next_refill_at = ?, exhausted_at = ?, credits_epoch = credits_epoch + 1
		WHERE id = ? AND workspace_id = ?
		RETURNING credits_epoch`

	// sqlRefillCredits applies a refill only while it is due: the first node to apply it moves
	// next_refill_at past due (Refill.Next is strictly after it), so that every other finds it not due.
	sqlRefillCredits = `UPDATE {t} SET credits_remaining = ?, last_refill_at = ?, next_refill_at = ?,
			exhausted_at = NULL, credits_epoch = credits_epoch + 1
		WHERE id = ? AND workspace_id = ? AND credits_remaining IS NOT NULL AND refill_interval IS NOT NULL
			AND next_refill_at IS NOT NULL AND next_refill_at <= ?`

	sqlMarkCreditsExhausted = `UPDATE {t} SET exhausted_at = ?
		WHERE id = ? AND workspace_id = ? AND credits_remaining = 0 AND credits_epoch = ? AND exhausted_at IS NULL`

	// sqlDueRefills reads each table's index of next_refill_at, soonest first, and merges them.
	sqlDueRefills = `SELECT workspace_id, key_id, identity_id, next_refill_at FROM (
			SELECT * FROM (SELECT workspace_id, id AS key_id, '' AS identity_id, next_refill_at FROM api_keys
				WHERE next_refill_at IS NOT NULL AND next_refill_at <= ? ORDER BY next_refill_at LIMIT ?) dk
			UNION ALL
			SELECT * FROM (SELECT workspace_id, '' AS key_id, id AS identity_id, next_refill_at FROM identities
				WHERE next_refill_at IS NOT NULL AND next_refill_at <= ? ORDER BY next_refill_at LIMIT ?) di
		) d
		ORDER BY next_refill_at, key_id, identity_id
		LIMIT ?`
)

// creditSQL returns tmpl for a's table and a's own id. An account names an identity when its
// IdentityID is set (as keyplane.CreditAccount.ID reads it), else a key.
func creditSQL(a keyplane.CreditAccount, tmpl string) (query, id string, err error) {
	table, id := "api_keys", a.KeyID
	if a.IdentityID != "" {
		table, id = "identities", a.IdentityID
	}
	if id == "" || a.WorkspaceID == "" {
		return "", "", errors.New("credit account names no key or identity, or no workspace")
	}
	if q, ok := creditQueries.Load(creditQuery{tmpl, table}); ok {
		return q.(string), id, nil
	}
	q := strings.NewReplacer("{t}", table, "{max}", fmt.Sprint(keyplane.MaxCredits)).Replace(tmpl)
	creditQueries.Store(creditQuery{tmpl, table}, q)
	return q, id, nil
}

// creditQueries holds creditSQL's answers: the take runs on the verification path, where building
// the statement's text each time would cost more than the cache's lookup. Its keys are the few
// templates above times the two tables.
var creditQueries sync.Map

type creditQuery struct{ tmpl, table string }

// takeArgs are sqlTakeCredits' parameters.
func takeArgs(t keyplane.CreditTake, id, workspaceID string) []any {
	div := t.ShareDivisor()
	amount := []any{div, t.Want, div, t.Need, div, t.Need, t.Want}
	args := make([]any, 0, 2*len(amount)+3)
	args = append(append(args, amount...), amount...)
	return append(args, id, workspaceID, t.Need)
}

// creditsRow receives the columns of creditColumns (nullable throughout: identities are read by a
// LEFT JOIN beside keys).
type creditsRow struct {
	remaining, amount, day, last, next, epoch, exhausted sql.NullInt64
	interval                                             sql.NullString
}

func (r *creditsRow) dest() []any {
	return []any{&r.remaining, &r.interval, &r.amount, &r.day, &r.last, &r.next, &r.epoch, &r.exhausted}
}

// credits returns the balance, nil when it is unlimited.
func (r *creditsRow) credits() *keyplane.Credits {
	if !r.remaining.Valid {
		return nil
	}
	c := &keyplane.Credits{Remaining: r.remaining.Int64, LastRefillAt: fromNullMicros(r.last),
		NextRefillAt: fromNullMicros(r.next), Epoch: r.epoch.Int64, ExhaustedAt: fromNullMicros(r.exhausted)}
	if r.interval.Valid {
		c.Refill = &keyplane.Refill{Interval: keyplane.RefillInterval(r.interval.String), Amount: r.amount.Int64,
			RefillDay: int(r.day.Int64)}
	}
	return c
}

// appendCreditValues appends c's remaining, refill interval, amount and day, last and next refill
// times: the columns every write of a whole balance sets.
func appendCreditValues(dst []any, c *keyplane.Credits) []any {
	if c == nil {
		return append(dst, nil, nil, nil, nil, nil, nil)
	}
	var interval, amount, day any
	if c.Refill != nil {
		interval, amount, day = string(c.Refill.Interval), c.Refill.Amount, c.Refill.RefillDay
	}
	return append(dst, c.Remaining, interval, amount, day, nullMicros(c.LastRefillAt), nullMicros(c.NextRefillAt))
}

// creditEpoch and creditExhausted are the values of credits_epoch and exhausted_at at insert.
func creditEpoch(c *keyplane.Credits) int64 {
	if c == nil {
		return 0
	}
	return c.Epoch
}

func creditExhausted(c *keyplane.Credits) any {
	if c == nil {
		return nil
	}
	return nullMicros(c.ExhaustedAt)
}

func (q *queries) GetCredits(ctx context.Context, a keyplane.CreditAccount) (*keyplane.Credits, error) {
	const op = "get credits"
	query, id, err := creditSQL(a, sqlGetCredits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	var r creditsRow
	if err := q.queryRow(ctx, query, id, a.WorkspaceID).Scan(r.dest()...); err != nil {
		return nil, q.fail(op, err)
	}
	return r.credits(), nil
}

func (q *queries) DueRefills(ctx context.Context, now time.Time, limit int) ([]keyplane.CreditAccount, error) {
	const op = "due refills"
	if err := checkLimit(op, limit); err != nil {
		return nil, err
	}
	n := micros(now)
	return list(ctx, q, op, sqlDueRefills, func(s scanner) (keyplane.CreditAccount, error) {
		var a keyplane.CreditAccount
		var next int64
		err := s.Scan(&a.WorkspaceID, &a.KeyID, &a.IdentityID, &next)
		return a, err
	}, n, limit, n, limit, limit)
}

// writer returns queries that run on the writer handle outside any transaction: each statement
// commits on its own.
func (db *DB) writer() *queries { return &queries{db: db, q: db.w} }

// takeRetries bounds how often TakeCredits takes again when a balance it found short had grown by
// the time it read it (a return or an increment in between).
const takeRetries = 3

// TakeCredits runs sqlTakeCredits on the writer (see onWriter). When it takes nothing, the balance
// is read to tell an absent or unlimited account (store.ErrNotFound) from a short one.
func (db *DB) TakeCredits(ctx context.Context, a keyplane.CreditAccount, t keyplane.CreditTake) (keyplane.CreditGrant, error) {
	const op = "take credits"
	if t.Need < 0 || t.Want < t.Need {
		return keyplane.CreditGrant{}, fmt.Errorf("%s: need %d, want %d: want ≥ need ≥ 0", op, t.Need, t.Want)
	}
	take, id, err := creditSQL(a, sqlTakeCredits)
	if err != nil {
		return keyplane.CreditGrant{}, fmt.Errorf("%s: %w", op, err)
	}
	balance, _, _ := creditSQL(a, sqlBalance)
	takeSt, err := db.writeStmt(ctx, take)
	if err != nil {
		return keyplane.CreditGrant{}, fmt.Errorf("%s: %w", op, err)
	}
	args := takeArgs(t, id, a.WorkspaceID)
	var g keyplane.CreditGrant
	err = db.onWriter(ctx, func(w *queries) error {
		for try := 0; ; try++ {
			g = keyplane.CreditGrant{}
			var next sql.NullInt64
			err := w.queryRowStmt(ctx, takeSt, take, args...).Scan(&g.Got, &g.Remaining, &g.Epoch, &next)
			if err == nil {
				g.NextRefillAt = fromNullMicros(next)
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return w.fail(op, err)
			}
			var remaining sql.NullInt64
			if err := w.queryRow(ctx, balance, id, a.WorkspaceID).Scan(&remaining, &g.Epoch, &next); err != nil {
				return w.fail(op, err)
			}
			g.NextRefillAt = fromNullMicros(next)
			if !remaining.Valid {
				return fmt.Errorf("%s: unlimited: %w", op, store.ErrNotFound)
			}
			if remaining.Int64 < t.Need || try == takeRetries {
				g.Remaining = remaining.Int64
				return nil
			}
		}
	})
	if err != nil {
		return keyplane.CreditGrant{}, err
	}
	return g, nil
}

// onWriter runs fn's statements where they commit durably and soonest: on SQLite in the group
// commit (InTx), so that the takes and give-backs of many balances at once (a Zipf mix of metered
// keys, each key's first verification a take) share one commit and its fsync instead of one each;
// elsewhere on the writer handle, each statement committing on its own.
func (db *DB) onWriter(ctx context.Context, fn func(q *queries) error) error {
	if db.d.GroupCommit {
		return db.InTx(ctx, store.OperatorChain, func(stx store.Tx) error { return fn(&stx.(*tx).queries) })
	}
	return fn(db.writer())
}

// ReturnCredits runs sqlReturnCredits on the writer (see onWriter).
func (db *DB) ReturnCredits(ctx context.Context, a keyplane.CreditAccount, n, epoch int64) (bool, error) {
	const op = "return credits"
	if n < 0 {
		return false, fmt.Errorf("%s: %d credits", op, n)
	}
	query, id, err := creditSQL(a, sqlReturnCredits)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	n = min(n, keyplane.MaxCredits)
	st, err := db.writeStmt(ctx, query)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	var done int64
	err = db.onWriter(ctx, func(w *queries) error {
		res, err := w.execStmt(ctx, st, query, n, n, id, a.WorkspaceID, epoch)
		if err != nil {
			return w.fail(op, err)
		}
		if done, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		return nil
	})
	return done == 1, err
}

func (t *tx) SetCredits(ctx context.Context, a keyplane.CreditAccount, c *keyplane.Credits) error {
	const op = "set credits"
	query, id, err := creditSQL(a, sqlSetCredits)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	args := appendCreditValues(make([]any, 0, 9), c)
	args = append(args, creditExhausted(c), id, a.WorkspaceID)
	var epoch int64
	if err := t.queryRow(ctx, query, args...).Scan(&epoch); err != nil {
		return t.fail(op, err)
	}
	if c != nil {
		c.Epoch = epoch
	}
	return nil
}

func (t *tx) AdjustCredits(ctx context.Context, a keyplane.CreditAccount, delta int64) (*keyplane.Credits, error) {
	const op = "adjust credits"
	query, id, err := creditSQL(a, sqlAdjustCredits)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	// A balance is within [0, MaxCredits]: a larger step clamps the same, and cannot overflow.
	delta = max(min(delta, 2*keyplane.MaxCredits), -2*keyplane.MaxCredits)
	var r creditsRow
	if err := t.queryRow(ctx, query, delta, delta, delta, delta, id, a.WorkspaceID).Scan(r.dest()...); err != nil {
		return nil, t.fail(op, err)
	}
	return r.credits(), nil
}

func (t *tx) RefillCredits(ctx context.Context, a keyplane.CreditAccount, due time.Time, amount int64, next *time.Time) (bool, error) {
	const op = "refill credits"
	query, id, err := creditSQL(a, sqlRefillCredits)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return t.changed(ctx, op, query, amount, micros(due), nullMicros(next), id, a.WorkspaceID, micros(due))
}

func (t *tx) MarkCreditsExhausted(ctx context.Context, a keyplane.CreditAccount, epoch int64, at time.Time) (bool, error) {
	const op = "mark credits exhausted"
	query, id, err := creditSQL(a, sqlMarkCreditsExhausted)
	if err != nil {
		return false, fmt.Errorf("%s: %w", op, err)
	}
	return t.changed(ctx, op, query, micros(at), id, a.WorkspaceID, epoch)
}

// changed runs a conditional UPDATE of one row and reports whether it wrote it.
func (t *tx) changed(ctx context.Context, op, query string, args ...any) (bool, error) {
	n, err := t.deleteCounted(ctx, op, query, args...)
	return n == 1, err
}
