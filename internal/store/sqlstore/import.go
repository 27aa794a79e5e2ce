package sqlstore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// ImportAPIKeys writes keys and their secrets in one transaction by multi-row INSERTs, without audit
// entries or events (see store.Store). Rows go in primary key order, so that a large import walks each
// b-tree once instead of landing on random pages: with a million keys that is several times faster on
// SQLite, whose page cache is small.
func (db *DB) ImportAPIKeys(ctx context.Context, keys []keyplane.APIKey, secrets []keyplane.Secret) error {
	keyOrder := order(len(keys), func(i, j int) int { return strings.Compare(keys[i].ID, keys[j].ID) })
	secretOrder := order(len(secrets), func(i, j int) int { return bytes.Compare(secrets[i].Hash, secrets[j].Hash) })
	keySQL := func(n int) string { return sqlImportAPIKeys + batchRows(sqlAPIKeyRow, n) }
	secretSQL := func(n int) string { return sqlImportSecrets + batchRows(sqlSecretRow, n) }
	keyStmts, err := db.prepareChunks(ctx, len(keys), keySQL)
	if err != nil {
		return fmt.Errorf("import api keys: %w", err)
	}
	secretStmts, err := db.prepareChunks(ctx, len(secrets), secretSQL)
	if err != nil {
		return fmt.Errorf("import api keys: %w", err)
	}
	return db.inTx(ctx, nil, func(stx store.Tx) error {
		t := stx.(*tx)
		if kib := db.d.ImportCacheKiB; kib > 0 {
			var was int64
			if err := t.q.QueryRowContext(ctx, "PRAGMA cache_size").Scan(&was); err != nil {
				return t.fail("import api keys: read the page cache size", err)
			}
			if _, err := t.q.ExecContext(ctx, fmt.Sprintf("PRAGMA cache_size = %d", -kib)); err != nil {
				return t.fail("import api keys: enlarge the page cache", err)
			}
			defer t.q.ExecContext(context.WithoutCancel(ctx), fmt.Sprintf("PRAGMA cache_size = %d", was))
		}
		err := t.insertChunks(ctx, keyStmts, keySQL, len(keyOrder), apiKeyWidth, func(args []any, i int) ([]any, error) {
			return appendAPIKeyValues(args, &keys[keyOrder[i]])
		})
		if err != nil {
			return t.fail("import api keys", err)
		}
		err = t.insertChunks(ctx, secretStmts, secretSQL, len(secretOrder), 6, func(args []any, i int) ([]any, error) {
			return appendSecretValues(args, &secrets[secretOrder[i]]), nil
		})
		if err != nil {
			return t.fail("import secrets", err)
		}
		return nil
	})
}

// order returns the indexes 0…n-1 sorted by cmp.
func order(n int, cmp func(i, j int) int) []int {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	slices.SortFunc(idx, cmp)
	return idx
}

// APIKeyColumns and SecretColumns are the columns of APIKeyValues and SecretValues, for a driver
// that inserts rows its own way (PostgreSQL's COPY).
func APIKeyColumns() []string { return columns(apiKeyInsertColumns) }

// SecretColumns: see APIKeyColumns.
func SecretColumns() []string { return columns(secretInsertColumns) }

// APIKeyValues returns k's values in the order of APIKeyColumns.
func APIKeyValues(k *keyplane.APIKey) ([]any, error) {
	return appendAPIKeyValues(make([]any, 0, apiKeyWidth), k)
}

// SecretValues returns s's values in the order of SecretColumns.
func SecretValues(s *keyplane.Secret) []any { return appendSecretValues(make([]any, 0, 6), s) }

func columns(list string) []string {
	out := strings.Split(list, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}
