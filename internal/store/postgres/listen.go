package postgres

import (
	"context"
	"encoding/hex"
	"log/slog"
	"strings"
	"time"

	"github.com/keyplane/keyplane/internal/store"
)

// Listen calls forget with the digests of every key change any node commits (store.Publish, on
// store.InvalidationChannel) until ctx ends. When its connection breaks it connects again, backing off
// up to 5 s, and then calls resync: notifications sent while it was away are lost, so whatever the
// node cached must go. ready, when not nil, is called each time it is listening (after resync), and
// lost, when not nil, each time it stops: from then until ready, changes may go unseen.
func (db *DB) Listen(ctx context.Context, log *slog.Logger, forget func(hashes ...[]byte), resync, ready, lost func()) {
	backoff := 100 * time.Millisecond
	for first := true; ctx.Err() == nil; first = false {
		err := db.listenOnce(ctx, forget, func() {
			backoff = 100 * time.Millisecond
			if !first {
				log.Info("cache invalidation: listening again; the verification cache was cleared")
				resync()
			}
			if ready != nil {
				ready()
			}
		})
		if lost != nil {
			lost()
		}
		if ctx.Err() != nil {
			return
		}
		log.Warn("cache invalidation: the LISTEN connection broke; changes made on other nodes are seen after the cache TTL until it is back",
			"err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (db *DB) listenOnce(ctx context.Context, forget func(hashes ...[]byte), listening func()) error {
	conn, err := db.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// The connection is held for as long as it listens, then closed rather than given back: a broken
	// one must not return to the pool, and a sound one would keep listening.
	defer func() {
		conn.Conn().Close(context.Background())
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+store.InvalidationChannel); err != nil {
		return err
	}
	listening()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return err
		}
		var hashes [][]byte
		for _, h := range strings.Split(n.Payload, ",") {
			if b, err := hex.DecodeString(h); err == nil && len(b) == 32 {
				hashes = append(hashes, b)
			}
		}
		forget(hashes...)
	}
}
