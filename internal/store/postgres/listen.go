package postgres

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strings"
	"sync/atomic"
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

// heartbeatEvery is how often a listening node notifies itself, and heartbeatLost how long it waits
// for any notice before it takes its connection for broken: a silent break is noticed within about
// 15 s, after which the cache TTL bounds staleness again.
const (
	heartbeatEvery = 5 * time.Second
	heartbeatLost  = 3 * heartbeatEvery
)

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
	// The node trusts its cache for as long as it listens, so a connection that died without a word
	// (half-open TCP, a firewall that drops idle flows) must not pass for a listening one: it sends
	// itself an empty notice now and then, and takes the connection for broken when no notice at all
	// has come for a while.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	every, lost := heartbeatEvery, heartbeatLost
	if db.heartbeat > 0 {
		every, lost = db.heartbeat, db.silence
	}
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	silent := atomic.Bool{}
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
			}
			if time.Since(time.Unix(0, last.Load())) > lost {
				silent.Store(true)
				cancel()
				return
			}
			hctx, hcancel := context.WithTimeout(wctx, every)
			// An error is the watchdog's to judge: the notice does not come.
			_, _ = db.pool.Exec(hctx, "SELECT pg_notify($1, '')", store.InvalidationChannel)
			hcancel()
		}
	}()
	for {
		n, err := conn.Conn().WaitForNotification(wctx)
		if err != nil {
			if silent.Load() {
				return fmt.Errorf("no notice, not even the node's own heartbeat, for %s: %w", lost, err)
			}
			return err
		}
		last.Store(time.Now().UnixNano())
		if n.Payload == "" {
			continue // a heartbeat
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
