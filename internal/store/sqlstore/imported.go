package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/keyplane/keyplane"
)

// Keys migrated in from another system (store.Tx.InsertImportedKeys). Unlike Store.ImportAPIKeys,
// which seeds a store nothing serves yet, these go through a change of the service: in its
// transaction, beside their audit entries, and published like every other new digest.
const (
	sqlImportedSecrets   = `INSERT INTO secrets (` + secretInsertColumns + `, imported) VALUES `
	sqlImportedSecretRow = `(?, ?, ?, ?, ?, ?, TRUE)`
	// sqlStoredSecrets is followed by the placeholders of the digests asked about and ")".
	sqlStoredSecrets = `SELECT hash FROM secrets WHERE hash IN (`
	// The index secrets_imported covers this (migration 00016): a node reads the marked digests
	// without a scan of every secret.
	sqlImportedHashes = `SELECT hash FROM secrets WHERE imported = TRUE`
)

// sqlInsertAudits is followed by batchRows of sqlAuditRow: without ON CONFLICT, so that a
// duplicate fails the whole.
const (
	sqlInsertAudits = `INSERT INTO audit_entries (` + auditColumns + `) VALUES `
	sqlAuditRow     = `(?, ?, ?, ?, ?, ?, ?, ?, ?)`
)

func (t *tx) InsertAudits(ctx context.Context, entries []keyplane.AuditEntry) error {
	query := func(n int) string { return sqlInsertAudits + batchRows(sqlAuditRow, n) }
	err := t.insertChunks(ctx, nil, query, len(entries), 9, func(args []any, i int) ([]any, error) {
		e := &entries[i]
		// The body is stored as the exact bytes given: its hash was computed over them.
		return append(args, e.WorkspaceID, e.Seq, e.ID, micros(e.Timestamp), e.Action, e.ActorID, e.TargetID, string(e.Body), e.Hash), nil
	})
	if err != nil {
		return t.fail("insert audit entries", err)
	}
	return nil
}

// storedBatch bounds the digests one IN list asks about.
const storedBatch = 500

func (t *tx) InsertImportedKeys(ctx context.Context, keys []keyplane.APIKey, secrets []keyplane.Secret) error {
	keySQL := func(n int) string { return sqlImportAPIKeys + batchRows(sqlAPIKeyRow, n) }
	secretSQL := func(n int) string { return sqlImportedSecrets + batchRows(sqlImportedSecretRow, n) }
	err := t.insertChunks(ctx, nil, keySQL, len(keys), apiKeyWidth, func(args []any, i int) ([]any, error) {
		return appendAPIKeyValues(args, &keys[i])
	})
	if err != nil {
		return t.fail("insert imported keys", err)
	}
	err = t.insertChunks(ctx, nil, secretSQL, len(secrets), 6, func(args []any, i int) ([]any, error) {
		return appendSecretValues(args, &secrets[i]), nil
	})
	if err != nil {
		return t.fail("insert imported secrets", err)
	}
	return nil
}

func (t *tx) StoredSecrets(ctx context.Context, hashes [][]byte) ([][]byte, error) {
	var out [][]byte
	for len(hashes) > 0 {
		n := min(len(hashes), storedBatch)
		args := make([]any, n)
		for i := range n {
			args[i] = hashes[i]
		}
		q := sqlStoredSecrets + strings.TrimSuffix(strings.Repeat("?, ", n), ", ") + ")"
		rows, err := t.query(ctx, q, args...)
		if err != nil {
			return nil, t.fail("read stored digests", err)
		}
		for rows.Next() {
			var h []byte
			if err := rows.Scan(&h); err != nil {
				rows.Close()
				return nil, t.fail("read stored digests", err)
			}
			out = append(out, h)
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, t.fail("read stored digests", err)
		}
		hashes = hashes[n:]
	}
	return out, nil
}

// EachImportedHash calls fn with the digest of every imported value (InsertImportedKeys), in one read:
// what a node's filter of values without keyplane's format starts from, and is topped up from after
// a gap in its change feed. fn must not keep its argument.
func (db *DB) EachImportedHash(ctx context.Context, fn func(hash []byte)) error {
	rows, err := db.r.QueryContext(ctx, sqlImportedHashes)
	if err != nil {
		return fmt.Errorf("read imported digests: %w", err)
	}
	defer rows.Close()
	var h sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&h); err != nil {
			return fmt.Errorf("read imported digests: %w", err)
		}
		fn(h)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read imported digests: %w", err)
	}
	return nil
}
