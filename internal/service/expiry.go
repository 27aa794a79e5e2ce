package service

import (
	"context"
	"errors"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// Expiry notices.
const (
	// ExpiringNotice is how long before a key's expiry api_key.expiring goes out.
	ExpiringNotice = 24 * time.Hour
	// expiredLookback bounds how far back a missed api_key.expired is still sent: a deployment that
	// was down, or that gains this feature, does not flood its endpoints with old expiries.
	expiredLookback = 7 * 24 * time.Hour
	noticeBatch     = 200
)

// NotifyExpiries sends api_key.expiring for keys that expire within ExpiringNotice and
// api_key.expired for keys that expired (in the last week), each once per key and expiry however many
// nodes run it at once: the notice's row, keyed by key, kind and expiry, is written in the event's
// transaction, and a node that finds it taken sends nothing. Revoked keys get neither. It returns how
// many notices it sent; serve runs it every 30 seconds.
func (s *Service) NotifyExpiries(ctx context.Context) (int, error) {
	now := s.clock()
	sent := 0
	for _, n := range []struct {
		kind        string
		after, upto time.Time
	}{
		{keyplane.EventAPIKeyExpiring, now, now.Add(ExpiringNotice)},
		{keyplane.EventAPIKeyExpired, now.Add(-expiredLookback), now},
	} {
		for {
			keys, err := s.store.KeysToNotify(ctx, n.kind, n.after, n.upto, noticeBatch)
			if err != nil {
				return sent, err
			}
			for i := range keys {
				ok, err := s.notify(ctx, &keys[i], n.kind)
				if err != nil {
					return sent, err
				}
				if ok {
					sent++
				}
			}
			if len(keys) < noticeBatch {
				break
			}
		}
	}
	return sent, nil
}

// notify sends one notice of kind for k's expiry, unless another node has.
func (s *Service) notify(ctx context.Context, k *keyplane.APIKey, kind string) (bool, error) {
	sent := false
	err := s.change(ctx, keyplane.System("key expiry"), k.WorkspaceID, func(tx store.Tx, now time.Time) (*outcome, error) {
		cur, err := tx.GetAPIKey(ctx, k.WorkspaceID, k.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, nil // deleted meanwhile
		}
		if err != nil {
			return nil, err
		}
		// Read again under the workspace's lock: a change since the list may have moved the expiry
		// or revoked the key.
		if cur.RevokedAt != nil || cur.ExpiresAt == nil || !cur.ExpiresAt.Equal(*k.ExpiresAt) {
			return nil, nil
		}
		if err := tx.InsertKeyNotice(ctx, k.ID, kind, *k.ExpiresAt); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, nil // another node sent it
			}
			return nil, err
		}
		sent = true
		return &outcome{events: []pendingEvent{{kind, keyEvent(cur.View(now), map[string]any{"expiresAt": keyplane.FormatTime(*cur.ExpiresAt)})}}}, nil
	})
	return sent, err
}
