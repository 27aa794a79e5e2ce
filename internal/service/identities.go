package service

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/store"
)

// Identities are the platform's customers, by the platform's own id for them (externalId): their
// keys share their credits and rate limits. A change to an identity matters to the verification of
// every key of it, which caches a key with its identity: each change publishes the digests of all
// of them.

// IdentityInput is a new identity.
type IdentityInput struct {
	ExternalID string
	Meta       json.RawMessage
	Credits    *CreditsInput // nil: unlimited
	RateLimits []keyplane.NamedRateLimit
}

// IdentityPatch changes an identity; absent fields are left alone. Credits null makes the identity
// unlimited; RateLimits replaces the whole list.
type IdentityPatch struct {
	ExternalID keyplane.Optional[string]
	Meta       keyplane.Optional[json.RawMessage]
	Credits    keyplane.Optional[CreditsInput]
	RateLimits keyplane.Optional[[]keyplane.NamedRateLimit]
}

func identityTarget(i *keyplane.Identity) keyplane.Target {
	return keyplane.Target{Type: "identity", ID: i.ID}
}

// identityExists is the refusal of an externalId another identity of the workspace has.
func identityExists(externalID string) error {
	return keyplane.Errorf(keyplane.CodeIdentityExists, "this workspace already has an identity with externalId %q", truncate(externalID, 100))
}

// CreateIdentity adds an identity to the workspace.
func (s *Service) CreateIdentity(ctx context.Context, c *keyplane.Caller, wsID string, in IdentityInput) (*keyplane.Identity, error) {
	if err := c.Authorize(wsID, keyplane.PermIdentitiesWrite); err != nil {
		return nil, err
	}
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, err
	}
	now := s.clock()
	var v keyplane.Validation
	checkExternalID(&v, "externalId", in.ExternalID)
	i := &keyplane.Identity{ID: id.NewAt(id.Identity, now), WorkspaceID: wsID, ExternalID: in.ExternalID,
		Meta: checkMeta(&v, in.Meta), RateLimits: checkNamedLimits(&v, "rateLimits", in.RateLimits)}
	credits := checkCredits(&v, "credits", in.Credits, now)
	if err := v.Err(); err != nil {
		return nil, err
	}
	err := s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		i.CreatedAt, i.UpdatedAt = now, now
		if err := tx.InsertIdentity(ctx, i); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, identityExists(i.ExternalID)
			}
			return nil, err
		}
		if credits != nil {
			if err := tx.SetCredits(ctx, identityAccount(i), credits); err != nil {
				return nil, err
			}
			i.Credits = credits
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "identity.created", Target: identityTarget(i),
			Changes: diff(nil, i.View(), "id", "createdAt", "updatedAt")}}, nil
	})
	if err != nil {
		return nil, err
	}
	return i, nil
}

func identityAccount(i *keyplane.Identity) keyplane.CreditAccount {
	return keyplane.CreditAccount{WorkspaceID: i.WorkspaceID, IdentityID: i.ID}
}

// ListIdentities lists a workspace's identities, newest first.
func (s *Service) ListIdentities(ctx context.Context, c *keyplane.Caller, wsID string, limit int, cursor string) ([]keyplane.Identity, string, error) {
	if err := c.Authorize(wsID, keyplane.PermIdentitiesRead); err != nil {
		return nil, "", err
	}
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, "", err
	}
	list, next, err := s.store.ListIdentities(ctx, wsID, limit, cursor)
	return list, next, badCursor(err)
}

// GetIdentity returns one identity of the workspace.
func (s *Service) GetIdentity(ctx context.Context, c *keyplane.Caller, wsID, identityID string) (*keyplane.Identity, error) {
	if err := c.Authorize(wsID, keyplane.PermIdentitiesRead); err != nil {
		return nil, err
	}
	if !id.Valid(id.Identity, identityID) {
		return nil, keyplane.NotFound("identity")
	}
	i, err := s.store.GetIdentity(ctx, wsID, identityID)
	return i, notFound(err, "identity")
}

// mutateIdentity loads an identity inside a change and publishes the digests of all its keys once
// fn changed something.
func (s *Service) mutateIdentity(ctx context.Context, c *keyplane.Caller, wsID, identityID string, fn func(tx store.Tx, i *keyplane.Identity, now time.Time) (*outcome, error)) error {
	if err := c.Authorize(wsID, keyplane.PermIdentitiesWrite); err != nil {
		return err
	}
	if !id.Valid(id.Identity, identityID) {
		return keyplane.NotFound("identity")
	}
	return s.change(ctx, c, wsID, func(tx store.Tx, now time.Time) (*outcome, error) {
		i, err := tx.GetIdentity(ctx, wsID, identityID)
		if err != nil {
			return nil, notFound(err, "identity")
		}
		hashes, err := tx.IdentityKeyHashes(ctx, i.ID)
		if err != nil {
			return nil, err
		}
		out, err := fn(tx, i, now)
		if err != nil || out == nil {
			return out, err
		}
		out.forget = append(out.forget, hashes...)
		return out, nil
	})
}

