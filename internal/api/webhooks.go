package api

import (
	"encoding/json"
	"net/http"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// webhookView is an endpoint as the API shows it; Secret only on creation, rotation and reveal.
type webhookView struct {
	ID                      string   `json:"id"`
	URL                     string   `json:"url"`
	Description             string   `json:"description"`
	EventTypes              []string `json:"eventTypes"`
	Enabled                 bool     `json:"enabled"`
	DisabledReason          *string  `json:"disabledReason"`
	CreatedAt               string   `json:"createdAt"`
	UpdatedAt               string   `json:"updatedAt"`
	Secret                  string   `json:"secret,omitempty"`
	PreviousSecretExpiresAt *string  `json:"previousSecretExpiresAt,omitempty"`
}

func viewWebhook(e *keyplane.WebhookEndpoint) *webhookView {
	v := &webhookView{ID: e.ID, URL: e.URL, Description: e.Description, EventTypes: e.EventTypes, Enabled: e.Enabled,
		CreatedAt: keyplane.FormatTime(e.CreatedAt), UpdatedAt: keyplane.FormatTime(e.UpdatedAt)}
	if e.DisabledReason != "" {
		v.DisabledReason = &e.DisabledReason
	}
	return v
}

type deliveryView struct {
	ID            string  `json:"id"`
	EventID       string  `json:"eventId"`
	EventType     string  `json:"eventType"`
	Attempt       int     `json:"attempt"`
	Status        string  `json:"status"`
	StatusCode    *int    `json:"statusCode"`
	ResponseBody  string  `json:"responseBody"`
	Error         *string `json:"error"`
	DurationMs    *int64  `json:"durationMs"`
	CreatedAt     string  `json:"createdAt"`
	NextAttemptAt *string `json:"nextAttemptAt"`
}

func viewDelivery(d *keyplane.Delivery) *deliveryView {
	v := &deliveryView{ID: d.ID, EventID: d.EventID, EventType: d.EventType, Attempt: d.Attempt, Status: string(d.Status),
		ResponseBody: d.ResponseBody, DurationMs: d.DurationMs, CreatedAt: keyplane.FormatTime(d.CreatedAt)}
	if d.StatusCode != 0 {
		v.StatusCode = &d.StatusCode
	}
	if d.Error != "" {
		v.Error = &d.Error
	}
	if d.NextAttemptAt != nil {
		t := keyplane.FormatTime(*d.NextAttemptAt)
		v.NextAttemptAt = &t
	}
	return v
}

type createWebhookRequest struct {
	URL         string   `json:"url"`
	Description string   `json:"description"`
	EventTypes  []string `json:"eventTypes"`
	Enabled     *bool    `json:"enabled"`
}

func (s *Server) createWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	var req createWebhookRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	if req.URL == "" {
		return invalid("url", "is required")
	}
	e, secret, err := s.svc.CreateWebhook(r.Context(), c.Caller, c.ws, service.WebhookInput{
		URL: req.URL, Description: req.Description, EventTypes: req.EventTypes, Enabled: req.Enabled,
	})
	if err != nil {
		return err
	}
	v := viewWebhook(e)
	v.Secret = secret
	writeData(w, http.StatusCreated, v)
	return nil
}

func (s *Server) listWebhooks(w http.ResponseWriter, r *http.Request, c *call) error {
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	es, next, err := s.svc.ListWebhooks(r.Context(), c.Caller, c.ws, limit, cursor)
	if err != nil {
		return err
	}
	out := make([]*webhookView, len(es))
	for i := range es {
		out[i] = viewWebhook(&es[i])
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) getWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	e, err := s.svc.GetWebhook(r.Context(), c.Caller, c.ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, viewWebhook(e))
	return nil
}

type patchWebhookRequest struct {
	URL         keyplane.Optional[string]   `json:"url"`
	Description keyplane.Optional[string]   `json:"description"`
	EventTypes  keyplane.Optional[[]string] `json:"eventTypes"`
	Enabled     keyplane.Optional[bool]     `json:"enabled"`
}

