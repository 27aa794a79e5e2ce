package sqlstore

import (
	"context"
	"fmt"

	"github.com/keyplane/keyplane/internal/store"
)

// insert runs an INSERT … ON CONFLICT DO NOTHING and reports store.ErrConflict when it wrote nothing.
func (t *tx) insert(ctx context.Context, op, query string, args ...any) error {
	return t.execOne(ctx, op, store.ErrConflict, query, args...)
}

// update runs an UPDATE of one row and reports store.ErrNotFound when it matched none.
func (t *tx) update(ctx context.Context, op, query string, args ...any) error {
	return t.execOne(ctx, op, store.ErrNotFound, query, args...)
}

// execOne runs a statement that should touch one row and returns none (wrapped) when it touched none.
func (t *tx) execOne(ctx context.Context, op string, none error, query string, args ...any) error {
	res, err := t.exec(ctx, query, args...)
	if err != nil {
		return t.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", op, none)
	}
	return nil
}

// taken runs a COUNT query and reports whether it found any row.
func (t *tx) taken(ctx context.Context, op, query string, args ...any) error {
	var n int
	if err := t.queryRow(ctx, query, args...).Scan(&n); err != nil {
		return t.fail(op, err)
	}
	if n > 0 {
		return fmt.Errorf("%s: %w", op, store.ErrConflict)
	}
	return nil
}

// deleteCounted runs a DELETE and says how many rows it removed.
func (t *tx) deleteCounted(ctx context.Context, op, query string, args ...any) (int64, error) {
	res, err := t.exec(ctx, query, args...)
	if err != nil {
		return 0, t.fail(op, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("%s: %w", op, err)
	}
	return n, nil
}
