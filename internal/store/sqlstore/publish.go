package sqlstore

import (
	"context"
	"database/sql"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/keyplane/keyplane/internal/store"
)

// maxPayload keeps each notification under PostgreSQL's 8000-byte limit.
const maxPayload = 7000

// journalKeep is how long journal rows are kept: far longer than a reader that works is behind
// (a fraction of a second), so that one only misses rows after an hour without reading, and then
// knows it (see sqlite.Journal).
const journalKeep = time.Hour

func (t *tx) Publish(ctx context.Context, hashes [][]byte) error {
	if len(hashes) == 0 {
		return nil
	}
	if t.db.d.Journal != "" {
		return t.journal(ctx, hashes)
	}
	if t.db.d.Notify == "" {
		return nil
	}
	var b strings.Builder
	flush := func() error {
		if b.Len() == 0 {
			return nil
		}
		_, err := t.exec(ctx, t.db.d.Notify, store.InvalidationChannel, b.String())
		b.Reset()
		if err != nil {
			return t.fail("publish", err)
		}
		return nil
	}
	for _, h := range hashes {
		if b.Len()+len(h)*2+1 > maxPayload {
			if err := flush(); err != nil {
				return err
			}
		}
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(hex.EncodeToString(h))
	}
	return flush()
}

// journal appends the digests to the change journal, and prunes as many of its old rows as it has
// added (and a few more), so that the journal stays about an hour long without a job of its own.
func (t *tx) journal(ctx context.Context, hashes [][]byte) error {
	for _, h := range hashes {
		if _, err := t.exec(ctx, t.db.d.Journal, h); err != nil {
			return t.fail("publish", err)
		}
	}
	if _, err := t.exec(ctx, t.db.d.JournalPrune, time.Now().Add(-journalKeep).Unix(), len(hashes)+16); err != nil {
		return t.fail("prune change journal", err)
	}
	return nil
}

// EachSecretHash calls fn with the digest of every stored secret, in one read: what a membership
// filter of the stored digests starts from. fn must not keep its argument.
func (db *DB) EachSecretHash(ctx context.Context, fn func(hash []byte)) error {
	rows, err := db.r.QueryContext(ctx, "SELECT hash FROM secrets")
	if err != nil {
		return fmt.Errorf("read secret digests: %w", err)
	}
	defer rows.Close()
	var h sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&h); err != nil {
			return fmt.Errorf("read secret digests: %w", err)
		}
		fn(h)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read secret digests: %w", err)
	}
	return nil
}
