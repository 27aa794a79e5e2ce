package api

import (
	"encoding/json"
	"net/http"

	"github.com/keyplane/keyplane"
)

func (s *Server) listAudit(w http.ResponseWriter, r *http.Request, c *call) error {
	lq, err := readList(r, "action", "actorId", "targetId")
	if err != nil {
		return err
	}
	q := lq.q
	entries, next, err := s.svc.ListAudit(r.Context(), c.Caller, c.ws, keyplane.AuditFilter{
		Action: q.Get("action"), ActorID: q.Get("actorId"), TargetID: q.Get("targetId"), Since: lq.since, Until: lq.until, Limit: lq.limit, Cursor: lq.cursor,
	})
	if err != nil {
		return err
	}
	out := make([]json.RawMessage, len(entries))
	for i := range entries {
		out[i] = entries[i].JSON()
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) verifyAudit(w http.ResponseWriter, r *http.Request, c *call) error {
	res, err := s.svc.VerifyAudit(r.Context(), c.Caller, c.ws)
	if err != nil {
		return err
	}
	var bad *string
	if res.FirstBadID != "" {
		bad = &res.FirstBadID
	}
	writeData(w, http.StatusOK, map[string]any{"valid": res.Valid, "entries": res.Entries, "firstBadId": bad})
	return nil
}
