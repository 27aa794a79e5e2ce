package api

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

// eventView is an event as the API shows it. data is null when the payload was dropped
// (payloadDropped) or when the caller may not read the API key it carries (dataHidden).
type eventView struct {
	ID             string          `json:"id"`
	Type           string          `json:"type"`
	CreatedAt      string          `json:"createdAt"`
	Data           json.RawMessage `json:"data"`
	PayloadDropped bool            `json:"payloadDropped"`
	DataHidden     bool            `json:"dataHidden"`
}

// eventDetailView is one event with what became of it at each endpoint it was sent to.
type eventDetailView struct {
	*eventView
	Endpoints []eventEndpointView `json:"endpoints"`
}

type eventEndpointView struct {
	EndpointID    string `json:"endpointId"`
	Attempts      int    `json:"attempts"`
	Status        string `json:"status"`
	LastAttemptAt string `json:"lastAttemptAt"`
}

func viewEvent(e *service.EventView) *eventView {
	v := &eventView{ID: e.ID, Type: e.Type, CreatedAt: keyplane.FormatTime(e.CreatedAt), Data: e.Data,
		PayloadDropped: e.PayloadDropped, DataHidden: e.DataHidden}
	if v.Data == nil {
		v.Data = json.RawMessage("null")
	}
	return v
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, c *call) error {
	lq, err := readList(r, "type")
	if err != nil {
		return err
	}
	evs, next, err := s.svc.ListEvents(r.Context(), c.Caller, c.ws, keyplane.EventFilter{
		Type: lq.q.Get("type"), Since: lq.since, Until: lq.until, Limit: lq.limit, Cursor: lq.cursor,
	})
	if err != nil {
		return err
	}
	out := make([]*eventView, len(evs))
	for i := range evs {
		out[i] = viewEvent(&evs[i])
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request, c *call) error {
	e, err := s.svc.GetEvent(r.Context(), c.Caller, c.ws, r.PathValue("id"))
	if err != nil {
		return err
	}
	v := eventDetailView{eventView: viewEvent(e), Endpoints: make([]eventEndpointView, len(e.Endpoints))}
	for i, p := range e.Endpoints {
		v.Endpoints[i] = eventEndpointView{EndpointID: p.EndpointID, Attempts: p.Attempts, Status: string(p.Status),
			LastAttemptAt: keyplane.FormatTime(p.LastAttemptAt)}
	}
	writeData(w, http.StatusOK, v)
	return nil
}

type resendEventRequest struct {
	EndpointID string `json:"endpointId"`
}

func (s *Server) resendEvent(w http.ResponseWriter, r *http.Request, c *call) error {
	var req resendEventRequest
	if err := decode(w, r, &req, maxManagementBody, true); err != nil {
		return err
	}
	n, err := s.svc.ResendEvent(r.Context(), c.Caller, c.ws, r.PathValue("id"), req.EndpointID)
	if err != nil {
		return err
	}
	writeData(w, http.StatusAccepted, map[string]any{"queued": n})
	return nil
}

type recoverWebhookRequest struct {
	Since *string `json:"since"`
	Until *string `json:"until"`
}

func (s *Server) recoverWebhook(w http.ResponseWriter, r *http.Request, c *call) error {
	var req recoverWebhookRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	if req.Since == nil {
		return invalid("since", "is required")
	}
	since, err := time.Parse(time.RFC3339Nano, *req.Since)
	if err != nil {
		return invalid("since", "must be an RFC 3339 time such as 2030-01-31T09:00:00Z")
	}
	var until *time.Time
	if req.Until != nil {
		t, err := time.Parse(time.RFC3339Nano, *req.Until)
		if err != nil {
			return invalid("until", "must be an RFC 3339 time such as 2030-01-31T12:00:00Z")
		}
		until = &t
	}
	n, err := s.svc.RecoverWebhook(r.Context(), c.Caller, c.ws, r.PathValue("id"), since, until)
	if err != nil {
		return err
	}
	writeData(w, http.StatusAccepted, map[string]any{"queued": n})
	return nil
}