// UpdateIdentity changes an identity's externalId, meta, credits or rate limits.
func (s *Service) UpdateIdentity(ctx context.Context, c *keyplane.Caller, wsID, identityID string, p IdentityPatch) (*keyplane.Identity, error) {
	var out *keyplane.Identity
	err := s.mutateIdentity(ctx, c, wsID, identityID, func(tx store.Tx, i *keyplane.Identity, now time.Time) (*outcome, error) {
		before := i.View()
		var v keyplane.Validation
		if p.ExternalID.Set {
			if p.ExternalID.Null {
				v.Add("externalId", "an identity always has an externalId")
			} else {
				checkExternalID(&v, "externalId", p.ExternalID.Value)
				i.ExternalID = p.ExternalID.Value
			}
		}
		if p.Meta.Set {
			i.Meta = checkMeta(&v, p.Meta.Value)
		}
		if p.RateLimits.Set {
			i.RateLimits = checkNamedLimits(&v, "rateLimits", p.RateLimits.Value)
		}
		var credits *keyplane.Credits
		if p.Credits.Set && !p.Credits.Null {
			credits = checkCredits(&v, "credits", &p.Credits.Value, now)
		}
		if err := v.Err(); err != nil {
			return nil, err
		}
		out = i
		if p.Credits.Set {
			i.Credits = credits
		}
		changes := diff(before, i.View(), "updatedAt")
		if len(changes) == 0 {
			return nil, nil
		}
		i.UpdatedAt = now
		if err := tx.UpdateIdentity(ctx, i); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, identityExists(i.ExternalID)
			}
			return nil, notFound(err, "identity")
		}
		if _, changed := changes["credits"]; changed {
			if err := tx.SetCredits(ctx, identityAccount(i), credits); err != nil {
				return nil, err
			}
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "identity.updated", Target: identityTarget(i), Changes: changes}}, nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// DeleteIdentity removes an identity that no key names any more (409 identity_in_use otherwise:
// revoke and delete its keys first, or move them to another identity).
func (s *Service) DeleteIdentity(ctx context.Context, c *keyplane.Caller, wsID, identityID string) error {
	return s.mutateIdentity(ctx, c, wsID, identityID, func(tx store.Tx, i *keyplane.Identity, now time.Time) (*outcome, error) {
		n, err := tx.CountIdentityKeys(ctx, i.ID)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, keyplane.Errorf(keyplane.CodeIdentityInUse, "identity %s still has %d keys (revoked ones count); delete them permanently or move them to another identity first", i.ID, n)
		}
		if err := tx.DeleteIdentity(ctx, wsID, i.ID); err != nil {
			return nil, notFound(err, "identity")
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "identity.deleted", Target: identityTarget(i),
			Changes: map[string]keyplane.Change{"externalId": {From: i.ExternalID}, "deleted": {From: false, To: true}}}}, nil
	})
}

// resolveIdentity finds, inside a key's change, the identity a key's externalId or identityId names:
// an externalId the workspace has no identity of yet gets one, audited in the same transaction.
// field names the input in a refusal.
func (s *Service) resolveIdentity(ctx context.Context, tx store.Tx, c *keyplane.Caller, wsID, externalID, identityID string, now time.Time) (*keyplane.Identity, error) {
	if identityID != "" {
		var i *keyplane.Identity
		var err error
		if id.Valid(id.Identity, identityID) {
			i, err = tx.GetIdentity(ctx, wsID, identityID)
		} else {
			err = store.ErrNotFound
		}
		if errors.Is(err, store.ErrNotFound) {
			return nil, &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid identityId",
				Details: []keyplane.FieldError{{Field: "identityId", Message: "no identity of this workspace has this id"}}}
		}
		return i, err
	}
	i, err := tx.GetIdentityByExternalID(ctx, wsID, externalID)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return i, err
	}
	i = &keyplane.Identity{ID: id.NewAt(id.Identity, now), WorkspaceID: wsID, ExternalID: externalID,
		Meta: json.RawMessage("{}"), CreatedAt: now, UpdatedAt: now}
	if err := tx.InsertIdentity(ctx, i); err != nil {
		return nil, err
	}
	err = s.appendAudit(ctx, tx, c, wsID, now, &keyplane.AuditRecord{Action: "identity.created", Target: identityTarget(i),
		Changes: diff(nil, i.View(), "id", "createdAt", "updatedAt")})
	return i, err
}
