package sqlstore

import (
	"context"
	"encoding/hex"
	"strings"

	"github.com/keyplane/keyplane/internal/store"
)

// maxPayload keeps each notification under PostgreSQL's 8000-byte limit.
const maxPayload = 7000

func (t *tx) Publish(ctx context.Context, hashes [][]byte) error {
	if t.db.d.Notify == "" || len(hashes) == 0 {
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
