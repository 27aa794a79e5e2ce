package service

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/credits"
	"github.com/keyplane/keyplane/internal/store"
)

// The service is the credits.Ledger a node's verifications use: a take that finds the refill due
// applies it and takes again, and an exhaustion is recorded, each with its audit entry or event, around the store's atomic
// calls.
var _ credits.Ledger = (*Service)(nil)

// CreditsChange is an operation of POST …/credits.
type CreditsChange struct {
	Op    keyplane.CreditOp
	Value int64
}

func checkCreditsChange(ch CreditsChange) error {
	var v keyplane.Validation
	if !ch.Op.Valid() {
		v.Add("op", "must be set, increment or decrement")
	}
	if ch.Value < 0 || ch.Value > keyplane.MaxCredits {
		v.Add("value", "must be from 0 to %d", int64(keyplane.MaxCredits))
	}
	return v.Err()
}

// ChangeKeyCredits sets, increments or decrements a key's credits and returns the balance after.
// A set keeps the refill; an increment or a decrement of an unlimited key is refused (400 on op): it
// has no balance to change (set one, or PATCH credits). A decrement stops at 0, an increment at
// keyplane.MaxCredits.
func (s *Service) ChangeKeyCredits(ctx context.Context, c *keyplane.Caller, wsID, keyID string, ch CreditsChange) (*keyplane.Credits, error) {
	if err := checkCreditsChange(ch); err != nil {
		return nil, err
	}
	if c.Portal {
		return nil, portalRefusal("credits")
	}
	var out *keyplane.Credits
	err := s.mutateKey(ctx, c, wsID, keyID, func(tx store.Tx, k *keyplane.APIKey, now time.Time) (*outcome, error) {
		if keyBound(c) && k.ID == c.Actor.ID {
			return nil, keyplane.Errorf(keyplane.CodeForbidden, "a key cannot change its own credits")
		}
		if k.RevokedAt != nil {
			return nil, revokedErr(k)
		}
		cur, err := tx.GetCredits(ctx, keyAccount(k))
		if err != nil {
			return nil, notFound(err, "API key")
		}
		o, after, err := s.applyCreditsChange(ctx, tx, keyAccount(k), cur, ch, now)
		if err != nil || o == nil {
			return o, err
		}
		out = after
		o.audit.Target = keyTarget(k)
		o.audit.Action = "api_key.credits_changed"
		if o.events != nil {
			k.Credits = after
			o.events[0].data = keyEvent(k.View(now), nil)
		}
		return o, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// ChangeIdentityCredits is ChangeKeyCredits for an identity's shared balance.
func (s *Service) ChangeIdentityCredits(ctx context.Context, c *keyplane.Caller, wsID, identityID string, ch CreditsChange) (*keyplane.Credits, error) {
	if err := checkCreditsChange(ch); err != nil {
		return nil, err
	}
	if c.Portal {
		return nil, portalRefusal("credits")
	}
	var out *keyplane.Credits
	err := s.mutateIdentity(ctx, c, wsID, identityID, func(tx store.Tx, i *keyplane.Identity, now time.Time) (*outcome, error) {
		o, after, err := s.applyCreditsChange(ctx, tx, identityAccount(i), i.Credits, ch, now)
		if err != nil || o == nil {
			return o, err
		}
		out = after
		o.audit.Target = identityTarget(i)
		o.audit.Action = "identity.credits_changed"
		if o.events != nil {
			i.Credits = after
			o.events[0].data = map[string]any{"identity": i.View()}
		}
		return o, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// applyCreditsChange changes the balance cur of a: the audit record (without its action and
// target) and, when the balance reached 0, an api_key.credits_exhausted event whose data the caller
// fills in.
func (s *Service) applyCreditsChange(ctx context.Context, tx store.Tx, a keyplane.CreditAccount, cur *keyplane.Credits, ch CreditsChange, now time.Time) (*outcome, *keyplane.Credits, error) {
	var after *keyplane.Credits
	switch {
	case ch.Op == keyplane.CreditSet:
		after = &keyplane.Credits{Remaining: ch.Value}
		if cur != nil {
			after.Refill, after.LastRefillAt, after.NextRefillAt = cur.Refill, cur.LastRefillAt, cur.NextRefillAt
		}
		if err := tx.SetCredits(ctx, a, after); err != nil {
			return nil, nil, err
		}
	case cur == nil:
		return nil, nil, &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid op",
			Details: []keyplane.FieldError{{Field: "op", Message: fmt.Sprintf("the credits are unlimited: there is no balance to %s; set one first", ch.Op)}}}
	default:
		delta := ch.Value
		if ch.Op == keyplane.CreditDecrement {
			delta = -delta
		}
		var err error
		if after, err = tx.AdjustCredits(ctx, a, delta); err != nil {
			return nil, nil, err
		}
	}
	from := any(nil)
	if cur != nil {
		from = cur.Remaining
	}
	o := &outcome{audit: &keyplane.AuditRecord{Changes: map[string]keyplane.Change{
		"credits.remaining": {From: from, To: after.Remaining},
		"op":                {To: string(ch.Op) + " " + fmt.Sprint(ch.Value)},
	}}}
	if after.Remaining == 0 {
		marked, err := tx.MarkCreditsExhausted(ctx, a, after.Epoch, now)
		if err != nil {
			return nil, nil, err
		}
		if marked {
			t := now
			after.ExhaustedAt = &t
			o.events = []pendingEvent{{typ: keyplane.EventCreditsExhausted}}
		}
	}
	return o, after, nil
}

// TakeCredits takes credits out of a balance for the hot path (credits.Ledger): it first applies
// a refill that is due, then takes atomically; when it got nothing from an empty balance, it records
// the exhaustion (one api_key.credits_exhausted event per exhaustion, however many nodes see it).
func (s *Service) TakeCredits(ctx context.Context, a keyplane.CreditAccount, t keyplane.CreditTake) (keyplane.CreditGrant, error) {
	// The take comes first, with no read before it: it says when the balance's refill is due. When
	// that has passed, it took from the balance the refill replaces (its credits go with that
	// balance: a refill sets the balance, it does not add to it), so the refill is applied and the
	// take made again, from the new balance.
	g, err := s.store.TakeCredits(ctx, a, t)
	if err != nil {
		return g, err
	}
	if next := g.NextRefillAt; next != nil && !next.After(s.clock()) {
		if _, err := s.refill(ctx, a); err != nil {
			return keyplane.CreditGrant{}, err
		}
		if g, err = s.store.TakeCredits(ctx, a, t); err != nil {
			return g, err
		}
	}
	if g.Got == 0 && g.Remaining == 0 {
		if err := s.exhausted(ctx, a, g.Epoch); err != nil {
			// The take stands: the event is a notice, and the next take that finds 0 sends it.
			s.log.WarnContext(ctx, "credits exhausted: the notice failed", "account", a.ID(), "err", err)
		}
	}
	return g, nil
}

// ReturnCredits gives back credits a node took and did not spend (credits.Ledger).
func (s *Service) ReturnCredits(ctx context.Context, a keyplane.CreditAccount, n, epoch int64) (bool, error) {
	return s.store.ReturnCredits(ctx, a, n, epoch)
}

func refillDue(c *keyplane.Credits, now time.Time) bool {
	return c.Refill != nil && c.NextRefillAt != nil && !c.NextRefillAt.After(now)
}

// exhausted marks an empty balance of epoch as exhausted and sends api_key.credits_exhausted, once.
func (s *Service) exhausted(ctx context.Context, a keyplane.CreditAccount, epoch int64) error {
	return s.change(ctx, keyplane.System("credits"), a.WorkspaceID, func(tx store.Tx, now time.Time) (*outcome, error) {
		marked, err := tx.MarkCreditsExhausted(ctx, a, epoch, now)
		if err != nil || !marked {
			return nil, err
		}
		data, hashes, err := accountEvent(ctx, tx, a, now)
		if err != nil {
			return nil, err
		}
		return &outcome{events: []pendingEvent{{keyplane.EventCreditsExhausted, data}}, forget: hashes}, nil
	})
}

// accountEvent is the data of a credits event about a (the key's view, or the identity's) and the
// digests of the keys whose caches hold the balance.
func accountEvent(ctx context.Context, tx store.Tx, a keyplane.CreditAccount, now time.Time) (map[string]any, [][]byte, error) {
	if a.IdentityID != "" {
		i, err := tx.GetIdentity(ctx, a.WorkspaceID, a.IdentityID)
		if err != nil {
			return nil, nil, err
		}
		hashes, err := tx.IdentityKeyHashes(ctx, i.ID)
		return map[string]any{"identity": i.View()}, hashes, err
	}
	k, err := tx.GetAPIKey(ctx, a.WorkspaceID, a.KeyID)
	if err != nil {
		return nil, nil, err
	}
	secrets, err := tx.ListSecrets(ctx, k.ID)
	if err != nil {
		return nil, nil, err
	}
	hashes := make([][]byte, len(secrets))
	for i := range secrets {
		hashes[i] = secrets[i].Hash
	}
	return keyEvent(k.View(now), nil), hashes, nil
}

// lastDue returns the latest refill instant of r at or before now, from next, the first one due:
// a balance whose refills were missed (no node ran) gets one refill, of the latest.
func lastDue(r *keyplane.Refill, next, now time.Time) time.Time {
	for {
		after := r.Next(next)
		if after.After(now) {
			return next
		}
		next = after
	}
}

// refill applies the refill of cur that is due, once however many nodes try: the store refills only
// a balance whose NextRefillAt is still due. It is audited (actor system) and sends
// api_key.credits_refilled.
func (s *Service) refill(ctx context.Context, a keyplane.CreditAccount) (bool, error) {
	applied := false
	err := s.change(ctx, keyplane.System("credits refill"), a.WorkspaceID, func(tx store.Tx, now time.Time) (*outcome, error) {
		// Read again under the workspace's lock: a change since may have set other credits.
		cur, err := tx.GetCredits(ctx, a)
		if err != nil || cur == nil || !refillDue(cur, now) {
			return nil, err
		}
		due := lastDue(cur.Refill, *cur.NextRefillAt, now)
		next := cur.Refill.Next(now)
		ok, err := tx.RefillCredits(ctx, a, due, cur.Refill.Amount, &next)
		if err != nil || !ok {
			return nil, err
		}
		applied = true
		data, hashes, err := accountEvent(ctx, tx, a, now)
		if err != nil {
			return nil, err
		}
		target := keyplane.Target{Type: "api_key", ID: a.KeyID}
		action := "api_key.credits_refilled"
		if a.IdentityID != "" {
			target, action = keyplane.Target{Type: "identity", ID: a.IdentityID}, "identity.credits_refilled"
		}
		return &outcome{
			audit: &keyplane.AuditRecord{Action: action, Target: target, Changes: map[string]keyplane.Change{
				"credits.remaining":    {From: cur.Remaining, To: cur.Refill.Amount},
				"credits.lastRefillAt": {From: formatTime(cur.LastRefillAt), To: keyplane.FormatTime(due)},
			}},
			events: []pendingEvent{{keyplane.EventCreditsRefilled, data}},
			forget: hashes,
		}, nil
	})
	if errors.Is(err, store.ErrNotFound) {
		return false, nil // the key or identity went meanwhile
	}
	return applied && err == nil, err
}

func formatTime(t *time.Time) any {
	if t == nil {
		return nil
	}
	return keyplane.FormatTime(*t)
}

// refillBatch is how many due balances one pass of RefillDue reads at a time.
const refillBatch = 200

// RefillDue applies every refill that is due, of every workspace, and says how many it applied.
// serve runs it every minute on one node (store.RunExclusive); TakeCredits applies a due refill too,
// so that a balance in use is refilled at once, whenever the job last ran.
func (s *Service) RefillDue(ctx context.Context) (int, error) {
	done := 0
	seen := map[string]bool{}
	for {
		due, err := s.store.DueRefills(ctx, s.clock(), refillBatch)
		if err != nil {
			return done, err
		}
		fresh := 0
		for _, a := range due {
			// A balance that stays due (another node refilled it with other settings meanwhile) is
			// tried once per pass, so that the pass ends.
			if seen[a.ID()] {
				continue
			}
			seen[a.ID()] = true
			fresh++
			cur, err := s.store.GetCredits(ctx, a)
			if errors.Is(err, store.ErrNotFound) || cur == nil {
				continue
			}
			if err != nil {
				return done, err
			}
			ok, err := s.refill(ctx, a)
			if err != nil {
				return done, err
			}
			if ok {
				done++
			}
		}
		if len(due) < refillBatch || fresh == 0 {
			return done, nil
		}
	}
}
