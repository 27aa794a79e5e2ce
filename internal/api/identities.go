package api

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

type createIdentityRequest struct {
	ExternalID string                    `json:"externalId"`
	Meta       json.RawMessage           `json:"meta"`
	Credits    *service.CreditsInput     `json:"credits"`
	RateLimits []keyplane.NamedRateLimit `json:"rateLimits"`
}

func (s *Server) createIdentity(w http.ResponseWriter, r *http.Request, c *call) error {
	var req createIdentityRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	i, err := s.svc.CreateIdentity(r.Context(), c.Caller, c.ws, service.IdentityInput{
		ExternalID: req.ExternalID, Meta: req.Meta, Credits: req.Credits, RateLimits: req.RateLimits,
	})
	if err != nil {
		return err
	}
	writeData(w, http.StatusCreated, i.View())
	return nil
}

func (s *Server) listIdentities(w http.ResponseWriter, r *http.Request, c *call) error {
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	list, next, err := s.svc.ListIdentities(r.Context(), c.Caller, c.ws, limit, cursor)
	if err != nil {
		return err
	}
	out := make([]*keyplane.IdentityView, len(list))
	for i := range list {
		out[i] = list[i].View()
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) getIdentity(w http.ResponseWriter, r *http.Request, c *call) error {
	i, err := s.svc.GetIdentity(r.Context(), c.Caller, c.ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, i.View())
	return nil
}

type patchIdentityRequest struct {
	ExternalID keyplane.Optional[string]                    `json:"externalId"`
	Meta       keyplane.Optional[json.RawMessage]           `json:"meta"`
	Credits    keyplane.Optional[service.CreditsInput]      `json:"credits"`
	RateLimits keyplane.Optional[[]keyplane.NamedRateLimit] `json:"rateLimits"`
}

func (s *Server) updateIdentity(w http.ResponseWriter, r *http.Request, c *call) error {
	var req patchIdentityRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	i, err := s.svc.UpdateIdentity(r.Context(), c.Caller, c.ws, r.PathValue("id"), service.IdentityPatch{
		ExternalID: req.ExternalID, Meta: req.Meta, Credits: req.Credits, RateLimits: req.RateLimits,
	})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, i.View())
	return nil
}

func (s *Server) deleteIdentity(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("id")
	if err := s.svc.DeleteIdentity(r.Context(), c.Caller, c.ws, id); err != nil {
		return err
	}
	writeData(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}

type creditsRequest struct {
	Op    keyplane.CreditOp `json:"op"`
	Value *int64            `json:"value"`
}

// change reads a credits operation, naming every bad field.
func (req *creditsRequest) change() (service.CreditsChange, error) {
	var v keyplane.Validation
	if !req.Op.Valid() {
		v.Add("op", "must be set, increment or decrement")
	}
	if req.Value == nil {
		v.Add("value", "is required: a whole number from 0 to %d", int64(keyplane.MaxCredits))
	} else if *req.Value < 0 || *req.Value > keyplane.MaxCredits {
		v.Add("value", "must be from 0 to %d", int64(keyplane.MaxCredits))
	}
	if err := v.Err(); err != nil {
		return service.CreditsChange{}, err
	}
	return service.CreditsChange{Op: req.Op, Value: *req.Value}, nil
}

func (s *Server) changeIdentityCredits(w http.ResponseWriter, r *http.Request, c *call) error {
	return changeCredits(w, r, c, s.svc.ChangeIdentityCredits)
}

func (s *Server) changeKeyCredits(w http.ResponseWriter, r *http.Request, c *call) error {
	return changeCredits(w, r, c, s.svc.ChangeKeyCredits)
}

// changeCredits is POST …/{id}/credits of a key or an identity, by the service's change of it.
func changeCredits(w http.ResponseWriter, r *http.Request, c *call,
	change func(context.Context, *keyplane.Caller, string, string, service.CreditsChange) (*keyplane.Credits, error)) error {
	var req creditsRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	ch, err := req.change()
	if err != nil {
		return err
	}
	cr, err := change(r.Context(), c.Caller, c.ws, r.PathValue("id"), ch)
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, cr.View())
	return nil
}
