package service

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/auditchain"
	"github.com/keyplane/keyplane/internal/redact"
	"github.com/keyplane/keyplane/internal/store"
)

// auditRefusal records a refused action (a denied reveal, a wrong password entered again) and returns
// refusal. The docs promise an entry for every one (docs/api.md: "every refused reveal writes an
// audit entry"; user.reauth_failed is in the workspace's chain), so a refusal whose entry could not be
// written does not answer as a refusal: the call fails with the store's error instead, which the API
// and the dashboard log under the request id and answer as an outage. Nothing is revealed either way.
func (s *Service) auditRefusal(ctx context.Context, c *keyplane.Caller, chain string, r keyplane.AuditRecord, refusal error) error {
	if err := s.Audit(ctx, c, chain, r); err != nil {
		return fmt.Errorf("audit %s: %w", r.Action, err)
	}
	return refusal
}

// ListAudit lists a workspace's audit trail, newest first.
func (s *Service) ListAudit(ctx context.Context, c *keyplane.Caller, wsID string, f keyplane.AuditFilter) ([]keyplane.AuditEntry, string, error) {
	if err := c.Authorize(wsID, keyplane.PermAuditRead); err != nil {
		return nil, "", err
	}
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, "", err
	}
	if f.Since != nil && f.Until != nil && !f.Since.Before(*f.Until) {
		return nil, "", &keyplane.Error{Code: keyplane.CodeInvalidRequest, Message: "invalid until: must be after since",
			Details: []keyplane.FieldError{{Field: "until", Message: "must be after since"}}}
	}
	entries, next, err := s.store.ListAudit(ctx, wsID, f)
	if err != nil {
		return nil, "", badCursor(err)
	}
	// Those who see no API keys (developers, viewers, keys without api_keys:read) read every entry,
	// but not what a key's fields hold: the README promises them no keys.
	if c.Authorize(wsID, keyplane.PermAPIKeysRead) != nil {
		for i := range entries {
			entries[i].Body, entries[i].Hash = withoutKeyValues(entries[i].Body), ""
		}
	}
	return entries, next, nil
}

// ListOperatorAudit lists the operator's chain, newest first: root keys, operator users, and every
// person's sign-ins, failed sign-ins, locks and sign-outs, which no workspace's trail holds.
func (s *Service) ListOperatorAudit(ctx context.Context, c *keyplane.Caller, f keyplane.AuditFilter) ([]keyplane.AuditEntry, string, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, "", err
	}
	entries, next, err := s.store.ListAudit(ctx, store.OperatorChain, f)
	if err != nil {
		return nil, "", badCursor(err)
	}
	return entries, next, nil
}

// withoutKeyValues returns an entry's body with the values of an API key's (or an identity's: the customers keys belong to) changed fields (name,
// permissions, meta, allow-lists, …) and an API key actor's name replaced by redact.Marker, and
// "redacted": true added; the action, actor and target ids, time, address and which fields changed
// stay. Every entry of such an answer also loses its links (prevHash here, hash in ListAudit): a
// hash of the unredacted entry would let its reader test guesses of the hidden values offline (a
// key's name from a dictionary, its permissions from the catalog). The chain is checked on the stored
// entries, by VerifyAudit.
func withoutKeyValues(body json.RawMessage) json.RawMessage {
	var e map[string]any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers stay as they were written
	if dec.Decode(&e) != nil {
		return json.RawMessage(`{"redacted":true}`) // fail closed; stored entries always decode
	}
	e["prevHash"] = ""
	hidden := false
	if a, ok := e["actor"].(map[string]any); ok && a["type"] == string(keyplane.ActorAPIKey) {
		a["name"], hidden = redact.Marker, true
	}
	if tg, ok := e["target"].(map[string]any); ok && (tg["type"] == "api_key" || tg["type"] == "identity") {
		if ch, ok := e["changes"].(map[string]any); ok {
			for field, c := range ch {
				cm, ok := c.(map[string]any)
				if !ok {
					ch[field], hidden = redact.Marker, true
					continue
				}
				for _, side := range []string{"from", "to"} {
					if v, ok := cm[side]; ok && v != nil {
						cm[side], hidden = redact.Marker, true
					}
				}
			}
		}
	}
	if hidden {
		e["redacted"] = true
	}
	out, err := json.Marshal(e)
	if err != nil {
		return json.RawMessage(`{"redacted":true}`)
	}
	return out
}

// ChainResult is the outcome of checking an audit chain.
type ChainResult struct {
	Chain      string
	Valid      bool
	Entries    int
	FirstBadID string
}

// VerifyAudit recomputes a workspace's hash chain from the stored entries.
func (s *Service) VerifyAudit(ctx context.Context, c *keyplane.Caller, wsID string) (*ChainResult, error) {
	if err := c.Authorize(wsID, keyplane.PermAuditRead); err != nil {
		return nil, err
	}
	if _, err := s.GetWorkspace(ctx, c, wsID); err != nil {
		return nil, err
	}
	return s.verifyChain(ctx, wsID)
}

// VerifyAllAudit checks every chain, the operator's included. Operator only.
func (s *Service) VerifyAllAudit(ctx context.Context, c *keyplane.Caller) ([]ChainResult, error) {
	if err := c.RequireOperator(); err != nil {
		return nil, err
	}
	chains, err := s.store.AuditChains(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]ChainResult, 0, len(chains))
	for _, ch := range chains {
		r, err := s.verifyChain(ctx, ch)
		if err != nil {
			return nil, err
		}
		out = append(out, *r)
	}
	return out, nil
}

func (s *Service) verifyChain(ctx context.Context, chain string) (*ChainResult, error) {
	var ck auditchain.Checker
	err := s.store.ScanAudit(ctx, chain, func(e *keyplane.AuditEntry) error {
		ck.Add(e)
		return nil
	})
	if err != nil {
		return nil, err
	}
	valid, n, bad := ck.Result()
	return &ChainResult{Chain: chain, Valid: valid, Entries: n, FirstBadID: bad}, nil
}
