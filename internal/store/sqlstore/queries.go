package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/keyplane/keyplane/internal/store"
)

var _ store.Queries = (*queries)(nil)

// collect reads every row with scan and closes rows. It returns a non-nil slice, so that an empty
// list encodes as [] rather than null.
func collect[T any](rows *sql.Rows, scan func(scanner) (T, error)) ([]T, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// page trims a list fetched with limit+1 rows to limit and returns the cursor of the next page: the
// last row kept, or "" when the extra row was not there.
func page[T any](rows []T, limit int, cursor func(*T) string) ([]T, string) {
	if len(rows) <= limit {
		return rows, ""
	}
	rows = rows[:limit]
	return rows, cursor(&rows[limit-1])
}

// values adapts a scan that returns a pointer (as the single-row getters want) to collect, which keeps
// the rows by value.
func values[T any](scan func(scanner) (*T, error)) func(scanner) (T, error) {
	return func(s scanner) (T, error) {
		v, err := scan(s)
		if err != nil {
			var zero T
			return zero, err
		}
		return *v, nil
	}
}

// list runs query and reads every row with scan; either failure is reported as op's.
func list[T any](ctx context.Context, q *queries, op, query string, scan func(scanner) (T, error), args ...any) ([]T, error) {
	rows, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, q.fail(op, err)
	}
	out, err := collect(rows, scan)
	if err != nil {
		return nil, q.fail(op, err)
	}
	return out, nil
}

// listPage runs a list query whose last parameter is the row limit: it fetches limit+1 rows, so that
// page can tell whether there is a next page, and returns that page's cursor ("" on the last).
func listPage[T any](ctx context.Context, q *queries, op, query string, limit int, scan func(scanner) (T, error),
	cursor func(*T) string, args ...any) ([]T, string, error) {
	out, err := list(ctx, q, op, query, scan, append(args, limit+1)...)
	if err != nil {
		return nil, "", err
	}
	out, next := page(out, limit, cursor)
	return out, next, nil
}

// listSQL builds a filtered list's query: its start, a clause and the parameters of each filter set,
// the keyset cursor's clause, and its end.
type listSQL struct {
	b    strings.Builder
	args []any
}

func newListSQL(start string, args ...any) *listSQL {
	l := &listSQL{args: args}
	l.b.WriteString(start)
	return l
}

// add appends clause and its parameters.
func (l *listSQL) add(clause string, args ...any) {
	l.b.WriteString(clause)
	l.args = append(l.args, args...)
}

// after adds clause with the id a cursor of kind holds, when there is a cursor; a cursor that this
// list did not make is op's error.
func (l *listSQL) after(op string, kind byte, cursor, clause string) error {
	if cursor == "" {
		return nil
	}
	id, err := decodeCursor(kind, cursor)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	l.add(clause, id)
	return nil
}

// checkLimit refuses a page of no rows: page needs at least one.
func checkLimit(op string, limit int) error {
	if limit < 1 {
		return fmt.Errorf("%s: limit %d is not positive", op, limit)
	}
	return nil
}

// get runs a query of one row and reads it with scan; a failure (store.ErrNotFound when there is no
// row) is reported as op's.
func get[T any](ctx context.Context, q *queries, op, query string, scan func(scanner) (*T, error), args ...any) (*T, error) {
	v, err := scan(q.queryRow(ctx, query, args...))
	if err != nil {
		return nil, q.fail(op, err)
	}
	return v, nil
}
