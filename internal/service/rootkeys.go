package service

import (
	"context"
	"strings"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/id"
	"github.com/keyplane/keyplane/internal/keyformat"
	"github.com/keyplane/keyplane/internal/store"
)

// CreateRootKey makes an operator credential and returns its value, which is never shown again.
func (s *Service) CreateRootKey(ctx context.Context, c *keyplane.Caller, name string, scopes []string) (*keyplane.RootKey, string, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, "", err
	}
	var v keyplane.Validation
	name = checkName(&v, "name", name, keyplane.MaxNameLen, true)
	seen := map[string]bool{}
	var clean []string
	for _, sc := range scopes {
		sc = strings.TrimSpace(sc)
		if sc != keyplane.ScopeAdmin && sc != keyplane.ScopeVerify {
			v.Add("scopes", "%q is not a scope; use admin and/or verify", sc)
			continue
		}
		if !seen[sc] {
			seen[sc] = true
			clean = append(clean, sc)
		}
	}
	if len(clean) == 0 && len(scopes) == 0 {
		v.Add("scopes", "at least one of admin, verify is required")
	}
	if err := v.Err(); err != nil {
		return nil, "", err
	}
	value := keyformat.GenerateRoot(s.prefix)
	h := keyformat.Hash(value)
	rk := &keyplane.RootKey{Name: name, Hash: h[:], Scopes: clean}
	err := s.change(ctx, c, store.OperatorChain, func(tx store.Tx, now time.Time) (*outcome, error) {
		rk.ID, rk.CreatedAt = id.NewAt(id.RootKey, now), now
		if err := tx.CreateRootKey(ctx, rk); err != nil {
			return nil, err
		}
		return &outcome{audit: &keyplane.AuditRecord{Action: "root_key.created", Target: keyplane.Target{Type: "root_key", ID: rk.ID},
			Changes: map[string]keyplane.Change{"name": {To: rk.Name}, "scopes": {To: rk.Scopes}}},
			// a cached "unknown" for this value, however unlikely, must go, on every node
			forget: [][]byte{rk.Hash}}, nil
	})
	if err != nil {
		return nil, "", err
	}
	return rk, value, nil
}

// ListRootKeys returns every root key, revoked ones included, oldest first; never their values.
func (s *Service) ListRootKeys(ctx context.Context, c *keyplane.Caller) ([]keyplane.RootKey, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, err
	}
	return s.store.ListRootKeys(ctx)
}

// RevokeRootKey ends a root key for good. Every node refuses it once the change is published: at
// once on this node and, within a second, on the others: PostgreSQL's nodes by NOTIFY, a SQLite
// serve process beside this CLI by the change journal.
func (s *Service) RevokeRootKey(ctx context.Context, c *keyplane.Caller, keyID string) (*keyplane.RootKey, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, err
	}
	var rk *keyplane.RootKey
	err := s.change(ctx, c, store.OperatorChain, func(tx store.Tx, now time.Time) (*outcome, error) {
		var err error
		if rk, err = tx.GetRootKey(ctx, keyID); err != nil {
			return nil, notFound(err, "root key")
		}
		if rk.RevokedAt != nil {
			return nil, keyplane.Errorf(keyplane.CodeKeyRevoked, "the root key was revoked at %s", rk.RevokedAt.UTC().Format(time.RFC3339))
		}
		if err := tx.RevokeRootKey(ctx, keyID, now); err != nil {
			return nil, err
		}
		rk.RevokedAt = &now
		return &outcome{
			audit: &keyplane.AuditRecord{Action: "root_key.revoked", Target: keyplane.Target{Type: "root_key", ID: rk.ID},
				Changes: map[string]keyplane.Change{"revokedAt": {To: now}}},
			forget: [][]byte{rk.Hash},
		}, nil
	})
	if err != nil {
		return nil, err
	}
	return rk, nil
}
