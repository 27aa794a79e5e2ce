package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
	"github.com/keyplane/keyplane/internal/store/sqlstore"
)

// maxLogRetries bounds how many times a batch is written again after a deadlock or serialization
// failure, as sqlstore does for other transactions.
const maxLogRetries = 3

// WriteRequestLogs writes a batch of request log entries in one transaction, as blocks (see
// sqlstore.LogBlocks), with COPY, PostgreSQL's bulk path: the log is written all the time; and the
// key rows this node has not written yet (sqlstore.LogKeysSeen).
//
// The transaction's commit does not wait for the disk (synchronous_commit off, for it alone): a crash
// of the database may lose its last fraction of a second of entries, as a crash of keyplane loses
// those still buffered in memory anyway, and in exchange the log's writer does not wait for a flush
// per batch. It is never half applied.
func (db *DB) WriteRequestLogs(ctx context.Context, entries []keyplane.RequestLog) error {
	if len(entries) == 0 {
		return nil
	}
	blocks := sqlstore.LogBlocks(entries)
	blockRows, filterRows := make([][]any, len(blocks)), make([][]any, len(blocks))
	for i := range blocks {
		blockRows[i], filterRows[i] = blocks[i].Values(), blocks[i].FilterValues()
	}
	return db.LogKeysSeen().Write(blocks, func(keys []sqlstore.LogKeyRow) error {
		var ws, keyIDs, spans []string
		for _, k := range keys {
			ws, keyIDs, spans = append(ws, k.WorkspaceID), append(keyIDs, k.KeyID), append(spans, k.SpanID)
		}
		return db.relaxedTx(ctx, "write request logs", func(tx pgx.Tx) error {
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"request_log_blocks"}, sqlstore.LogBlockColumns(), pgx.CopyFromRows(blockRows)); err != nil {
				return err
			}
			if _, err := tx.CopyFrom(ctx, pgx.Identifier{"request_log_filters"}, sqlstore.LogFilterColumns(), pgx.CopyFromRows(filterRows)); err != nil {
				return err
			}
			if len(keys) == 0 {
				return nil
			}
			// Not COPY: another node may have written a key's row of the span already.
			_, err := tx.Exec(ctx, sqlInsertLogKeys, ws, keyIDs, spans)
			return err
		})
	})
}

// sqlInsertLogKeys inserts rows of request_log_keys from three arrays (sqlstore.LogKeyRow),
// leaving out those there already.
const sqlInsertLogKeys = `INSERT INTO request_log_keys (workspace_id, key_id, last_id)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[]) ON CONFLICT DO NOTHING`

// AddUsage adds counts to the hourly rollups and moves last-used times in one transaction whose
// commit, like the log's, does not wait for the disk.
func (db *DB) AddUsage(ctx context.Context, counts []store.UsageCount, touched map[string]time.Time) error {
	if len(counts) == 0 && len(touched) == 0 {
		return nil
	}
	stmts := append(sqlstore.UsageStatements(counts), sqlstore.TouchStatements(touched)...)
	return db.relaxedTx(ctx, "add usage", func(tx pgx.Tx) error {
		for _, st := range stmts {
			if _, err := tx.Exec(ctx, db.Rebind(st.Query), st.Args...); err != nil {
				return err
			}
		}
		return nil
	})
}

// relaxedTx runs fn in a transaction with synchronous_commit off, again on a deadlock or
// serialization failure.
func (db *DB) relaxedTx(ctx context.Context, op string, fn func(pgx.Tx) error) error {
	for retries := 0; ; retries++ {
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit TO OFF`); err != nil {
				return err
			}
			return fn(tx)
		})
		if err == nil {
			return nil
		}
		if retries == maxLogRetries || !retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
}

// retryable reports whether a transaction that failed with err may succeed if run again:
// serialization_failure, deadlock_detected.
func retryable(err error) bool {
	c := pgCode(err)
	return c == "40001" || c == "40P01"
}

// ImportAPIKeys writes keys and their secrets in one transaction with COPY, without audit entries or
// events (see store.Store): a million keys take seconds, not the minutes of row-by-row inserts.
func (db *DB) ImportAPIKeys(ctx context.Context, keys []keyplane.APIKey, secrets []keyplane.Secret) error {
	keyRows := make([][]any, len(keys))
	for i := range keys {
		v, err := sqlstore.APIKeyValues(&keys[i])
		if err != nil {
			return fmt.Errorf("import api keys: %w", err)
		}
		keyRows[i] = v
	}
	secretRows := make([][]any, len(secrets))
	for i := range secrets {
		secretRows[i] = sqlstore.SecretValues(&secrets[i])
	}
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"api_keys"}, sqlstore.APIKeyColumns(), pgx.CopyFromRows(keyRows)); err != nil {
			return err
		}
		_, err := tx.CopyFrom(ctx, pgx.Identifier{"secrets"}, sqlstore.SecretColumns(), pgx.CopyFromRows(secretRows))
		return err
	})
	if err != nil {
		return fmt.Errorf("import api keys: %w", err)
	}
	return nil
}
