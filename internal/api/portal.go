package api

import (
	"net/http"
	"time"

	"github.com/keyplane/keyplane"
	"github.com/keyplane/keyplane/internal/service"
)

type portalSessionRequest struct {
	User             keyplane.PortalUser `json:"user"`
	Role             keyplane.Role       `json:"role"`
	ReturnURL        string              `json:"returnUrl"`
	ExpiresInSeconds *int64              `json:"expiresInSeconds"`
}

type portalLinkView struct {
	URL       string `json:"url"`
	ExpiresAt string `json:"expiresAt"`
}

// createPortalSession answers a one-time link into the workspace's portal. The link's token is in
// the answer only: the access log has the path, which holds none.
func (s *Server) createPortalSession(w http.ResponseWriter, r *http.Request, c *call) error {
	var req portalSessionRequest
	if err := decode(w, r, &req, maxManagementBody, false); err != nil {
		return err
	}
	in := service.PortalRequest{User: req.User, Role: req.Role, ReturnURL: req.ReturnURL}
	if n := req.ExpiresInSeconds; n != nil {
		// Out of bounds, 0 included, is the service's 400 on expiresInSeconds; a huge number must
		// not overflow into the bounds.
		in.ExpiresIn = -1
		if *n >= 1 && *n <= 1<<20 {
			in.ExpiresIn = time.Duration(*n) * time.Second
		}
	}
	link, err := s.svc.CreatePortalSession(r.Context(), c.Caller, c.ws, in)
	if err != nil {
		return err
	}
	writeData(w, http.StatusCreated, portalLinkView{URL: link.URL, ExpiresAt: keyplane.FormatTime(link.ExpiresAt)})
	return nil
}
