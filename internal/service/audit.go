package service

import (
	"context"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/auditchain"
	"github.com/keyplane/keyplane/internal/store"
)

// ListAudit lists a workspace's audit trail, newest first.
func (s *Service) ListAudit(ctx context.Context, c *keyplane.Caller, wsID string, f store.AuditFilter) ([]keyplane.AuditEntry, string, error) {
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
	return entries, next, badCursor(err)
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
