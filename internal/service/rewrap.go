package service

import (
	"context"
	"errors"
	"fmt"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/store"
)

// RewrapResult counts what Rewrap re-sealed, and what was already sealed with the current key.
type RewrapResult struct {
	Secrets, WebhookSecrets, AlreadyCurrent int
	// IdempotentAnswers counts the kept answers of idempotency keys re-sealed (they are counted in
	// AlreadyCurrent when they were current).
	IdempotentAnswers int
}

const rewrapBatch = 200

// Rewrap re-seals every stored value (recoverable and publishable keys' values, webhook signing
// secrets) that is not sealed with the current master key, opening it with the previous key the
// service's Box holds. Each value is replaced in a transaction of its own workspace's chain, so that
// a rotation can run while the service serves; run again, it finds nothing left to do. The rotation is
// audited in the operator's chain.
func (s *Service) Rewrap(ctx context.Context, c *keyplane.Caller) (RewrapResult, error) {
	var res RewrapResult
	var after []byte
	for {
		secrets, err := s.store.SealedSecrets(ctx, after, rewrapBatch)
		if err != nil {
			return res, err
		}
		for _, sec := range secrets {
			if s.box.Current(sec.Ciphertext) {
				res.AlreadyCurrent++
				continue
			}
			ad := keyAD(sec.WorkspaceID, sec.KeyID)
			pt, err := s.box.Open(sec.Ciphertext, ad)
			if err != nil {
				return res, fmt.Errorf("open the value of key %s: %w (is the previous master key configured?)", sec.KeyID, err)
			}
			sealed := s.box.Seal(pt, ad)
			err = s.store.InTx(ctx, sec.WorkspaceID, func(tx store.Tx) error { return tx.SetSecretCiphertext(ctx, sec.Hash, sealed) })
			if err != nil && !errors.Is(err, store.ErrNotFound) { // gone meanwhile: nothing to re-seal
				return res, err
			}
			if err == nil {
				res.Secrets++
			}
		}
		if len(secrets) < rewrapBatch {
			break
		}
		after = secrets[len(secrets)-1].Hash
	}
	last := ""
	for {
		hooks, err := s.store.AllWebhooks(ctx, last, rewrapBatch)
		if err != nil {
			return res, err
		}
		for _, h := range hooks {
			n, err := s.rewrapWebhook(ctx, h)
			if err != nil {
				return res, err
			}
			res.WebhookSecrets += n
			if n == 0 {
				res.AlreadyCurrent++
			}
		}
		if len(hooks) < rewrapBatch {
			break
		}
		last = hooks[len(hooks)-1].ID
	}
	if err := s.rewrapIdempotentAnswers(ctx, &res); err != nil {
		return res, err
	}
	err := s.Audit(ctx, c, store.OperatorChain, keyplane.AuditRecord{Action: "master_key.rewrapped", Target: keyplane.Target{Type: "master_key"},
		Changes: map[string]keyplane.Change{"resealed": {To: res.Secrets + res.WebhookSecrets}}})
	return res, err
}

// rewrapWebhook re-seals an endpoint's secrets under its workspace's lock, reading it afresh there so
// that a rotation of its secret meanwhile is not undone; it says how many it re-sealed.
func (s *Service) rewrapWebhook(ctx context.Context, h keyplane.WebhookEndpoint) (int, error) {
	n := 0
	err := s.store.InTx(ctx, h.WorkspaceID, func(tx store.Tx) error {
		n = 0
		e, err := tx.GetWebhook(ctx, h.WorkspaceID, h.ID)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		ad := webhookAD(e.WorkspaceID, e.ID)
		for _, sealed := range []*[]byte{&e.Secret, &e.PreviousSecret} {
			if len(*sealed) == 0 || s.box.Current(*sealed) {
				continue
			}
			pt, err := s.box.Open(*sealed, ad)
			if err != nil {
				return fmt.Errorf("open the signing secret of %s: %w (is the previous master key configured?)", e.ID, err)
			}
			*sealed = s.box.Seal(pt, ad)
			n++
		}
		if n == 0 {
			return nil
		}
		// UpdateWebhook writes updated_at too: keep it, a re-sealing changes nothing a person sees.
		return tx.UpdateWebhook(ctx, e)
	})
	return n, err
}

// rewrapIdempotentAnswers re-seals the kept answers of idempotency keys (they may hold key values),
// so that replays keep working once the previous master key is dropped. An answer replaced or gone
// meanwhile is left to its new state.
func (s *Service) rewrapIdempotentAnswers(ctx context.Context, res *RewrapResult) error {
	scope, key := "", ""
	for {
		recs, err := s.store.IdempotencyAnswers(ctx, scope, key, rewrapBatch)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if s.box.Current(r.Answer) {
				res.AlreadyCurrent++
				continue
			}
			ad := idemAD(r.Scope, r.Key)
			pt, err := s.box.Open(r.Answer, ad)
			if err != nil {
				return fmt.Errorf("open a kept answer of an idempotency key: %w (is the previous master key configured?)", err)
			}
			err = s.store.ResealIdempotencyAnswer(ctx, r.Scope, r.Key, r.Answer, s.box.Seal(pt, ad))
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				res.IdempotentAnswers++
			}
		}
		if len(recs) < rewrapBatch {
			return nil
		}
		scope, key = recs[len(recs)-1].Scope, recs[len(recs)-1].Key
	}
}
