package api

import (
	"net/http"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

type workspaceRequest struct {
	Name              keyplane.Optional[string]              `json:"name"`
	Slug              keyplane.Optional[string]              `json:"slug"`
	MaxKeys           keyplane.Optional[int]                 `json:"maxKeys"`
	TestKeyTTLSeconds keyplane.Optional[int64]               `json:"testKeyTtlSeconds"`
	LiveModeEnabled   keyplane.Optional[bool]                `json:"liveModeEnabled"`
	LeakPolicy        keyplane.Optional[keyplane.LeakPolicy] `json:"leakPolicy"`
	// Branding is the portal's look: replaced whole, null clears it.
	Branding keyplane.Optional[service.BrandingInput] `json:"branding"`
}

func (s *Server) createWorkspace(w http.ResponseWriter, r *http.Request, c *call) error {
	var req workspaceRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	ws, err := s.svc.CreateWorkspace(r.Context(), c.Caller, service.WorkspaceInput{
		Name: req.Name.Value, Slug: req.Slug.Value, MaxKeys: req.MaxKeys, TestKeyTTLSeconds: req.TestKeyTTLSeconds, LiveModeEnabled: req.LiveModeEnabled,
		LeakPolicy: req.LeakPolicy, Branding: req.Branding,
	})
	if err != nil {
		return err
	}
	writeData(w, http.StatusCreated, ws.View())
	return nil
}

func (s *Server) listWorkspaces(w http.ResponseWriter, r *http.Request, c *call) error {
	limit, cursor, err := page(r)
	if err != nil {
		return err
	}
	ws, next, err := s.svc.ListWorkspaces(r.Context(), c.Caller, limit, cursor)
	if err != nil {
		return err
	}
	out := make([]*keyplane.WorkspaceView, len(ws))
	for i := range ws {
		out[i] = ws[i].View()
	}
	writeList(w, out, next)
	return nil
}

func (s *Server) getWorkspace(w http.ResponseWriter, r *http.Request, c *call) error {
	ws, err := s.svc.GetWorkspace(r.Context(), c.Caller, r.PathValue("id"))
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, ws.View())
	return nil
}

func (s *Server) updateWorkspace(w http.ResponseWriter, r *http.Request, c *call) error {
	var req workspaceRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	ws, err := s.svc.UpdateWorkspace(r.Context(), c.Caller, r.PathValue("id"), service.WorkspacePatch{
		Name: req.Name, Slug: req.Slug, MaxKeys: req.MaxKeys, TestKeyTTLSeconds: req.TestKeyTTLSeconds, LiveModeEnabled: req.LiveModeEnabled,
		LeakPolicy: req.LeakPolicy, Branding: req.Branding,
	})
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, ws.View())
	return nil
}

type memberRequest struct {
	Email string        `json:"email"`
	Role  keyplane.Role `json:"role"`
}

func (s *Server) addMember(w http.ResponseWriter, r *http.Request, c *call) error {
	var req memberRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	m, created, err := s.svc.AddMember(r.Context(), c.Caller, r.PathValue("id"), req.Email, req.Role)
	if err != nil {
		return err
	}
	// 201 for a new invitation; 200 for a change of role (or none) of someone already there.
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	writeData(w, status, m.View())
	return nil
}

func (s *Server) removeMember(w http.ResponseWriter, r *http.Request, c *call) error {
	m, err := s.svc.RemoveMember(r.Context(), c.Caller, r.PathValue("id"), r.PathValue("userId"))
	if err != nil {
		return err
	}
	writeData(w, http.StatusOK, m.View())
	return nil
}

func (s *Server) listMembers(w http.ResponseWriter, r *http.Request, c *call) error {
	ms, err := s.svc.ListMembers(r.Context(), c.Caller, r.PathValue("id"))
	if err != nil {
		return err
	}
	out := make([]*keyplane.MemberView, len(ms))
	for i := range ms {
		out[i] = ms[i].View()
	}
	writeList(w, out, "")
	return nil
}
