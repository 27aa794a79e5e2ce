package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store/sqlstore"
)

// maxLogRetries bounds how many times a batch is written again after a deadlock or serialization
// failure, as sqlstore does for other transactions.
const maxLogRetries = 3

// WriteRequestLogs writes a batch of the request log in one transaction, as sqlstore's does, but
// inserts the entries with COPY, PostgreSQL's bulk path: it costs the server about half of what
// multi-row INSERTs do, and the log is written all the time.
//
// The transaction's commit does not wait for the disk (synchronous_commit off, for it alone): a crash
// of the database may lose its last fraction of a second of entries, as a crash of keyplane loses
// those still buffered in memory anyway, and in exchange the log's writer does not wait for a flush
// per batch. It is never inconsistent: entries, rollups and last-used times commit together or not.
func (db *DB) WriteRequestLogs(ctx context.Context, entries []keyplane.RequestLog, touched map[string]time.Time) error {
	if len(entries) == 0 && len(touched) == 0 {
		return nil
	}
	rows := make([][]any, len(entries))
	for i := range entries {
		rows[i] = sqlstore.RequestLogValues(&entries[i])
	}
	followUps := sqlstore.RequestLogFollowUps(entries, touched)
	for retries := 0; ; retries++ {
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit TO OFF`); err != nil {
				return err
			}
			if len(rows) > 0 {
				if _, err := tx.CopyFrom(ctx, pgx.Identifier{"request_logs"}, sqlstore.RequestLogColumns(), pgx.CopyFromRows(rows)); err != nil {
					return err
				}
			}
			for _, st := range followUps {
				if _, err := tx.Exec(ctx, db.Rebind(st.Query), st.Args...); err != nil {
					return err
				}
			}
			return nil
		})
		if err == nil {
			return nil
		}
		if retries == maxLogRetries || !retryable(err) || ctx.Err() != nil {
			return fmt.Errorf("write request logs: %w", err)
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
