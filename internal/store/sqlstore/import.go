package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// ImportAPIKeys writes keys and their secrets in one transaction by multi-row INSERTs, without audit
// entries or events (see store.Store).
func (db *DB) ImportAPIKeys(ctx context.Context, keys []keyplane.APIKey, secrets []keyplane.Secret) error {
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
		for rest := keys; len(rest) > 0; {
			n := chunkSize(len(rest))
			args := make([]any, 0, n*24)
			for i := range rest[:n] {
				if args, err = appendAPIKeyValues(args, &rest[i]); err != nil {
					return fmt.Errorf("import api keys: %w", err)
				}
			}
			if err := t.execChunk(ctx, keyStmts[n], keySQL(n), args...); err != nil {
				return t.fail("import api keys", err)
			}
			rest = rest[n:]
		}
		for rest := secrets; len(rest) > 0; {
			n := chunkSize(len(rest))
			args := make([]any, 0, n*6)
			for i := range rest[:n] {
				args = appendSecretValues(args, &rest[i])
			}
			if err := t.execChunk(ctx, secretStmts[n], secretSQL(n), args...); err != nil {
				return t.fail("import secrets", err)
			}
			rest = rest[n:]
		}
		return nil
	})
}

// APIKeyColumns and SecretColumns are the columns of APIKeyValues and SecretValues, for a driver
// that inserts rows its own way (PostgreSQL's COPY).
func APIKeyColumns() []string { return columns(apiKeyInsertColumns) }

// SecretColumns: see APIKeyColumns.
func SecretColumns() []string { return columns(secretInsertColumns) }

// APIKeyValues returns k's values in the order of APIKeyColumns.
func APIKeyValues(k *keyplane.APIKey) ([]any, error) {
	return appendAPIKeyValues(make([]any, 0, 24), k)
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
