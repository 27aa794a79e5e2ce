package sqlstore

import (
	"database/sql"

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