func (s *Server) updateWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	var req patchWebhookRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	if req.EventTypes.Set && req.EventTypes.Null {
		return invalid("eventTypes", "cannot be null")
	}
	if req.Description.Set && req.Description.Null {
		req.Description = keyplane.Some("")
	}
	e, err := s.svc.UpdateWebhook(r.Context(), c.Caller, c.ws, r.PathValue("id"), service.WebhookPatch{
		URL: req.URL, Description: req.Description, EventTypes: req.EventTypes, Enabled: req.Enabled,
	})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, viewWebhook(e))
	return nil
}

func (s *Server) deleteWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	id := r.PathValue("id")
	if err := s.svc.DeleteWebhook(r.Context(), c.Caller, c.ws, id); err != nil {
		return err
	}
	writeData(w, http.StatusOK, map[string]any{"id": id, "deleted": true})
	return nil
}

func (s *Server) rotateWebhookSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := decode(w, r, &struct{}{}, maxManagementBody, true); err != nil {
		return err
	}
	e, secret, err := s.svc.RotateWebhookSecret(r.Context(), c.Caller, c.ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := viewWebhook(e)
	v.Secret = secret
	if e.PreviousSecretUntil != nil {
		t := keyplane.FormatTime(*e.PreviousSecretUntil)
		v.PreviousSecretExpiresAt = &t
	}
	writeData(w, http.StatusOK, v)
	return nil
}

func (s *Server) revealWebhookSecret(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := decode(w, r, &struct{}{}, maxManagementBody, true); err != nil {
		return err
	}
	e, secret, err := s.svc.RevealWebhookSecret(r.Context(), c.Caller, c.ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := viewWebhook(e)
	v.Secret = secret
	writeData(w, http.StatusOK, v)
	return nil
}

type testWebhookRequest struct {
	EventType string `json:"eventType"`
}

func (s *Server) testWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	var req testWebhookRequest
	if err := decode(w, r, &req, maxManagementBody, true); err != nil {
		return err
	}
	res, err := s.svc.TestWebhook(r.Context(), c.Caller, c.ws, r.PathValue("id"), req.EventType)
	if err != nil {
		return err
	}
	out := map[string]any{"statusCode": nil, "responseBody": res.Body, "error": nil, "durationMs": res.Duration.Milliseconds()}
	if res.StatusCode != 0 {
		out["statusCode"] = res.StatusCode
	}
	if res.Error != "" {
		out["error"] = res.Error
	}
	writeData(w, http.StatusOK, out)
	return nil
}

func (s *Server) listDeliveries(w http.ResponseWriter, r *http.Request, c *call) error {
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	ds, next, err := s.svc.ListDeliveries(r.Context(), c.Caller, c.ws, r.PathValue("id"), keyplane.DeliveryFilter{
		Status: keyplane.DeliveryStatus(r.URL.Query().Get("status")), Limit: limit, Cursor: cursor,
	})
	if err != nil {
		return err
	}
	out := make([]*deliveryView, len(ds))
	for i := range ds {
		out[i] = viewDelivery(&ds[i])
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) retryDelivery(w http.ResponseWriter, r *http.Request, c *call) error {
	if err := decode(w, r, &struct{}{}, maxManagementBody, true); err != nil {
		return err
	}
	d, err := s.svc.RetryDelivery(r.Context(), c.Caller, c.ws, r.PathValue("id"), r.PathValue("deliveryId"))
	if err != nil {
		return err
	}
	writeData(w, http.StatusAccepted, viewDelivery(d))
	return nil
}

type sendEventRequest struct {
	Type string          `json:"type"`
	Data json.RawMessage `json:"data"`
}

func (s *Server) sendEvent(w http.ResponseWriter, r *http.Request, c *call) error {
	var req sendEventRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	ev, n, err := s.svc.SendEvent(r.Context(), c.Caller, c.ws, req.Type, req.Data)
	if err != nil {
		return err
	}
	writeData(w, http.StatusAccepted, map[string]any{"id": ev.ID, "type": ev.Type, "createdAt": keyplane.FormatTime(ev.CreatedAt), "endpoints": n})
	return nil
}
